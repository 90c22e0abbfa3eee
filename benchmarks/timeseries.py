"""Time-series speed: integrations per second of the whole per-file step, on the wall
clock, and the batched 2-D Gaussian fit against one astropy fitter call per frame (seed
002's way), measured in the same run.

Writes a JWST-like TSO exposure of ``--nints`` 64x64 integrations in two ``calints``
segments (SCI, ERR, DQ, INT_TIMES; a pixel-integrated Moffat star with pointing jitter and
photon + read noise) into a temporary folder, then times the per-file step of the
``timeseries_frames`` rule: :func:`aperflow.timeseries.measure_series` (read in batches
through a memory map, annulus background, CC + 2-D Gaussian centroid, exact-overlap
photometry at 5 radii) and :func:`aperflow.tables.write_table` (ECSV + Parquet), I/O
included, in three ways:

- one segment in one process (``workers=1``);
- one segment with its batches shared between the process and a forked worker
  (``workers=2``: a job given 2 threads);
- both segments in 2 processes at once, one each (what Snakemake runs with ``--cores 2``
  and one thread per job);

each ``--repeat`` times (best and median wall clock, and the CPU time of every process),
then once more in fresh Python processes, as a Snakemake job runs it (interpreter start
and imports included). Last, the centroid fit alone on 21x21 stamps:
:func:`aperflow.centroids.fit_gaussian_2d` (vectorised Levenberg-Marquardt) vs astropy's
``LevMarLSQFitter`` and photutils' ``centroid_2dg`` called once per frame, with the
largest difference of the centres from astropy's.

The machine is shared: the load average is printed before and after, and the wall-clock
figures are those of the best repeat. Like every workflow job (through ``job_logger``),
the process keeps its freed memory (:func:`aperflow.memory.keep_freed_memory`).

    python benchmarks/timeseries.py [--nints 10000] [--batch-size 256] [--repeat 3]

A benchmark, not a test: it prints figures (goal: >= 2000 integrations/s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from aperflow.centroids import cross_correlation_centroids, extract_stamps, fit_gaussian_2d
from aperflow.psf import MoffatPSF
from aperflow.tables import write_table
from aperflow.timeseries import measure_series

SHAPE = (64, 64)
OPTIONS = {
    "radii": [3, 4, 5, 6, 8],
    "target": {"x": 31.3, "y": 32.6},
    "background": {"method": "annulus", "annulus": [12, 20]},
    "centroid": {"box": 10, "follow": "gaussian"},
}
GOAL = 2000.0


def keep_freed_memory() -> bool:
    """As every workflow job does (job_logger); False where aperflow or glibc lacks it."""
    try:
        from aperflow.memory import keep_freed_memory as keep
    except ImportError:
        return False
    return keep()


def write_segments(folder: Path, nints: int, seed: int = 1) -> list[Path]:
    """Two calints segments of a jittering star (64 sub-pixel positions, reused)."""
    rng = np.random.default_rng(seed)
    psf = MoffatPSF(2.3, beta=2.8, radius=20.0)
    xs = 31.3 + rng.normal(0, 0.1, 64)
    ys = 32.6 + rng.normal(0, 0.1, 64)
    stars = np.stack([psf.render(SHAPE, x, y, 6000.0) for x, y in zip(xs, ys, strict=True)])
    paths = []
    half = nints // 2
    for k, (start, stop) in enumerate(((0, half), (half, nints))):
        n = stop - start
        pick = rng.integers(0, 64, n)
        model = stars[pick] + 0.4  # DN/s, sky 0.4
        var = model / 40.0 + (14.0 / 40.0) ** 2  # 20 s x gain 2; read noise 14 e-
        sci = (model + rng.normal(0, 1, model.shape) * np.sqrt(var)).astype(np.float32)
        mid = 60500.2 + (np.arange(start, stop) + 0.5) * 20.0 / 86400
        primary = fits.PrimaryHDU()
        primary.header.update(
            {"TELESCOP": "JWST", "NINTS": n, "INTSTART": start + 1, "BUNIT": "DN/s",
             "TARG_RA": 218.2767, "TARG_DEC": 21.8946, "EFFINTTM": 20.0, "GAIN": 2.0}
        )  # fmt: skip
        times = Table(
            {
                "integration_number": np.arange(start + 1, stop + 1),
                "int_mid_MJD_UTC": mid,
                "int_mid_BJD_TDB": mid + 0.004,
            }  # fmt: skip
        )
        path = folder / f"bench-seg{k + 1:03d}_calints.fits"
        fits.HDUList(
            [
                primary,
                fits.ImageHDU(sci, name="SCI"),
                fits.ImageHDU(np.sqrt(var).astype(np.float32), name="ERR"),
                fits.ImageHDU(np.zeros(sci.shape, np.uint32), name="DQ"),
                fits.BinTableHDU(times, name="INT_TIMES"),
            ]
        ).writeto(path)
        paths.append(path)
    return paths


@dataclass
class Run:
    """One timed run: integrations, wall seconds, CPU seconds of all its processes."""

    nints: int
    wall: float
    cpu: float
    cpu_write: float = 0.0


def frames_step(args) -> Run:
    """The timeseries_frames rule's work on one file: measure and write the table."""
    path, batch_size, workers = args
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    table = measure_series(path, {**OPTIONS, "batch_size": batch_size}, workers=workers)
    c1 = time.process_time()
    write_table(table, path.with_suffix(".ecsv"), parquet=path.with_suffix(".parquet"))
    wall = time.perf_counter() - t0
    c2 = time.process_time()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return Run(len(table), wall, c2 - c0 + workers_cpu, c2 - c1)


def two_files_two_processes(paths, batch_size: int) -> Run:
    """Both segments at once, one process each (Snakemake --cores 2, 1 thread a job)."""
    with mp.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        done = pool.map(frames_step, [(p, batch_size, 1) for p in paths])
        wall = time.perf_counter() - t0
    return Run(sum(d.nints for d in done), wall, sum(d.cpu for d in done))


_FRESH = """
import json, sys
from aperflow.logs import job_logger
from aperflow.tables import write_table
from aperflow.timeseries import measure_series
path, batch, workers, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
job_logger(path + ".log", "timeseries_frames")
table = measure_series(path, {**json.loads(options), "batch_size": batch}, workers=workers)
write_table(table, path + ".fresh.ecsv", parquet=path + ".fresh.parquet")
print(len(table))
"""


def fresh_processes(paths, batch_size: int, workers: int) -> Run:
    """The step in new Python processes, one per file at once, as Snakemake jobs run:
    interpreter start, imports and the job logger included."""
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    args = [str(batch_size), str(workers), json.dumps(OPTIONS)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _FRESH, str(p), *args], stdout=subprocess.PIPE)
        for p in paths
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    wall = time.perf_counter() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(proc.returncode for proc in procs):
        raise RuntimeError("a fresh-process run failed")
    cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return Run(sum(int(out) for out in outputs), wall, cpu)


def imports_alone() -> float:
    """Wall seconds of a fresh process that only starts and imports what a
    timeseries_frames job imports (scipy.stats and scipy.ndimage come in on first use)."""
    code = "import aperflow.logs, aperflow.tables, aperflow.timeseries, scipy.stats, scipy.ndimage"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def repeated(measure, repeat: int) -> list[Run]:
    return [measure() for _ in range(repeat)]


def fit_comparison(paths, nstamps: int, nref: int):
    """Our batched fit vs one astropy/photutils call per frame on the same stamps."""
    from astropy.modeling import fitting, models
    from photutils.centroids import centroid_2dg

    with fits.open(paths[0]) as hdul:
        sci = hdul["SCI"].data[:nstamps].astype(float) - 0.4
    n = len(sci)
    stamps, _, _ = extract_stamps(sci, np.full(n, 31.3), np.full(n, 32.6), 10)
    t0 = time.process_time()
    cx, cy = cross_correlation_centroids(stamps, fwhm=2.3)
    t_cc = time.process_time() - t0
    t0 = time.process_time()
    ours = fit_gaussian_2d(stamps, cx, cy, None, fwhm=2.3)
    t_fit = time.process_time() - t0
    yy, xx = np.mgrid[0:21, 0:21]
    fitter = fitting.LevMarLSQFitter()
    ref = np.empty((nref, 2))
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(nref):  # the seed-002 way: one fitter call per frame
            start = models.Gaussian2D(stamps[k].max(), cx[k], cy[k], 1.0, 1.0, 0.0)
            g = fitter(start + models.Const2D(0.0), xx, yy, stamps[k], maxiter=200)
            ref[k] = g[0].x_mean.value, g[0].y_mean.value
    t_astropy = (time.process_time() - t0) / nref
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(nref):
            centroid_2dg(stamps[k])
    t_2dg = (time.process_time() - t0) / nref
    diff = np.max(np.hypot(ours.x[:nref] - ref[:, 0], ours.y[:nref] - ref[:, 1]))
    return n, t_cc / n, t_fit / n, t_astropy, t_2dg, diff


def uptime() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} cores"


def step_row(what: str, procs: str, runs: list[Run], best_only: bool = False) -> str:
    """A table row: best and median wall-clock rate, CPU of the best run."""
    best = min(runs, key=lambda r: r.wall)
    rates = [r.nints / r.wall for r in runs]
    median = "" if best_only else f"{statistics.median(rates):,.0f}"
    return (
        f"| {what} | {procs} | {best.nints} | {best.wall:.2f} | {best.nints / best.wall:,.0f}"
        f" | {median} | {best.cpu:.2f} | {best.nints / best.cpu:,.0f} |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each way")
    parser.add_argument("--reference", type=int, default=200, help="frames for astropy")
    args = parser.parse_args(argv)
    kept = keep_freed_memory()
    load0 = uptime()
    with tempfile.TemporaryDirectory(prefix="aperflow-bench-ts-") as tmp:
        paths = write_segments(Path(tmp), args.nints)
        bs = args.batch_size
        frames_step((paths[0], bs, 1))  # warm the page cache and imports
        one = repeated(lambda: frames_step((paths[0], bs, 1)), args.repeat)
        shared = repeated(lambda: frames_step((paths[0], bs, 2)), args.repeat)
        pair = repeated(lambda: two_files_two_processes(paths, bs), args.repeat)
        fresh_one = fresh_processes(paths[:1], bs, 1)
        fresh_two = fresh_processes(paths[:1], bs, 2)
        fresh_pair = fresh_processes(paths, bs, 1)
        start_up = imports_alone()
        nfit, cc, fit, astro, g2d, diff = fit_comparison(paths, 4000, args.reference)
    print(f"{args.nints} integrations of 64x64 in 2 segments of {args.nints // 2}; batches of "
          f"{bs}; 5 radii; freed memory kept: {kept}")  # fmt: skip
    print(f"before: {load0}\nafter:  {uptime()}")
    print("\nPer-file step (measure_series + write_table ECSV + Parquet, I/O included);")
    print(f"wall clock: best and median of {args.repeat} runs; CPU: all processes of the "
          "best run; every process single-threaded (numpy/BLAS calls stay on one core).\n")  # fmt: skip
    print("| what | processes | integrations | wall s | integrations/s (best) | "
          "integrations/s (median) | CPU s | integrations/CPU-s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(step_row("1 segment, workers=1", "1", one))
    print(f"| of which writing ECSV + Parquet (CPU) | | | | | | {min(one, key=lambda r: r.wall).cpu_write:.2f} | |")  # fmt: skip
    print(step_row("1 segment, workers=2 (its batches shared with a forked worker)", "2", shared))  # fmt: skip
    print(step_row("2 segments at once, workers=1 each (Snakemake --cores 2)", "2", pair))
    print(step_row("fresh process: 1 segment, workers=1 (start + imports)", "1", [fresh_one], True))  # fmt: skip
    print(step_row("fresh process: 1 segment, workers=2 (start + imports)", "2", [fresh_two], True))  # fmt: skip
    print(step_row("fresh processes: 2 segments at once (start + imports)", "2", [fresh_pair], True))  # fmt: skip
    print(f"| fresh process: start + imports alone (incl. scipy.stats, scipy.ndimage) | 1 | | "
          f"{start_up:.2f} | | | | |")  # fmt: skip
    print("\nCentroid on 21x21 stamps (CPU ms per frame, 1 process):")
    print("| method | ms/frame | speed-up vs astropy |")
    print("|---|---|---|")
    print(f"| cross-correlation (batched, {nfit} frames) | {cc * 1e3:.4f} | {astro / cc:,.0f}x |")
    print(f"| 2-D Gaussian LM, analytic Jacobian (batched, {nfit} frames) | {fit * 1e3:.4f} | "
          f"{astro / fit:,.0f}x |")  # fmt: skip
    print(f"| astropy LevMarLSQFitter, one call per frame | {astro * 1e3:.3f} | 1x |")
    print(f"| photutils centroid_2dg, one call per frame | {g2d * 1e3:.3f} | "
          f"{astro / g2d:.1f}x |")  # fmt: skip
    print(f"\nlargest centre difference from astropy's fit: {diff:.2e} px")
    best_shared = max(r.nints / r.wall for r in shared)
    best_pair = max(r.nints / r.wall for r in pair)
    reference = 2.0 / astro  # astropy's fit alone, one call per frame, on both cores
    print(f"\nreference: astropy's fitter alone, one call per frame, on 2 cores: "
          f"{reference:,.0f} integrations/s; the whole step here is "
          f"{max(best_shared, best_pair) / reference:.0f}x that")  # fmt: skip
    for what, rate in (("1 segment, workers=2", best_shared), ("2 segments, 2 processes", best_pair)):  # fmt: skip
        verdict = "met" if rate >= GOAL else "NOT met"
        print(f"goal >= {GOAL:,.0f} integrations/s wall clock on 2 cores ({what}): "
              f"{rate:,.0f}/s, {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
