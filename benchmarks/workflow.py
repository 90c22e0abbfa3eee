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

This is a benchmark, not a test: it prints figures and checks only that each run succeeded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
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


def run(args: list[str], workdir: Path, timeout: float) -> float:
    """Run snakemake with ``args`` in ``workdir``; return the wall time in seconds."""
    cmd = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "-d", str(workdir), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
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
    args = parser.parse_args(argv)

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
