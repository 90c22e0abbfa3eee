"""Snakemake's own overhead: N trivial one-file jobs, wall time vs the time inside the jobs.

Each job is a bash command that writes one file (or, batched, B files) and records its own
start and end with bash's ``$EPOCHREALTIME`` (no extra process), optionally sleeping
``--work-ms`` per file to stand in for real work. For every configuration the script runs
a fresh workflow in a temporary directory and prints one table row:

- ``dry s``: ``snakemake -n`` (parse + DAG, no execution);
- ``wall s``: the full run, ``snakemake --cores C`` from start to exit;
- ``in-job s``: the summed time inside the jobs' commands;
- ``overhead s``: wall minus in-job time per core (in-job / C), i.e. what Snakemake itself
  costs on top of the work; ``overhead %`` is that over the wall time;
- ``ms/output``: the overhead per output file;
- ``% at 1 s/out``: a projection, not a measurement: the overhead share if every output
  took 1 s of work (overhead / (overhead + N x 1 s / C)), e.g. a small image's field step.

Rows: N = 100 and 1000 one-file jobs with the ``ilp`` and the ``greedy`` scheduler, the
same N produced by N/B jobs of B files each (the batching design: per-image rules that take a
batch of images per job), and N = 100 one-file ``script:`` jobs (a Python process each, as
every aperflow rule runs; ``--script-sizes``). ``--big`` adds N = 5000 (greedy only; ilp there takes 25-30 min,
``--ilp-big`` runs it anyway). ``--slurm`` adds runs through ``profiles/slurm`` on a running
SLURM (``scripts/slurm/start.sh``), with the one-file jobs grouped ``--batch`` at a time
into submissions (``group-components``).

    python benchmarks/workflow.py [--sizes 100 1000] [--big] [--slurm] [--cores 2]
                                  [--batch 50] [--work-ms 0]

``--field`` measures the REAL field workflow instead (issue 7's goal): N small simulated
JWST-like images (128 x 128, MJy/sr with ERR/DQ/AREA and a TAN WCS, a few stars each, in
``--groups`` groups of NIRCam detector/filter), run with ``execution.batch_size`` B (1: one
job per image and step, the default) by ``snakemake --profile profiles/local --cores C``
in a fresh directory, every target of the data set: per image background, sources, photometry
(ECSV + Parquet) and the detections plot; per group the catalog and three plots. Printed:

- ``wall s``: the run from start to exit (parse, DAG, the inventory, every job, the
  problems table);
- ``inside s``: the summed time inside the aperflow functions: every ``aperflow.timing``
  line of the job logs (each per-image step, batched or not, times its own call: opening
  the image, computing, writing; the group scripts time theirs), plus the inventory job's
  time from its benchmark TSV (its script is not instrumented, so its ~1-2 s of Python
  start-up counts as work). The imports the steps need are done before the timed part
  (``aperflow.steps.preload``): a job's start-up is the workflow's cost, not work;
- ``overhead s`` = wall - inside / C: what the workflow itself costs (Snakemake's
  scheduling and bookkeeping, each job's Python start-up and imports, cores left idle at
  the start and end); ``overhead %`` = overhead / wall, the same as
  (wall x C - inside) / (wall x C). The goal is < 10 % at N = 5000.

With ``--slurm`` the same run goes through ``profiles/slurm`` (a running SLURM:
``scripts/slurm/start.sh``); C is then the CPUs of the test node (2), where the batches run
as one submission each and the inventory, catalogs and group plots on the submitting
machine. ``--slurm-jobs J`` passes ``--jobs J`` (default: the profile's 100, all batches at
once; SLURM then starts the longest pending first, by the ``--nice`` each batch asks for).

    python benchmarks/workflow.py --field [--field-sizes 200 5000] [--field-batches 1 250 500]
                                  [--groups 2] [--cores 2] [--slurm] [--slurm-size 5000]
                                  [--slurm-batch 500] [--slurm-jobs 3] [--keep DIR]

Each (N, B) pair of the lists is run, but B = 1 only for N <= ``--max-one-job-n`` (one job
per image costs ~1.5 s of start-up per job: 20,000 jobs would take hours) and B > 1 only
for B < N (a single batch leaves the other core idle); the B = 1 row at
the largest N is then extrapolated linearly from the measured one, and labelled so (a lower
bound: Snakemake's scheduling cost grows faster than linearly with the number of jobs).

This is a benchmark, not a test: it prints figures and checks only that each run succeeded.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SNAKEFILE = r"""
N = int(config["outputs"])
BATCH = int(config["batch"])
SLEEP = float(config["work_ms"]) / 1000.0
WORK = f"sleep {SLEEP:.4f}; " if SLEEP > 0 else ""
# Each output file holds "start end" of the command that wrote it (bash's $EPOCHREALTIME).
STAMP = 't0=$EPOCHREALTIME; for f in {output}; do %s:; done; t1=$EPOCHREALTIME; ' \
    'for f in {output}; do echo "$t0 $t1" > $f; done' % WORK


wildcard_constraints:
    i=r"\d+",
    b=r"\d+",


rule all:
    input:
        expand("out/{i}.txt", i=range(N)) if BATCH <= 1
        else expand("out/{b}/{k}.txt", b=range(N // BATCH), k=range(BATCH)),


rule one:
    output:
        "out/{i}.txt",
    shell:
        STAMP


rule batch:
    output:
        expand("out/{{b}}/{k}.txt", k=range(BATCH)),
    shell:
        STAMP


rule script_one:
    output:
        "out/py/{i}.txt",
    params:
        sleep=SLEEP,
    script:
        "stamp.py"


rule script_all:
    input:
        expand("out/py/{i}.txt", i=range(N)),
"""

# A `script:` job, as every aperflow rule is: Python start-up and Snakemake's script preamble
# come before the stamp, so they count as overhead, as they do for real rules.
STAMP_PY = """import time
t0 = time.time()
if snakemake.params.sleep > 0:
    time.sleep(snakemake.params.sleep)
t1 = time.time()
for path in snakemake.output:
    with open(path, "w") as f:
        f.write(f"{t0} {t1}\\n")
"""


@dataclass
class Row:
    """One measured configuration."""

    label: str
    n: int
    jobs: int
    scheduler: str
    dry: float
    wall: float
    in_job: float
    cores: int

    @property
    def overhead(self) -> float:
        return self.wall - self.in_job / self.cores

    def projected(self, seconds_per_output: float) -> float:
        """Overhead share (%) if each output took ``seconds_per_output`` of work instead."""
        work = self.n * seconds_per_output / self.cores
        return 100 * self.overhead / (self.overhead + work)

    def format(self) -> str:
        return (
            f"| {self.label:<22} | {self.n:>5} | {self.jobs:>5} | {self.scheduler:<6} "
            f"| {self.dry:>6.2f} | {self.wall:>7.2f} | {self.in_job:>8.2f} "
            f"| {self.overhead:>10.2f} | {100 * self.overhead / self.wall:>5.1f} "
            f"| {1000 * self.overhead / self.n:>9.1f} | {self.projected(1.0):>11.1f} |"
        )


HEADER = (
    "| run                    |     N |  jobs | sched  |  dry s |  wall s | in-job s "
    "| overhead s |     % | ms/output | % at 1 s/out |"
)


def in_job_seconds(workdir: Path) -> float:
    """Summed duration of the jobs' commands, each counted once (a batch stamps B files)."""
    spans = set()
    for path in (workdir / "out").rglob("*.txt"):
        t0, t1 = path.read_text().split()
        spans.add((float(t0), float(t1)))
    return sum(t1 - t0 for t0, t1 in spans)


def run(
    args: list[str],
    workdir: Path,
    timeout: float,
    snakefile: Path | str = "Snakefile",
    log: Path | None = None,
) -> float:
    """Run snakemake with ``args`` in ``workdir``; return the wall time in seconds.
    Snakemake's output (stdout + stderr) goes to ``log`` when given, failed or not."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if log is not None:
        log.write_text(output)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return wall


def measure(
    label: str,
    n: int,
    batch: int,
    scheduler: str,
    cores: int,
    work_ms: float,
    extra=(),
    target: str = "all",
) -> Row:
    """One fresh workflow of ``n`` outputs written by ``n / batch`` jobs."""
    with tempfile.TemporaryDirectory(prefix="aperflow-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "Snakefile").write_text(SNAKEFILE)
        (workdir / "stamp.py").write_text(STAMP_PY)
        config = ["--config", f"outputs={n}", f"batch={batch}", f"work_ms={work_ms}"]
        common = [*config, "--scheduler", scheduler, "--quiet", "all", "--", target]
        dry = run(["-n", "--cores", str(cores), *common], workdir, timeout=3600)
        wall = run(["--cores", str(cores), *extra, *common], workdir, timeout=7200)
        jobs = n // batch if batch > 1 else n
        return Row(label, n, jobs, scheduler, dry, wall, in_job_seconds(workdir), cores)


# ------------------------------------------------------------- the real field workflow

#: Detector/filter of each group of the simulated images (NIRCam short wave, 0.031"/px).
FIELD_GROUPS = (
    ("NRCB1", "F200W"), ("NRCB2", "F200W"), ("NRCB3", "F200W"), ("NRCB4", "F200W"),
    ("NRCB1", "F150W"), ("NRCB2", "F150W"), ("NRCB3", "F150W"), ("NRCB4", "F150W"),
)  # fmt: skip


def write_small_images(
    outdir: Path, n: int, groups: int = 2, shape=(128, 128), nstars: int = 5, seed: int = 7
) -> None:
    """``n`` small JWST-like field images (MJy/sr, ERR, DQ, AREA, TAN WCS), a few stars each.

    Built from :mod:`aperflow.simulate`'s pieces (the demo's headers, PSF and noise model
    at the demo's F200W calibration), round-robin over ``groups`` detector/filter groups;
    ~10 ms per image.
    """
    import numpy as np

    from aperflow import simulate as sim
    from aperflow.psf import MoffatPSF

    outdir.mkdir(parents=True, exist_ok=True)
    band = sim._FIELD_BANDS[0]  # F200W: pixel scale, PHOTMJSR, FWHM, sky
    psf = MoffatPSF(band.fwhm, beta=2.8, radius=10.0)
    pixar_sr = (band.pixscale / 206264.80624709636) ** 2
    rng = np.random.default_rng(seed)
    gain, exptime = 2.0, 300.0
    for k in range(n):
        detector, filt = FIELD_GROUPS[k % groups]
        centre = (sim._FIELD_CENTER[0] + 0.01 * (k // groups), sim._FIELD_CENTER[1])
        wcs = sim._tan_wcs(centre, band.pixscale, shape)
        x = rng.uniform(12, shape[1] - 12, nstars)
        y = rng.uniform(12, shape[0] - 12, nstars)
        rate = psf.render(shape, x, y, rng.uniform(300, 5000, nstars)) + band.sky / band.photmjsr
        electrons = rng.poisson(rate * gain * exptime).astype(float)
        electrons += rng.normal(0.0, 12.0, shape)
        to_sb = band.photmjsr / (gain * exptime)
        planes = {
            "SCI": (electrons * to_sb).astype(np.float32),
            "ERR": (np.sqrt(rate * gain * exptime + 144.0) * to_sb).astype(np.float32),
            "DQ": np.zeros(shape, np.uint32),
            "AREA": np.ones(shape, np.float32),
        }
        primary = sim._jwst_primary(
            "NIRCAM", detector, filt, "CLEAR", "SUB128", exptime, 60400.0 + k * 1e-3, centre
        )
        sci = sim._sci_header(wcs, "MJy/sr", band.photmjsr, pixar_sr)
        name = f"jw09999{k // 1000:03d}001_0{FIELD_GROUPS.index((detector, filt)) % 10}101"
        path = outdir / f"{name}_{k:05d}_{detector.lower()}_cal.fits"
        sim._image_hdus(primary, sci, planes).writeto(path, overwrite=True)


def field_config(workdir: Path, images: Path, batch: int) -> Path:
    """The repository's config with one field data set of ``images`` and ``batch``."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"]["activate"] = False
    config["datasets"] = {"bench": {"files": str(images / "*_cal.fits"), "mode": "field"}}
    config["execution"]["batch_size"] = batch
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def inside_seconds(workdir: Path) -> float:
    """Seconds inside the aperflow functions: the timing lines plus the inventory job."""
    from aperflow.batches import read_timings

    timed = sum(seconds for _, _, seconds in read_timings(workdir / "logs"))
    tsv = workdir / "logs" / "benchmarks" / "inventory.tsv"
    inventory = float(tsv.read_text().splitlines()[1].split("\t")[0]) if tsv.exists() else 0.0
    return timed + inventory


@dataclass
class FieldRow:
    """One measured run of the field workflow."""

    label: str
    n: int
    batch: int
    jobs: int
    wall: float
    inside: float
    cores: int
    note: str = ""

    @property
    def overhead(self) -> float:
        return self.wall - self.inside / self.cores

    def format(self) -> str:
        return (
            f"| {self.label:<34} | {self.n:>5} | {self.batch:>5} | {self.jobs:>5} "
            f"| {self.wall:>7.1f} | {self.inside:>8.1f} | {self.overhead:>10.1f} "
            f"| {100 * self.overhead / self.wall:>5.1f} | {self.note}"
        )


FIELD_HEADER = (
    "| run                                |     N | batch |  jobs |  wall s | inside s "
    "| overhead s |     % |"
)


def measure_field(
    label: str,
    images: Path,
    n: int,
    batch: int,
    cores: int,
    profile: str = "local",
    keep: Path | None = None,
    extra: Sequence[str] = (),
) -> FieldRow:
    """The field workflow on ``images`` with batch size ``batch`` through
    ``profiles/<profile>`` in a fresh directory (kept under ``keep``, with Snakemake's
    output in ``snakemake.log``, when given)."""
    with tempfile.TemporaryDirectory(prefix="aperflow-field-") as tmp:
        workdir = Path(tmp) if keep is None else keep / f"field_{n}_{batch}_{label[:5]}"
        if keep is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        config = field_config(workdir, images, batch)
        args = ["--configfile", str(config), "--profile", str(REPO / "profiles" / profile)]
        if profile == "local":  # on SLURM, C is the node's CPUs; the profile sets the rest
            args += ["--cores", str(cores)]
        args += list(extra)
        log = workdir / "snakemake.log" if keep is not None else None
        wall = run([*args, "all"], workdir, 14400, REPO / "Snakefile", log)
        jobs = len(list((workdir / "logs" / "benchmarks").rglob("*.tsv")))
        return FieldRow(label, n, batch, jobs, wall, inside_seconds(workdir), cores)


def field_benchmark(args) -> None:
    """Print the field workflow's overhead table (see the module docstring)."""
    cache = Path(tempfile.mkdtemp(prefix="aperflow-images-"))
    print(
        f"Field workflow on N small images (128x128, 5 stars, {args.groups} groups), "
        f"--cores {args.cores}, profiles/local"
    )
    print(FIELD_HEADER)
    print("|" + "|".join("-" * (len(c)) for c in FIELD_HEADER.split("|")[1:-1]) + "|")
    measured_one: FieldRow | None = None
    for n in args.field_sizes:
        images = cache / str(n)
        start = time.perf_counter()
        write_small_images(images, n, args.groups)
        print(f"  ({n} images written in {time.perf_counter() - start:.0f} s)", flush=True)
        for batch in args.field_batches:
            if (batch == 1 and n > args.max_one_job_n) or (batch > 1 and batch >= n):
                continue  # hours of one-image jobs; or a single batch, idling a core
            label = "one job per image and step" if batch == 1 else "batches"
            row = measure_field(label, images, n, batch, args.cores, keep=args.keep)
            print(row.format(), flush=True)
            if batch == 1:
                measured_one = row
        if measured_one is not None and measured_one.n < n and 1 in args.field_batches:
            scale = n / measured_one.n
            row = FieldRow(
                "one job per image: EXTRAPOLATED", n, 1, int(measured_one.jobs * scale),
                measured_one.wall * scale, measured_one.inside * scale, args.cores,
                f"linear from N={measured_one.n} (a lower bound)",
            )  # fmt: skip
            print(row.format(), flush=True)
    if args.slurm:
        n, batch = args.slurm_size, args.slurm_batch
        images = cache / f"slurm{n}"
        write_small_images(images, n, args.groups)
        label = "SLURM (profiles/slurm), batches"
        extra = ["--jobs", str(args.slurm_jobs)] if args.slurm_jobs else []
        row = measure_field(label, images, n, batch, 2, "slurm", args.keep, extra)
        row.note = f"--jobs {args.slurm_jobs}" if args.slurm_jobs else "jobs: 100 (profile)"
        print(row.format(), flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    print(
        "inside = summed aperflow.timing lines of the job logs + the inventory job; "
        "overhead = wall - inside / cores; % = overhead / wall"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="N values")
    parser.add_argument("--big", action="store_true", help="add N=5000 (greedy)")
    parser.add_argument(
        "--script-sizes", type=int, nargs="*", default=[100], help="N for `script:` jobs"
    )
    parser.add_argument("--ilp-big", action="store_true", help="with --big: ilp at 5000 too")
    parser.add_argument("--slurm", action="store_true", help="add runs through profiles/slurm")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50, help="outputs per batched job")
    parser.add_argument("--work-ms", type=float, default=0.0, help="sleep per output (ms)")
    parser.add_argument("--field", action="store_true", help="the real field workflow")
    parser.add_argument("--field-sizes", type=int, nargs="+", default=[200, 5000])
    parser.add_argument("--field-batches", type=int, nargs="+", default=[1, 250, 500])
    parser.add_argument("--max-one-job-n", type=int, default=500, help="largest N for B = 1")
    parser.add_argument("--groups", type=int, default=2, help="detector/filter groups (<= 8)")
    parser.add_argument("--slurm-size", type=int, default=5000, help="N of the SLURM field run")
    parser.add_argument("--slurm-batch", type=int, default=500, help="B of the SLURM field run")
    parser.add_argument(
        "--slurm-jobs", type=int, help="--jobs of the SLURM field run (default: the profile's)"
    )
    parser.add_argument("--keep", type=Path, help="keep the field runs' directories here")
    args = parser.parse_args(argv)
    if args.field:
        field_benchmark(args)
        return

    sizes = args.sizes + ([5000] if args.big and 5000 not in args.sizes else [])
    print(
        f"Snakemake overhead, trivial one-file jobs, --cores {args.cores}, "
        f"work {args.work_ms:g} ms per output"
    )
    print(HEADER)
    print("|" + "|".join("-" * (len(c)) for c in HEADER.split("|")[1:-1]) + "|")
    for n in sizes:
        schedulers = ["ilp", "greedy"] if n < 5000 or args.ilp_big else ["greedy"]
        for scheduler in schedulers:
            row = measure("one job per output", n, 1, scheduler, args.cores, args.work_ms)
            print(row.format(), flush=True)
        label = f"batches of {args.batch}"
        row = measure(label, n, args.batch, "greedy", args.cores, args.work_ms)
        print(row.format(), flush=True)
    for n in args.script_sizes:
        label = "script: job per output"
        row = measure(label, n, 1, "greedy", args.cores, args.work_ms, target="script_all")
        print(row.format(), flush=True)
    if args.slurm:
        profile = str(REPO / "profiles" / "slurm")
        for n in [100]:
            extra = [
                "--profile",
                profile,
                "--groups",
                "one=bench",
                "--group-components",
                f"bench={args.batch}",
                "--jobs",
                "4",
            ]
            label = f"slurm, groups of {args.batch}"
            row = measure(label, n, 1, "greedy", args.cores, args.work_ms, extra=extra)
            row.jobs = -(-n // args.batch)
            print(row.format(), flush=True)
    print(
        "overhead = wall - in-job / cores; dry = parse + DAG only (snakemake -n); "
        "'% at 1 s/out' = overhead / (overhead + N x 1 s / cores), projected"
    )


if __name__ == "__main__":
    main()
