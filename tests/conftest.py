"""Shared fixtures: paths to the repository and ../shared, the demo data, and one demo
workflow run that every end-to-end test reads (the run happens once per session)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL = SHARED / "data" / "real"
REFERENCE = SHARED / "data" / "reference"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED / "data" / relative
    if not path.exists():
        pytest.skip(f"../shared/data/{relative} is not here (needs ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo data simulated once per session (same seed as the workflow's default)."""
    from aperflow.simulate import simulate_demo

    out = tmp_path_factory.mktemp("demo")
    simulate_demo(out)
    return out


def snakemake_command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """The command line running the repository's workflow in ``workdir``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` (config copied there first)."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    if not (workdir / "config" / "config.yaml").exists():
        shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    cmd = snakemake_command(workdir, workdir / "config" / "config.yaml", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{out}")
    return proc


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The default workflow run once on the demo data; returns its working directory.

    ``--keep-going`` so that one failing stage does not hide the outputs of the others;
    each end-to-end test checks the outputs it needs exist.
    """
    workdir = tmp_path_factory.mktemp("demo_run")
    proc = run_snakemake(workdir, "--cores", "2", "--keep-going", check=False)
    (workdir / "snakemake.stderr").write_text(proc.stdout + proc.stderr)
    return workdir
