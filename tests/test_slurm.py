"""The workflow through ``--profile profiles/slurm`` on a real local SLURM equals a local run.

``scripts/slurm/start.sh`` brings up a single-node SLURM (Debian's slurmctld, slurmd and
munge, run as root without systemd; installed with apt-get when missing). The test is
skipped, with the reason, when that is impossible: not root, no SLURM and no apt-get, the
executor plugin not installed (``pip install -e ".[slurm]"``), or the daemons do not come up.

What runs: a representative subset of the demo's outputs, chosen from the shared local run
(fixture ``demo_run``): the inventory, and for every data set each ECSV of its first group
(per-image tables of that group's images and the group's own tables), plus its data-set-wide
tables when it has one group only (else they would need every group). Plots are left out.
That keeps the run to a few SLURM submissions. The config has ``execution.batch_size: 2``,
so the field and forced images go as batch jobs (one submission per batch) while the
standard and time-series images go as grouped one-image jobs: both ways are checked against
the local run made one job per image.
The run is bounded by ``timeout -s KILL`` (SIGINT does not stop Snakemake while it waits on
SLURM) and every job it left is cancelled with ``scancel``.

What is compared: every selected ECSV byte for byte with the local run's. No provenance
differs legitimately: ``aperflow.tables.provenance`` holds no timestamps, host names or
absolute paths (input paths are relative to the working directory), so none is excluded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

#: Wall-time bound of the SLURM run (s); each submission costs 5-12 s of start-up.
SLURM_RUN_TIMEOUT = 420
#: execution.batch_size of the SLURM run (the local reference has one job per image).
BATCH_SIZE = 2
START = REPO / "scripts" / "slurm" / "start.sh"
STOP = REPO / "scripts" / "slurm" / "stop.sh"


def _node_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(
        ["sinfo", "-h", "-N", "-n", "localhost", "-o", "%T"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return proc.returncode == 0 and proc.stdout.strip() in {"idle", "mixed", "allocated"}


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM; stopped afterwards only if this fixture started it."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test needs root (scripts/slurm/start.sh runs munged and slurmd)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip('snakemake-executor-plugin-slurm missing: pip install -e ".[slurm]"')
    if shutil.which("sinfo") is None and shutil.which("apt-get") is None:
        pytest.skip("no SLURM installed and no apt-get to install it")
    was_up = _node_idle()
    if not was_up:
        try:
            proc = subprocess.run(
                ["bash", str(START)], capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            pytest.skip("SLURM cannot start: scripts/slurm/start.sh took over 900 s")
        if proc.returncode != 0:
            pytest.skip(f"SLURM cannot start: {proc.stderr.strip()[-500:]}")
    yield
    if not was_up:
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120)


def representative_targets(workdir: Path) -> list[str]:
    """The inventory plus, per data set, the ECSV files of its first group (see module doc)."""
    from aperflow.inventory import usable
    from aperflow.tables import read_table

    inventory = usable(read_table(workdir / "results" / "inventory.ecsv"))
    targets = ["results/inventory.ecsv"]
    for dataset in sorted(set(inventory["dataset"])):
        rows = inventory[inventory["dataset"] == dataset]
        groups = sorted(set(rows["group"]))
        images = {str(image) for image in rows["image"]}
        chosen = {groups[0]} | {str(r["image"]) for r in rows if r["group"] == groups[0]}
        # A data-set-wide table is built from every group: taken only when there is one.
        whole = len(groups) == 1
        found = (workdir / "results" / dataset).rglob("*.ecsv")
        targets += sorted(
            str(p.relative_to(workdir))
            for p in found
            if p.stem in chosen or (whole and p.stem not in images)
        )
    return targets


def _cancel_jobs_of(workdir: Path) -> None:
    """scancel every SLURM job whose working directory is ``workdir`` (left by a killed run)."""
    proc = subprocess.run(
        ["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i %Z"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    ids = [
        line.split()[0]
        for line in proc.stdout.splitlines()
        if len(line.split()) == 2 and Path(line.split()[1]) == workdir
    ]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def _skip_if_code_changed(mtime: float) -> None:
    """Skip when the workflow's sources changed after ``mtime`` (outputs may then differ).

    Only happens in a working tree edited while the tests run, never in CI's fresh clone.
    """
    roots = [REPO / "src", REPO / "workflow", REPO / "config", REPO / "Snakefile"]
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))]
    # Byte code and install metadata are written while the tests run: not changes.
    skip = {"__pycache__", "aperflow.egg-info"}
    changed = sorted(
        str(p.relative_to(REPO))
        for p in files
        if p.is_file() and not skip & set(p.parts) and p.stat().st_mtime > mtime
    )
    if changed:
        pytest.skip(f"code changed after the local reference run: {changed[:3]}")


def run_with_profile(workdir: Path, targets: list[str]) -> subprocess.CompletedProcess:
    """The workflow in ``workdir`` through profiles/slurm, killed after SLURM_RUN_TIMEOUT."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["execution"]["batch_size"] = BATCH_SIZE
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        "timeout", "-s", "KILL", str(SLURM_RUN_TIMEOUT),
        sys.executable, "-m", "snakemake",
        "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(workdir / "config" / "config.yaml"),
        "--profile", str(REPO / "profiles" / "slurm"),
        *targets,
    ]  # fmt: skip
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    finally:
        _cancel_jobs_of(workdir)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_profile_matches_local_run(demo_run, slurm_cluster, tmp_path):
    inventory = demo_run / "results" / "inventory.ecsv"
    assert inventory.exists(), (
        "the local demo run made no inventory:\n"
        + (demo_run / "snakemake.stderr").read_text()[-3000:]
    )
    targets = representative_targets(demo_run)
    workdir = tmp_path / "slurm_run"
    _skip_if_code_changed(inventory.stat().st_mtime)
    proc = run_with_profile(workdir, targets)
    _skip_if_code_changed(inventory.stat().st_mtime)
    log = proc.stdout + proc.stderr
    (tmp_path / "snakemake.log").write_text(log)
    assert proc.returncode != -9 and proc.returncode != 137, (
        f"SLURM run killed after {SLURM_RUN_TIMEOUT} s:\n{log[-4000:]}"
    )
    assert proc.returncode == 0, f"SLURM run failed ({proc.returncode}):\n{log[-6000:]}"
    # The jobs really went through SLURM (rules kept local by resources.smk do not count),
    # the field and forced images as batch jobs.
    assert "has been submitted with SLURM jobid" in log, log[-3000:]
    assert re.search(r"rule field_batch_demo_field_\d+:", log), log[-3000:]
    assert re.search(r"rule forced_batch_demo_forced_\d+:", log), log[-3000:]

    different = []
    for target in targets:
        local, remote = demo_run / target, workdir / target
        assert remote.exists(), f"{target}: made by the local run, not by the SLURM run"
        if local.read_bytes() != remote.read_bytes():
            different.append(target)
    assert not different, f"SLURM outputs differ from the local run's: {different}"


def test_representative_targets_pick_one_group_per_dataset(tmp_path):
    """The subset: inventory + first group's per-image and group tables, per data set."""
    from astropy.table import Table

    from aperflow.tables import write_table

    rows = [
        ("a1", "ds", "G1", ""),
        ("a2", "ds", "G1", ""),
        ("b1", "ds", "G2", ""),
        ("bad", "ds", "G0", "unreadable"),
        ("c1", "one", "G3", ""),
    ]
    table = Table(rows=rows, names=["image", "dataset", "group", "error"])
    write_table(table, tmp_path / "results" / "inventory.ecsv")
    files = {
        "ds": ["a1", "a2", "b1", "G1", "G2", "bad", "G0", "catalog"],
        "one": ["c1", "G3", "lightcurve"],
    }
    for dataset, names in files.items():
        for name in names:
            path = tmp_path / "results" / dataset / "stage" / f"{name}.ecsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    assert representative_targets(tmp_path) == [
        "results/inventory.ecsv",
        "results/ds/stage/G1.ecsv",
        "results/ds/stage/a1.ecsv",
        "results/ds/stage/a2.ecsv",
        "results/one/stage/G3.ecsv",
        "results/one/stage/c1.ecsv",
        "results/one/stage/lightcurve.ecsv",
    ]
