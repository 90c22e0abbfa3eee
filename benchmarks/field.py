"""Speed of the per-image field step on a 4096x4096 float32 image (issue 3 / issue 7).

For 10^4 and 10^5 stars, 5 radii (2, 3, 4, 5, 6 px) and a 10-15 px sky annulus, prints
sources per second of

* aperflow: ``estimate_background`` (Background2D, 64 px boxes) + ``find_sources`` (DAO)
  + ``aperture_photometry`` (exact overlap, clipped-median local sky with neighbours
  masked, ERR errors; ``--workers`` threads) + writing the table (ECSV + Parquet), and
  the photometry alone on 1 thread and on ``--workers``;
* the seed-000 way: a per-source ``sigma_clipped_stats`` loop over the annulus masks (the
  sky computed once, not once per radius as the notebook does) + photutils
  ``aperture_photometry`` per radius; timed on at most ``--seed-max`` sources and
  reported as a rate;
* the SEP reference pipeline when ``sep`` is installed: ``sep.Background``, ``sep.extract``
  and ``sep.sum_circle`` with ``bkgann`` (a plain annulus mean, not a clipped median).

Each pipeline is timed twice on the same image and the faster pass is reported. Not a
test: run ``python benchmarks/field.py`` (``--sizes 10000`` for a quick look); the full
run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

RADII = [2.0, 3.0, 4.0, 5.0, 6.0]
ANNULUS = (10.0, 15.0)
SHAPE = (4096, 4096)
FWHM = 2.5


def make_image(n: int, seed: int = 1):
    """Sky 100 + Gaussian stars (FWHM 2.5 px) + Poisson-like noise; float32, with ERR."""
    rng = np.random.default_rng(seed)
    ny, nx = SHAPE
    x = rng.uniform(20, nx - 20, n)
    y = rng.uniform(20, ny - 20, n)
    flux = 10 ** rng.uniform(2.5, 5.0, n)
    image = np.full(SHAPE, 100.0)
    sigma = FWHM / 2.3548
    half = 7
    off = np.arange(-half, half + 1)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    gx = np.exp(-0.5 * ((ix[:, None] + off - x[:, None]) / sigma) ** 2)
    gy = np.exp(-0.5 * ((iy[:, None] + off - y[:, None]) / sigma) ** 2)
    stamps = flux[:, None, None] * gy[:, :, None] * gx[:, None, :] / (2 * np.pi * sigma**2)
    idx = (iy[:, None, None] + off[None, :, None]) * nx + (ix[:, None, None] + off[None, None, :])
    np.add.at(image.ravel(), idx.ravel(), stamps.ravel())
    error = np.sqrt(image + 25.0)
    image += rng.normal(0.0, 1.0, SHAPE) * error
    return image.astype(np.float32), error.astype(np.float32), x, y


def timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - t0


def aperflow_step(image, error, outdir: Path, workers: int = 1):
    """Background + detection + photometry + writing; returns (times dict, n sources)."""
    from astropy.table import Table

    from aperflow.background import estimate_background
    from aperflow.detection import find_sources
    from aperflow.photometry import aperture_photometry
    from aperflow.tables import write_table

    times = {}
    bkg, times["background"] = timed(estimate_background, image, None, "2d", box_size=64)
    src, times["detection"] = timed(
        find_sources, image - bkg.background, bkg.rms, fwhm=FWHM, threshold=5.0
    )
    res, times["photometry"] = timed(
        aperture_photometry,
        image,
        src["x"],
        src["y"],
        RADII,
        error=error,
        annulus=ANNULUS,
        neighbour_radius=2 * FWHM,
        workers=workers,
    )
    t0 = time.perf_counter()
    table = Table({"id": src["id"], "x": src["x"], "y": src["y"]})
    for j, r in enumerate(RADII):
        table[f"flux_r{r:g}"] = res.flux[:, j]
        table[f"flux_err_r{r:g}"] = res.flux_err[:, j]
        table[f"flags_r{r:g}"] = res.flags[:, j]
    table["sky"], table["sky_std"], table["n_sky"] = res.sky, res.sky_std, res.n_sky
    write_table(table, outdir / "phot.ecsv", outdir / "phot.parquet")
    times["writing"] = time.perf_counter() - t0
    return times, len(src)


def photometry_at_truth(image, error, x, y, workers: int = 1):
    from aperflow.photometry import aperture_photometry

    _, t = timed(
        aperture_photometry,
        image,
        x,
        y,
        RADII,
        error=error,
        annulus=ANNULUS,
        neighbour_radius=2 * FWHM,
        workers=workers,
    )
    return t


def seed000_photometry(image, x, y):
    """Seed 000's aperture_phot, with the annulus loop done once for all radii."""
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

    positions = np.transpose((x, y))
    annulus_masks = CircularAnnulus(positions, r_in=ANNULUS[0], r_out=ANNULUS[1]).to_mask(
        method="center"
    )
    sky = []
    for mask in annulus_masks:
        values = mask.multiply(image)
        ok = np.logical_and(mask.data > 0, np.isfinite(values))
        sky.append(sigma_clipped_stats(values[ok], sigma=3.5, maxiters=5)[1])
    sky = np.array(sky)
    for r in RADII:
        aperture = CircularAperture(positions, r=r)
        phot = aperture_photometry(image, aperture, method="exact")
        _ = phot["aperture_sum"] - sky * aperture.area
    return sky


def sep_pipeline(image, error):
    import sep

    data = image.astype(np.float64)
    t0 = time.perf_counter()
    bkg = sep.Background(data, bw=64, bh=64)
    sub = data - bkg.back()
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(10_000)
    objects = sep.extract(sub, 5.0, err=bkg.globalrms)
    for r in RADII:
        sep.sum_circle(
            data,
            objects["x"],
            objects["y"],
            r,
            err=error.astype(np.float64),
            bkgann=ANNULUS,
        )
    return time.perf_counter() - t0, len(objects)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--seed-max",
        type=int,
        default=10_000,
        help="sources timed with the seed-000 loop (it is slow)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="threads of the aperflow photometry step"
    )
    args = parser.parse_args(argv)
    try:
        import sep  # noqa: F401

        have_sep = True
    except ImportError:
        have_sep = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            image, error, x, y = make_image(n)
            # best of two: the first pass over a 64 MB image also pays the process's
            # memory growth (page faults), which SEP, timed later, would not
            runs = [aperflow_step(image, error, Path(tmp), args.workers) for _ in range(2)]
            times, n_found = min(runs, key=lambda r: sum(r[0].values()))
            total = sum(times.values())
            t_phot = photometry_at_truth(image, error, x, y)
            t_phot_n = photometry_at_truth(image, error, x, y, args.workers)
            m = min(n, args.seed_max)
            _, t_seed = timed(seed000_photometry, image, x[:m], y[:m])
            seed_rate = m / t_seed
            line = {
                "n": n,
                "found": n_found,
                "steps": times,
                "total": total,
                "phot_rate": n / t_phot,
                "phot_rate_n": n / t_phot_n,
                "workers": args.workers,
                "seed_rate": seed_rate,
                "seed_n": m,
            }
            if have_sep:
                line["sep_time"], line["sep_found"] = min(
                    sep_pipeline(image, error) for _ in range(2)
                )
            rows.append(line)
            _print(line, have_sep)


def _print(r, have_sep):
    s = r["steps"]
    print(f"\n=== {r['n']:,} stars on a {SHAPE[0]}x{SHAPE[1]} float32 image, 5 radii ===")
    print(
        f"aperflow per-image step: {r['total']:.2f} s for {r['found']:,} detections "
        f"({r['found'] / r['total']:,.0f} sources/s): background {s['background']:.2f} s, "
        f"detection {s['detection']:.2f} s, photometry {s['photometry']:.2f} s, "
        f"writing {s['writing']:.2f} s"
    )
    print(
        f"aperflow photometry alone (at the {r['n']:,} true positions): "
        f"{r['phot_rate']:,.0f} sources/s on 1 thread, {r['phot_rate_n']:,.0f} on "
        f"{r['workers']}"
    )
    print(
        f"seed-000 loop photometry ({r['seed_n']:,} sources timed): "
        f"{r['seed_rate']:,.0f} sources/s -> aperflow is "
        f"{r['phot_rate'] / r['seed_rate']:.1f}x faster on 1 thread, "
        f"{r['phot_rate_n'] / r['seed_rate']:.1f}x on {r['workers']}"
    )
    if have_sep:
        print(
            f"SEP reference pipeline: {r['sep_time']:.2f} s for {r['sep_found']:,} "
            f"detections ({r['sep_found'] / r['sep_time']:,.0f} sources/s); "
            f"aperflow / SEP time = {r['total'] / r['sep_time']:.2f}"
        )
    else:
        print("SEP not installed: no reference pipeline (pip install sep)")


if __name__ == "__main__":
    main()
