"""Faults and reruns (issue 8): a run killed with SIGKILL and resumed equals an
uninterrupted one, byte for byte, whatever the number of cores; a config change or a new
image reruns only what it affects.

Determinism is checked on every ECSV table and PNG under results/. Provenance metadata in
the tables holds only values that are the same on every run (software versions, options,
input names), so nothing has to be excluded from the comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake, snakemake_command


def _outputs(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.suffix in (".ecsv", ".png", ".reg", ".fits")
    }


def _start(workdir: Path, *args: str) -> subprocess.Popen:
    cmd = snakemake_command(workdir, workdir / "config" / "config.yaml", *args)
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """The demo run (2 cores) killed with SIGKILL mid-way, then resumed with 1 core."""
    workdir = tmp_path_factory.mktemp("killed")
    (workdir / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    proc = _start(workdir, "--cores", "2")
    deadline = time.time() + 300
    # Wait until the run is past the inventory and has written some per-image results.
    while time.time() < deadline and proc.poll() is None:
        results = workdir / "results"
        if results.exists() and len(list(results.rglob("*.ecsv"))) >= 6:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir, "--cores", "1", "--rerun-incomplete", "--keep-going")
    return workdir


def test_sigkill_then_rerun_equals_uninterrupted_run(demo_run, resumed_run):
    """Outputs of the killed-and-resumed run (1 core) equal demo_run's (2 cores)."""
    reference = _outputs(demo_run)
    assert reference, "the reference demo run wrote nothing"
    resumed = _outputs(resumed_run)
    assert sorted(resumed) == sorted(reference)
    differ = [name for name in reference if resumed[name] != reference[name]]
    assert not differ, f"outputs differ from the uninterrupted run: {differ[:10]}"


def _dry_run_jobs(workdir: Path, config: dict) -> dict[str, int]:
    path = workdir / "config" / "dry.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        snakemake_command(workdir, path, "-n", "--quiet", "rules"), capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = {}
    for line in out.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) not in ("total", "job", "count"):
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def _config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_nothing_to_do_after_the_run(demo_run):
    assert _dry_run_jobs(demo_run, _config()) == {}


def test_a_standard_option_reruns_only_the_standard_stage(demo_run):
    config = _config()
    config["datasets"]["demo_standard"].setdefault("standard", {})["sky_gap"] = 3.0
    jobs = _dry_run_jobs(demo_run, config)
    # sky_gap moves the EE sky annulus: the per-image EE profiles and what follows them.
    assert {"ee_profile", "ee_mean", "apcorr", "total_flux"} <= set(jobs), jobs
    assert jobs["ee_profile"] == 16, jobs
    other = (
        "background",
        "detect",
        "photometry",
        "catalog",
        "forced",
        "timeseries_frames",
        "lightcurve",
        "inventory",
        "demo_data",
    )
    assert not set(jobs) & set(other), jobs


def _jobs_run(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a Snakemake run printed."""
    jobs, rule = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if match:
            rule = match.group(1)
            jobs.append((rule, ""))
        elif rule and line.strip().startswith("wildcards:"):
            jobs[-1] = (rule, line.strip().removeprefix("wildcards:").strip())
    return jobs


def test_a_new_image_reruns_only_its_jobs(resumed_run):
    """Adding one image to the field data set reruns the inventory, that image's jobs and
    its group's aggregation, and nothing of the other images, groups or data sets."""
    extra = resumed_run / "extra"
    extra.mkdir(exist_ok=True)
    source = sorted((resumed_run / "resources" / "demo" / "field").glob("*nrcblong_cal.fits"))[0]
    new = "jw09999001001_02101_00001_nrcblong_cal"
    shutil.copy(source, extra / f"{new}.fits")
    config = _config()
    field = config["datasets"]["demo_field"]
    field["files"] = [field["files"], "extra/*_cal.fits"]
    (resumed_run / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(resumed_run, "--cores", "2")
    jobs = _jobs_run(proc.stdout + proc.stderr)
    rules = {rule for rule, _ in jobs}
    assert "inventory" in rules
    image_rules = ("background", "detect", "photometry", "plot_field_detections")
    per_image = [(r, w) for r, w in jobs if r in image_rules]
    assert sorted(r for r, _ in per_image) == sorted(image_rules), jobs
    assert all(new in w for _, w in per_image), per_image
    others = [(r, w) for r, w in jobs if r not in ("inventory", "all", *image_rules)]
    assert others, "the group's catalog was not rebuilt"
    assert all("demo_field" in w and "F444W" in w for _, w in others), others
