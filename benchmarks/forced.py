"""Speed of forced photometry (issue 6) on a 2048x2048 HST-like image.

For N sky circles (one radius, as a coordinate list gives them) and N DS9 lines, prints
the time to read the targets and regions per second of

* aperflow: ``read_coordinates`` / ``read_ds9`` and ``measure_image`` (one batched
  ``Sky*Aperture.to_pixel`` per shape, local clipped-median sky, DAOPHOT errors);
* the seed-004 way: one ``SkyCircularAperture`` + ``ApertureStats`` per region on a
  ``Background2D``-subtracted image (timed on at most ``--seed-max`` regions, reported as a
  rate).

Not a test: ``python benchmarks/forced.py`` (``--sizes 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

SHAPE = (2048, 2048)


def make_image(path: Path, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [1024.5, 1024.5]
    wcs.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    x, y = rng.uniform(30, SHAPE[1] - 30, n), rng.uniform(30, SHAPE[0] - 30, n)
    data = rng.normal(0.0, 0.01, SHAPE).astype(np.float32)
    hdr = wcs.to_header()
    hdr["BUNIT"], hdr["PHOTFLAM"], hdr["PHOTPLAM"] = "ELECTRONS/S", 7.86e-20, 5921.1
    primary = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "FILTER1": "F606W"})
    primary["EXPTIME"] = 1000.0
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(data, hdr, name="SCI")]).writeto(
        path
    )
    sky = wcs.pixel_to_world(x, y)
    return sky.ra.deg, sky.dec.deg


def seed_way(path: Path, ra, dec, radius_arcsec: float) -> float:
    """Seconds per region of seed 004's loop (one ApertureStats per region)."""
    from astropy.coordinates import SkyCoord
    from photutils.aperture import ApertureStats, SkyCircularAperture
    from photutils.background import Background2D

    data = fits.getdata(path, "SCI")
    wcs = WCS(fits.getheader(path, "SCI"))
    t0 = time.perf_counter()
    bkg = Background2D(data, (64, 64), filter_size=(3, 3))
    sub = data - bkg.background
    for r, d in zip(ra, dec, strict=True):
        ap = SkyCircularAperture(SkyCoord(r * u.deg, d * u.deg), radius_arcsec * u.arcsec)
        ApertureStats(sub, ap, wcs=wcs).to_table(columns=["sum", "sum_aper_area"])
    return (time.perf_counter() - t0) / len(ra)


def main() -> None:
    from aperflow.forced import measure_image
    from aperflow.images import open_image
    from aperflow.regions import read_coordinates, read_ds9

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=[200, 2000, 10000])
    p.add_argument("--seed-max", type=int, default=300)
    args = p.parse_args()
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ra, dec = make_image(tmp / "bench_drc.fits", n)
            csv = tmp / "t.csv"
            csv.write_text(
                "id,ra,dec\n"
                + "\n".join(
                    f"s{i},{r:.8f},{d:.8f}" for i, (r, d) in enumerate(zip(ra, dec, strict=True))
                )
            )
            reg = tmp / "r.reg"
            reg.write_text(
                "fk5\n"
                + "\n".join(
                    f'circle({r:.8f},{d:.8f},0.25") # text={{s{i}}}'
                    for i, (r, d) in enumerate(zip(ra, dec, strict=True))
                )
            )
            t0 = time.perf_counter()
            targets = read_coordinates(csv, 0.25)
            t_csv = time.perf_counter() - t0
            t0 = time.perf_counter()
            read_ds9(reg)
            t_reg = time.perf_counter() - t0
            image = open_image(tmp / "bench_drc.fits")
            measure_image(image, list(targets)[:1])  # imports and caches out of the timing
            t0 = time.perf_counter()
            table = measure_image(image, targets)
            t_meas = time.perf_counter() - t0
            assert len(table) == n
            k = min(n, args.seed_max)
            per = seed_way(tmp / "bench_drc.fits", ra[:k], dec[:k], 0.25)
            print(
                f"N={n:6d}: read csv {t_csv:6.2f} s, read ds9 {t_reg:6.2f} s, "
                f"measure {t_meas:6.2f} s = {n / t_meas:8.0f} regions/s; "
                f"seed-004 loop {1 / per:8.0f} regions/s"
            )


if __name__ == "__main__":
    main()
