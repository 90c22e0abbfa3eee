"""Time-series speed: integrations per second of the whole per-file step, and the batched
2-D Gaussian fit against one astropy fitter call per frame (seed 002's way).

Writes a JWST-like TSO exposure of ``--nints`` 64x64 integrations in two ``calints``
segments (SCI, ERR, DQ, INT_TIMES; a pixel-integrated Moffat star with pointing jitter and
photon + read noise) into a temporary folder, then prints:

- the per-file step (:func:`aperflow.timeseries.measure_series`: read in batches,
  background annulus, CC + 2-D Gaussian centroid, exact-overlap photometry at 5 radii,
  and writing the ECSV + Parquet table, as the ``timeseries_frames`` rule does) on one
  segment in one process, and on both segments in two processes at once (what Snakemake
  runs with ``--cores 2``): integrations per second;
- the centroid fit alone on 21x21 stamps: :func:`aperflow.centroids.fit_gaussian_2d`
  (vectorised Levenberg-Marquardt, analytic Jacobian) vs astropy's ``LevMarLSQFitter``
  and photutils' ``centroid_2dg`` called once per frame, with the largest difference of
  the centres from astropy's.

    python benchmarks/timeseries.py [--nints 10000] [--batch-size 256] [--reference 200]

A benchmark, not a test: it prints figures (goal: >= 2000 integrations/s on 2 cores).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import warnings
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


def frames_step(args) -> tuple[int, float, float, float]:
    """The timeseries_frames rule's work on one file: measure and write the table.

    Returns the integrations, the wall time, the CPU time of measuring and of writing.
    """
    path, batch_size = args
    t0, c0 = time.perf_counter(), time.process_time()
    table = measure_series(path, {**OPTIONS, "batch_size": batch_size})
    c1 = time.process_time()
    write_table(table, path.with_suffix(".ecsv"), parquet=path.with_suffix(".parquet"))
    c2 = time.process_time()
    return len(table), time.perf_counter() - t0, c1 - c0, c2 - c1


def fit_comparison(paths, nstamps: int, nref: int):
    """Our batched fit vs one astropy/photutils call per frame on the same stamps."""
    from astropy.modeling import fitting, models
    from photutils.centroids import centroid_2dg

    with fits.open(paths[0]) as hdul:
        sci = hdul["SCI"].data[:nstamps].astype(float) - 0.4
        err = hdul["ERR"].data[:nstamps].astype(float)
    n = len(sci)
    stamps, x0, y0 = extract_stamps(sci, np.full(n, 31.3), np.full(n, 32.6), 10)
    errs, _, _ = extract_stamps(err, np.full(n, 31.3), np.full(n, 32.6), 10)
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
    del errs
    return n, t_cc / n, t_fit / n, t_astropy, t_2dg, diff


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--reference", type=int, default=200, help="frames for astropy")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aperflow-bench-ts-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = write_segments(folder, args.nints)
        print(f"wrote {args.nints} integrations of 64x64 in 2 segments "
              f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        frames_step((paths[0], args.batch_size))  # warm the page cache and imports
        n1, t1, cpu_measure, cpu_write = frames_step((paths[0], args.batch_size))
        with mp.get_context("fork").Pool(2) as pool:
            t0 = time.perf_counter()
            done = pool.map(frames_step, [(p, args.batch_size) for p in paths])
            wall = time.perf_counter() - t0
        n2 = sum(d[0] for d in done)
        cpu2 = max(d[2] + d[3] for d in done)
        nfit, cc, fit, astro, g2d, diff = fit_comparison(paths, 4000, args.reference)
    print()
    load = os.getloadavg()[0]
    print(f"load average before the runs: {load0:.1f}, after: {load:.1f} (on {os.cpu_count()} "
          "cores; other work on the machine slows the wall-clock figures)")  # fmt: skip
    print("| what | integrations | wall s | integrations/s (wall) | CPU s | "
          "integrations/CPU-s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    cpu1 = cpu_measure + cpu_write
    print(f"| per-file step, 1 process (1 segment) | {n1} | {t1:.2f} | {n1 / t1:,.0f} | "
          f"{cpu1:.2f} | {n1 / cpu1:,.0f} |")  # fmt: skip
    print(f"| of which writing ECSV + Parquet | | | | {cpu_write:.2f} | |")
    print(f"| per-file step, 2 processes (2 segments, 2 cores) | {n2} | {wall:.2f} | "
          f"{n2 / wall:,.0f} | {cpu2:.2f} (slowest) | {n2 / cpu2:,.0f} |")  # fmt: skip
    print()
    print("Centroid on 21x21 stamps (CPU ms per frame):")
    print("| method | ms/frame | speed-up vs astropy |")
    print("|---|---|---|")
    print(f"| cross-correlation (batched, {nfit} frames) | {cc * 1e3:.4f} | {astro / cc:,.0f}x |")
    print(f"| 2-D Gaussian LM, analytic Jacobian (batched, {nfit} frames) | {fit * 1e3:.4f} | "
          f"{astro / fit:,.0f}x |")  # fmt: skip
    print(f"| astropy LevMarLSQFitter, one call per frame | {astro * 1e3:.3f} | 1x |")
    print(f"| photutils centroid_2dg, one call per frame | {g2d * 1e3:.3f} | "
          f"{astro / g2d:.1f}x |")  # fmt: skip
    print(f"\nlargest centre difference from astropy's fit: {diff:.2e} px")
    print(f"goal >= 2000 integrations/s on 2 cores: {'met' if n2 / wall >= 2000 else 'NOT met'}"
          f" on the wall clock; {n2 / cpu2:,.0f}/s from the CPU time of the slower process "
          "(the wall-clock rate of an otherwise idle 2-core machine)")  # fmt: skip


if __name__ == "__main__":
    main()
