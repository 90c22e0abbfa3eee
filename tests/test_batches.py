"""Batches of images per job (execution.batch_size, issue 7): the batch plan, the members'
own logs and failure isolation, and the workflow with batches equal to one job per image.

The workflow tests share one batched run (fixture ``batch_run``: the demo's field and
forced data sets with ``batch_size: 2`` and one corrupt file added to the field set) and
compare it with the shared default run (``demo_run``) byte for byte.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run_snakemake

from aperflow.batches import (
    _boundary,
    allowed_rules,
    batch_mem_mb,
    batch_members,
    batch_nice,
    batch_runtime,
    file_workers,
    image_threads,
    image_workers,
    listed_sizes_mb,
    member_log,
    plan_batches,
    read_timings,
    rule_name,
    run_batch,
    timed,
)

# ------------------------------------------------------------------------- the plan


def _ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"jw{rng.randrange(10**9):09d}_{k:05d}_nrcb1_cal" for k in range(n)]


def test_plan_covers_every_image_once_in_sorted_batches_of_at_most_size():
    ids = _ids(2000)
    for size in (1, 2, 7, 100):
        batches = plan_batches(ids + ids[:10], size)
        assert [i for b in batches for i in b] == sorted(ids)
        assert max(len(b) for b in batches) <= size
    assert plan_batches(ids, 1) == [[i] for i in sorted(ids)]
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        plan_batches(ids, 0)


def test_plan_has_about_one_batch_per_0_6_size_images():
    """Runs between hash boundaries are ~geometric with mean ``size``, cut at ``size``:
    E[batches] = N/size x 1/(1 - 1/e) = 1.58 N/size (so batches hold ~0.63 size)."""
    n, size = 5000, 100
    count = len(plan_batches(_ids(n), size))
    assert 1.35 * n / size < count < 1.85 * n / size, count


def _run_of(ids: list[str], size: int) -> dict[str, int]:
    """Index of the run (between hash boundaries) of each id."""
    runs, k = {}, -1
    for i, image in enumerate(sorted(ids)):
        if i == 0 or _boundary(image, size):
            k += 1
        runs[image] = k
    return runs


def test_a_new_image_changes_only_the_batches_of_its_run():
    """Adding an image leaves every batch outside its run as it was (Snakemake reruns
    nothing of them), where cutting the sorted list every ``size`` would move every later
    batch."""
    size = 20
    ids = _ids(1000)
    before = {tuple(b) for b in plan_batches(ids, size)}
    rng = random.Random(7)
    for _ in range(50):
        new = f"jw{rng.randrange(10**9):09d}_99999_nrcb1_cal"
        after = {tuple(b) for b in plan_batches([*ids, new], size)}
        changed = {i for b in after - before for i in b} - {new}
        runs = _run_of([*ids, new], size)
        # Every moved image is in the new image's run (or the run it split off).
        assert {runs[i] for i in changed} <= {runs[new] - 1, runs[new]}, new
        assert len(changed) < 8 * size
    # The naive plan for contrast: an image near the start moves almost every batch.
    naive = lambda xs: {tuple(sorted(xs)[k : k + size]) for k in range(0, len(xs), size)}  # noqa: E731
    assert len(naive(ids) - naive(["jw000000000_0_first", *ids])) == len(naive(ids))


def test_rule_names_are_valid_and_resources_follow_the_largest_member():
    assert rule_name("field", "ngc-346 deep", 3) == "field_batch_ngc_346_deep_3"
    assert batch_mem_mb([10.0, 200.0, 5.0]) == 4 * 200 + 1000
    assert batch_mem_mb([10.0], attempt=2) == 2 * 1040
    assert batch_runtime([0.3] * 100) == 3 + 6  # 3 min + 100 x (3 s + 0.3 MB / 100 MB/min)
    assert batch_runtime([0.3] * 100, attempt=2) == 17  # ceil(2 x 8.3)


def test_nice_orders_the_batches_longest_first_by_their_runtime_requests(tmp_path):
    big, small = tmp_path / "big.fits", tmp_path / "small.fits"
    with big.open("wb") as f:
        f.truncate(300_000_000)  # 300 MB (sparse): 3 min of the request
    with small.open("wb") as f:
        f.truncate(1_000_000)
    nice = batch_nice(
        {
            "big": [big],  # ceil(3 + 0.05 + 3) = 7 min
            "many": [small] * 40,  # ceil(3 + 40 x 0.06) = 6
            "not made yet": [tmp_path / "missing.fits"] * 2,  # ceil(3 + 2 x 0.05) = 4
        }
    )
    assert nice == {"big": 0, "many": 1, "not made yet": 3}
    assert batch_nice({}) == {}


def test_batch_members_come_from_the_image_list_and_must_match_the_outputs(tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text("data/a.b_cal.fits\ndata/c_cal.fits.gz\n")
    outputs = ["results/ds/photometry/a.b_cal.ecsv", "results/ds/photometry/c_cal.ecsv"]
    assert batch_members(listed, outputs) == [
        (0, "a.b_cal", "data/a.b_cal.fits"),
        (1, "c_cal", "data/c_cal.fits.gz"),
    ]
    with pytest.raises(ValueError, match="do not match the outputs"):
        batch_members(listed, outputs[::-1])


# -------------------------------------------------------------- logs of the members


def test_member_log_writes_the_members_file_and_restores_the_job_log(tmp_path):
    root = logging.getLogger("aperflow")
    job = logging.FileHandler(tmp_path / "job.log")
    root.handlers[:] = [job]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    for k in range(2):
        with member_log(tmp_path / f"m{k}.log", "background") as log, timed("background", "m"):
            log.error("m%d.fits: no background: bad", k)
            warnings.warn("same place, shown for every member", UserWarning, stacklevel=1)
    logging.getLogger("aperflow.job").info("summary")
    job.close()
    for k in range(2):
        text = (tmp_path / f"m{k}.log").read_text()
        assert f"ERROR aperflow.background: m{k}.fits: no background: bad" in text
        assert "shown for every member" in text
        assert re.search(r"INFO aperflow.timing: background m \d+\.\d{4} s", text)
    assert (tmp_path / "job.log").read_text() == "summary\n"  # nothing of the members
    assert root.handlers == [job]
    timings = read_timings(tmp_path)
    assert [(step, item) for step, item, _ in timings] == [("background", "m")] * 2
    assert all(0 <= seconds < 5 for _, _, seconds in timings)


def test_run_batch_goes_on_after_a_failed_member_and_says_which(tmp_path):
    class M:
        def __init__(self, image):
            self.image = image

    log = logging.getLogger("aperflow.test_batch")
    handler = logging.FileHandler(tmp_path / "batch.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    failed = run_batch([M("a"), M("b"), M("c")], lambda m: m.image != "b", log, "no photometry")
    handler.close()
    log.removeHandler(handler)
    assert failed == ["b"]
    text = (tmp_path / "batch.log").read_text()
    assert "b: no photometry (see its logs)" in text and "c: done" in text
    assert "batch of 3 images: 1 with no photometry (b)" in text
    assert "WARNING" not in text and "ERROR" not in text  # counted once, in b's own logs


# ------------------------------------------------------- members of a field batch


def _member(tmp_path: Path, image: str, path: Path):
    from aperflow.steps import FieldMember

    steps = ("background", "detect", "photometry", "plot_field_detections")
    return FieldMember(
        image=image,
        path=str(path),
        background=str(tmp_path / f"{image}_bkg.fits"),
        sources=str(tmp_path / f"{image}_sources.ecsv"),
        photometry=str(tmp_path / f"{image}.ecsv"),
        parquet=str(tmp_path / f"{image}.parquet"),
        plot=str(tmp_path / f"{image}.png"),
        logs={s: str(tmp_path / "logs" / "ds" / s / f"{image}.log") for s in steps},
    )


def test_a_corrupt_member_gets_failed_outputs_and_its_error_in_problems(tmp_path):
    from aperflow.problems import collect_problems
    from aperflow.steps import run_field_member
    from aperflow.tables import read_table

    bad = tmp_path / "broken_cal.fits"
    bad.write_bytes(b"SIMPLE  =  this is not FITS")
    member = _member(tmp_path, "broken_cal", bad)
    for log in member.logs.values():
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    assert run_field_member(member, {}, {}, None) is False
    for path in (member.background, member.sources, member.parquet, member.plot):
        assert Path(path).stat().st_size > 0, path
    table = read_table(member.photometry)
    assert len(table) == 0 and "broken_cal.fits" in table.meta["error"]
    problems = collect_problems(tmp_path / "logs", tmp_path / "none.ecsv")
    rows = {(r["stage"], r["item"], r["level"]) for r in problems}
    assert ("background", "broken_cal", "ERROR") in rows
    assert ("photometry", "broken_cal", "ERROR") in rows
    assert ("plot_field_detections", "broken_cal", "WARNING") in rows
    background = [r for r in problems if r["stage"] == "background"][0]
    assert str(bad) in background["message"], background["message"]


def test_a_batch_catches_what_a_one_image_job_lets_fail(tmp_path, demo_dir):
    """A bug (here a TypeError from an unknown background option) fails a one-image job,
    so a rerun retries it; in a batch it fails that member only, with its traceback."""
    from aperflow.steps import ImageStep, field_background, run_field_member

    image = sorted((demo_dir / "field").glob("*_cal.fits"))[0]
    options = {"background": {"method": "global", "no_such_option": 1}}
    with pytest.raises(TypeError, match="no_such_option"):
        field_background(ImageStep(image), tmp_path / "b.fits", options)
    member = _member(tmp_path, image.stem, image)
    for log in member.logs.values():
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    assert run_field_member(member, options, {}, None) is False
    text = Path(member.logs["background"]).read_text()
    assert f"ERROR aperflow.background: {image}: no background: TypeError" in text
    assert "Traceback" in text


def test_threads_follow_the_image_file_size_and_the_config_only(tmp_path):
    assert image_threads({}) == 2 and image_threads({"execution": {"image_threads": 3}}) == 3
    assert image_workers([0.3, 31.9], 2) == 1  # small images: one thread
    assert image_workers([0.3, 32.0], 2) == 2  # the largest member decides
    assert image_workers([], 4) == 1
    big, small = tmp_path / "big.fits", tmp_path / "small.fits"
    for path, size in ((big, 32_000_000), (small, 31_999_999)):
        with path.open("wb") as f:
            f.truncate(size)  # sparse files: the size without the bytes
    assert file_workers(big, 3) == 3 and file_workers(small, 3) == 1
    assert file_workers(tmp_path / "missing.fits", 3) == 1 and file_workers(tmp_path, 3) == 1


def test_a_member_on_threads_measures_what_one_thread_does(tmp_path, demo_dir, monkeypatch):
    """The workers reach background, detection and photometry (here forced on the small
    demo image) and change nothing but ``y`` in the last bits."""
    import aperflow.background
    import aperflow.batches
    import aperflow.detection
    import aperflow.photometry
    from aperflow.steps import run_field_member
    from aperflow.tables import read_table

    seen = []

    def spy(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            seen.append((name, kwargs.get("workers", 1)))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    spy(aperflow.background, "estimate_background")
    spy(aperflow.detection, "find_sources")
    spy(aperflow.photometry, "measure_image")
    image = sorted((demo_dir / "field").glob("*_cal.fits"))[0]
    tables = []
    for threads, min_mb in ((1, 32.0), (3, 0.0)):
        monkeypatch.setattr(aperflow.batches, "THREADS_MIN_MB", min_mb)
        member = _member(tmp_path / str(threads), image.stem, image)
        for log in member.logs.values():
            Path(log).parent.mkdir(parents=True, exist_ok=True)
        seen.clear()
        assert run_field_member(member, {}, {}, None, threads=threads)
        assert {w for _, w in seen} == {threads} and len(seen) == 3, seen
        tables.append(read_table(member.photometry))
    one, many = tables
    assert len(one) == len(many) > 10
    for name in one.colnames:
        if one[name].dtype.kind == "f":
            np.testing.assert_allclose(many[name], one[name], rtol=1e-12, atol=1e-10)
        else:
            assert list(many[name]) == list(one[name]), name


# ----------------------------------------------------------- the batched workflow

BATCH_SIZE = 2
# Sorts beside ..._00003_nrcb1_cal and shares its batch (checked in the test).
CORRUPT = "jw01234001001_01101_00004_nrcb1_cal"


def _batch_config(workdir: Path, size: int, corrupt: bool, slurm_extra: str = "") -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["execution"]["batch_size"] = size
    if slurm_extra:
        config["execution"]["slurm_extra"] = slurm_extra
    if corrupt:
        field = config["datasets"]["demo_field"]
        field["files"] = [field["files"], "extra/*_cal.fits"]
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def _demo_copy(demo_run: Path, workdir: Path) -> None:
    """The demo run's input files (mtimes kept, so demo_data does not run again)."""
    shutil.copytree(demo_run / "resources", workdir / "resources")


def _targets(demo_run: Path) -> list[str]:
    """Every field and forced output of the demo run, and the inventory."""
    found = [
        p
        for dataset in ("demo_field", "demo_forced")
        for p in (demo_run / "results" / dataset).rglob("*")
        if p.is_file()
    ]
    if not found:
        pytest.fail(f"the demo run made no field/forced outputs:\n{_stderr(demo_run)}")
    return ["results/inventory.ecsv", *sorted(str(p.relative_to(demo_run)) for p in found)]


def _stderr(workdir: Path) -> str:
    path = workdir / "snakemake.stderr"
    return path.read_text()[-3000:] if path.exists() else ""


@pytest.fixture(scope="module")
def batch_run(demo_run, tmp_path_factory) -> Path:
    """The demo's field and forced outputs made with batch_size 2, a corrupt file added."""
    workdir = tmp_path_factory.mktemp("batch_run")
    _demo_copy(demo_run, workdir)
    (workdir / "extra").mkdir()
    (workdir / "extra" / f"{CORRUPT}.fits").write_bytes(b"not a FITS file at all\n" * 100)
    _batch_config(workdir, BATCH_SIZE, corrupt=True)
    proc = run_snakemake(workdir, "--cores", "2", *_targets(demo_run), check=False)
    (workdir / "snakemake.stderr").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, _stderr(workdir)
    return workdir


def _jobs(log: str) -> dict[str, int]:
    """Rule name -> jobs, from the "Job stats" table Snakemake prints."""
    table = log[log.index("Job stats:") :].split("\n\n")[0]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+)\s+(\d+)$", table, re.M)
        if m.group(1) != "total"
    }


@pytest.mark.slow
def test_batched_outputs_equal_one_job_per_image(demo_run, batch_run):
    """Every per-image and group output of the field and forced data sets, byte for byte,
    made by one job per batch instead of one per image and step."""
    assert (
        plan_batches(
            [p.stem for p in (batch_run / "resources/demo/field").glob("*_cal.fits")] + [CORRUPT],
            BATCH_SIZE,
        ).count(["jw01234001001_01101_00003_nrcb1_cal", CORRUPT])
        == 1
    )
    different = [
        target
        for target in _targets(demo_run)[1:]
        if (demo_run / target).read_bytes() != (batch_run / target).read_bytes()
    ]
    assert not different, different
    log = (batch_run / "snakemake.stderr").read_text()
    ran = {rule for rule in re.findall(r"^(?:local)?rule (\S+):$", log, re.M)}
    assert not ran & {"background", "detect", "photometry", "plot_field_detections", "forced"}
    assert {r for r in ran if "_batch_" in r} >= {"field_batch_demo_field_0"}


@pytest.mark.slow
def test_a_corrupt_image_in_a_batch_is_a_problem_and_the_others_finish(batch_run):
    from aperflow.tables import read_table

    results, logs = batch_run / "results" / "demo_field", batch_run / "logs" / "demo_field"
    table = read_table(results / "photometry" / f"{CORRUPT}.ecsv")
    assert len(table) == 0 and f"extra/{CORRUPT}.fits" in table.meta["error"]
    text = (logs / "background" / f"{CORRUPT}.log").read_text()
    assert re.search(
        rf"^ERROR aperflow.background: extra/{CORRUPT}.fits: no background", text, re.M
    )
    batch_log = (logs / "field_batch" / "jw01234001001_01101_00003_nrcb1_cal.log").read_text()
    assert f"{CORRUPT}: no photometry (see its logs)" in batch_log
    assert "jw01234001001_01101_00003_nrcb1_cal: done" in batch_log
    problems = read_table(batch_run / "results" / "problems.ecsv").filled("")
    rows = {(r["dataset"], r["stage"], r["item"], r["level"]) for r in problems}
    assert ("demo_field", "inventory", CORRUPT, "ERROR") in rows
    assert ("demo_field", "background", CORRUPT, "ERROR") in rows
    assert ("demo_field", "photometry", CORRUPT, "ERROR") in rows
    # The corrupt file is left out of its group: the catalog equals the demo run's (above).
    assert not any(r[1] in ("catalog", "field_batch") for r in rows), rows


@pytest.mark.slow
def test_dry_run_has_one_job_per_batch(demo_run, tmp_path):
    """``snakemake -n`` after the inventory: 6 + 2 images x steps become batches."""
    workdir = tmp_path / "dry"
    _demo_copy(demo_run, workdir)
    (workdir / "results").mkdir()
    shutil.copy2(demo_run / "results" / "inventory.ecsv", workdir / "results")
    counts = {}
    for size in (1, BATCH_SIZE):
        _batch_config(workdir, size, corrupt=False, slurm_extra="--mail-type=NONE")
        proc = run_snakemake(workdir, "-n", "--cores", "2", *_targets(demo_run)[1:])
        counts[size] = _jobs(proc.stdout + proc.stderr)
    one, batched = counts[1], counts[BATCH_SIZE]
    field = sorted(p.stem for p in (workdir / "resources/demo/field").glob("*_cal.fits"))
    forced = sorted(p.stem for p in (workdir / "resources/demo/forced").glob("*_drc.fits"))
    for rule in ("background", "detect", "photometry", "plot_field_detections"):
        assert one[rule] == len(field) and rule not in batched
    assert one["forced"] == one["plot_forced_regions"] == len(forced)
    assert "forced" not in batched and "plot_forced_regions" not in batched

    def batch_jobs(mode: str, lists: bool = False) -> int:
        return sum(
            n
            for r, n in batched.items()
            if r.startswith(f"{mode}_batch_") and r.endswith("_images") == lists
        )

    assert batch_jobs("field") == len(plan_batches(field, BATCH_SIZE)) < 4 * len(field)
    assert batch_jobs("forced") == len(plan_batches(forced, BATCH_SIZE)) < 2 * len(forced)
    # Plus one trivial local job per batch writing its list of images (resources.smk).
    assert batch_jobs("field", lists=True) == batch_jobs("field")
    assert batch_jobs("forced", lists=True) == batch_jobs("forced")
    # The group steps are the same jobs either way.
    for rule in ("catalog", "forced_filter", "forced_catalog", "plot_field_sky"):
        assert one[rule] == batched[rule]
    # The batches and their lists go before the group steps (common.smk, priorities).
    priorities = _per_rule(proc.stdout + proc.stderr, r"priority: (\d+)", "0")
    assert {p for r, p in priorities.items() if "_batch_" in r} == {"1"}
    assert priorities["catalog"] == priorities["forced_catalog"] == "0"
    # Each batch asks SLURM for its --nice (longest first), then execution.slurm_extra.
    images = {
        rule_name(mode, f"demo_{mode}", k): [
            workdir / "resources/demo" / mode / f"{i}.fits" for i in batch
        ]
        for mode, ids in (("field", field), ("forced", forced))
        for k, batch in enumerate(plan_batches(ids, BATCH_SIZE))
    }
    extra = _per_rule(proc.stdout + proc.stderr, r"resources: .*slurm_extra=([^,]+).*", "")
    nice = batch_nice(images)
    assert {r: extra[r] for r in nice} == {
        r: f"--nice={n} --mail-type=NONE" for r, n in nice.items()
    }
    # A cluster job's Snakemake defines only the batch rules it may run (common.smk).
    everything = _rules(run_snakemake(workdir, "--list-rules").stdout)
    batches = {r for r in everything if "_batch_" in r}
    remote = _rules(
        run_snakemake(
            workdir,
            "--list-rules",
            "--mode",
            "remote",
            "--allowed-rules",
            "field_batch_demo_field_0",
        ).stdout
    )
    assert {r for r in remote if "_batch_" in r} == {"field_batch_demo_field_0"} < batches
    assert remote - batches == everything - batches


def _rules(listing: str) -> set[str]:
    """Rule names of ``snakemake --list-rules``."""
    return {line.split()[0] for line in listing.splitlines() if line and not line[0].isspace()}


def test_allowed_rules_are_read_from_a_snakemake_command_line():
    job = ["snakemake", "--target-jobs", "a:", "--allowed-rules", "a", "b", "--cores", "1"]
    assert allowed_rules(job) == {"a", "b"}
    assert allowed_rules(["snakemake", "--allowed-rules=a"]) == {"a"}
    assert allowed_rules(["snakemake", "--cores", "2"]) is None
    assert allowed_rules(["snakemake", "--allowed-rules"]) is None


def _per_rule(log: str, pattern: str, default: str) -> dict[str, str]:
    """Rule name -> what ``pattern``'s group matches in the job lines a dry run prints for
    it (``default`` when none matches)."""
    found, rule = {}, None
    for line in log.splitlines():
        if m := re.match(r"^(?:local)?(?:rule|checkpoint) (\S+):$", line):
            rule = m.group(1)
            found.setdefault(rule, default)
        elif (m := re.match(rf"^\s+{pattern}$", line)) and rule is not None:
            found[rule] = m.group(1)
    return found


def test_listed_sizes_follow_the_list_file(tmp_path):
    """The sizes are cached per list and modification time: a rewritten list (as a changed
    image makes Snakemake rewrite it) gives the sizes of its files now."""
    a, b, listed = tmp_path / "a.fits", tmp_path / "b.fits", tmp_path / "list.txt"
    a.write_bytes(b"x" * 2_000_000)
    b.write_bytes(b"x" * 500_000)
    listed.write_text(f"{a}\n{b}\n")
    assert listed_sizes_mb(listed) == [2.0, 0.5] == listed_sizes_mb(listed)
    a.write_bytes(b"x" * 3_000_000)
    listed.write_text(f"{b}\n{a}\n")
    os.utime(listed, ns=(listed.stat().st_atime_ns, listed.stat().st_mtime_ns + 10**9))
    assert listed_sizes_mb(listed) == [0.5, 3.0]
