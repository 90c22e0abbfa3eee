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
import sys
import time
from pathlib import Path

import yaml
from conftest import REPO, run_snakemake


def _outputs(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.suffix in (".ecsv", ".png", ".reg", ".fits")
    }


def _start(workdir: Path, *args: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config" / "config.yaml"),
        *args,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def test_sigkill_then_rerun_equals_uninterrupted_run(demo_run, tmp_path):
    """Kill the demo run (cores 2) mid-way, resume with 1 core: outputs equal demo_run's."""
    reference = _outputs(demo_run)
    assert reference, "the reference demo run wrote nothing"
    workdir = tmp_path / "killed"
    (workdir / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    proc = _start(workdir, "--cores", "2")
    deadline = time.time() + 300
    # Wait until the run is past the inventory and has written some per-image results.
    while time.time() < deadline and proc.poll() is None:
        done = (
            [p for p in (workdir / "results").rglob("*.ecsv")]
            if (workdir / "results").exists()
            else []
        )
        if len(done) >= 6:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir, "--cores", "1", "--rerun-incomplete", "--keep-going")
    resumed = _outputs(workdir)
    assert sorted(resumed) == sorted(reference)
    differ = [name for name in reference if resumed[name] != reference[name]]
    assert not differ, f"outputs differ from the uninterrupted run: {differ[:10]}"


def _dry_run_jobs(workdir: Path, config: dict) -> dict[str, int]:
    path = workdir / "config" / "dry.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--configfile",
            str(path),
            "-n",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
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
    assert jobs, "changing an option of the standard data set reran nothing"
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


def test_a_new_image_reruns_only_its_jobs(demo_run):
    extra = demo_run / "extra"
    extra.mkdir(exist_ok=True)
    source = sorted((demo_run / "resources" / "demo" / "field").glob("*nrcblong_cal.fits"))[0]
    shutil.copy(source, extra / "jw09999001001_02101_00001_nrcblong_cal.fits")
    config = _config()
    field = config["datasets"]["demo_field"]
    field["files"] = [field["files"], "extra/*_cal.fits"]
    jobs = _dry_run_jobs(demo_run, config)
    assert jobs.get("inventory") == 1
    per_image = {
        rule: n for rule, n in jobs.items() if rule in ("background", "detect", "photometry")
    }
    assert per_image and set(per_image.values()) == {1}, jobs
    other = ("ee_profile", "sb_profile", "forced", "timeseries_frames", "demo_data")
    assert not set(jobs) & set(other), jobs
