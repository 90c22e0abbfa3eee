"""Images that cover the regions, from the MAST archive (seed 004's ``ImageGetter``).

Optional: needs ``astroquery`` (``pip install 'aperflow[archive]'``); nothing else in
aperflow imports it. :func:`fetch_images` asks MAST for the science observations whose
footprint meets a circle around all targets (``padding_arcsec`` added), keeps the
products of the configured collection, instruments, filters, calibration level,
provenance/project and product type (e.g. HAP-SVM ``DRC``), and downloads them flat into
one folder. A file already there with the archive's size is reused, not fetched again.

Bootstrapping a data set from nothing (the workflow needs at least one file matching a
data set's ``files`` before it can plan anything)::

    python -m aperflow.archive regions.reg --outdir resources/archive/dwarfs \\
        --instruments ACS/WFC --filters F475W F814W
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from aperflow.regions import Target, TargetList, read_targets

__all__ = ["ArchiveError", "fetch_images", "target_footprint"]

log = logging.getLogger("aperflow.archive")


class ArchiveError(RuntimeError):
    """The archive step cannot run (astroquery missing, no sky target, query failed)."""


def _observations():
    try:
        from astroquery.mast import Observations
    except ImportError:
        raise ArchiveError(
            "the forced archive step needs astroquery, which is not installed: "
            "pip install 'aperflow[archive]' (or set forced.archive.activate: false)"
        ) from None
    return Observations


def target_footprint(
    targets: TargetList | list[Target], padding_arcsec: float = 10.0
) -> tuple[SkyCoord, u.Quantity]:
    """Centre and radius of a circle holding every sky target, plus ``padding_arcsec``.

    Raises
    ------
    ArchiveError
        When no target is in sky coordinates (pixel regions cannot be searched for).
    """
    centres = [t.region.center.icrs for t in targets if t.is_sky]
    if not centres:
        raise ArchiveError("no region in sky coordinates: nothing to search the archive for")
    coords = SkyCoord(centres)
    xyz = coords.cartesian.xyz.value.mean(axis=1)
    centre = SkyCoord(*xyz, representation_type="cartesian").spherical
    centre = SkyCoord(centre.lon, centre.lat, frame="icrs")
    sizes = [_size_arcsec(t) for t in targets if t.is_sky]
    radius = (centre.separation(coords).arcsec + np.asarray(sizes)).max()
    return centre, (radius + float(padding_arcsec)) * u.arcsec


def _size_arcsec(target: Target) -> float:
    reg = target.region
    for name in ("outer_radius", "radius"):
        if hasattr(reg, name):
            return float(getattr(reg, name).to_value(u.arcsec))
    for name in ("outer_width", "width"):
        if hasattr(reg, name):
            return float(getattr(reg, name).to_value(u.arcsec)) / 2.0
    return 0.0


def _as_list(value) -> list:
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str | int) else list(value)


def fetch_images(
    targets: TargetList | list[Target],
    outdir: str | Path,
    options: Mapping,
    observations=None,
) -> Table:
    """Query MAST for images covering ``targets`` and download them into ``outdir``.

    Parameters
    ----------
    targets : TargetList or list of Target
        The regions (only sky ones are searched for).
    outdir : str or Path
        Download folder; files already there (same size) are reused.
    options : mapping
        The ``forced.archive`` options: ``collection``, ``instruments``, ``filters``,
        ``calib_level``, ``provenance``, ``project``, ``products``, ``padding_arcsec``.
    observations : optional
        An ``astroquery.mast.Observations``-like object (for tests); default astroquery's.

    Returns
    -------
    Table
        One row per product: ``obs_id``, ``filename``, ``path``, ``size``, ``status``
        (``reused``, ``downloaded`` or the error).
    """
    obs_api = observations or _observations()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    centre, radius = target_footprint(targets, float(options.get("padding_arcsec", 10.0)))
    criteria = {
        "coordinates": centre,
        "radius": radius,
        "obs_collection": options.get("collection", "HST"),
        "dataproduct_type": "image",
        "intentType": "science",
    }
    for key, name in (
        ("instrument_name", "instruments"),
        ("filters", "filters"),
        ("calib_level", "calib_level"),
        ("provenance_name", "provenance"),
    ):
        values = _as_list(options.get(name))
        if values:
            criteria[key] = values
    log.info("MAST query: %.5f %+.5f within %.1f arcsec, %s", centre.ra.deg, centre.dec.deg,
             radius.to_value(u.arcsec), {k: v for k, v in criteria.items() if k not in ("coordinates", "radius")})  # fmt: skip
    try:
        obs = obs_api.query_criteria(**criteria)
        if len(obs) == 0:
            log.warning("MAST: no observation matches")
            return _manifest([])
        products = obs_api.get_product_list(obs)
        wanted = {"productSubGroupDescription": _as_list(options.get("products")) or ["DRC"]}
        if _as_list(options.get("project")):
            wanted["project"] = _as_list(options.get("project"))
        if _as_list(options.get("calib_level")):
            wanted["calib_level"] = _as_list(options.get("calib_level"))
        products = obs_api.filter_products(products, **wanted)
    except ArchiveError:
        raise
    except Exception as exc:  # network, service or query errors: say which, never hang on
        raise ArchiveError(f"MAST query failed ({type(exc).__name__}: {exc})") from None
    rows, fetch = [], []
    for k, product in enumerate(products):
        name = str(product["productFilename"])
        path = outdir / name
        size = int(product["size"]) if "size" in products.colnames and product["size"] else -1
        if path.exists() and (size < 0 or path.stat().st_size == size):
            rows.append((str(product["obs_id"]), name, str(path), size, "reused"))
        else:
            fetch.append(k)
    if fetch:
        try:
            result = obs_api.download_products(
                products[fetch], download_dir=str(outdir), flat=True, cache=True
            )
        except Exception as exc:
            raise ArchiveError(f"MAST download failed ({type(exc).__name__}: {exc})") from None
        status = {Path(str(r["Local Path"])).name: str(r["Status"]) for r in result}
        for k in fetch:
            product = products[k]
            name = str(product["productFilename"])
            st = status.get(name, "missing from the download result")
            rows.append((str(product["obs_id"]), name, str(outdir / name),
                         int(product["size"]) if "size" in products.colnames else -1,
                         "downloaded" if st == "COMPLETE" else st))  # fmt: skip
    return _manifest(sorted(rows, key=lambda r: r[1]))


def _manifest(rows) -> Table:
    names = ("obs_id", "filename", "path", "size", "status")
    if not rows:
        return Table(names=names, dtype=(str, str, str, int, str))
    return Table(rows=rows, names=names, dtype=(str, str, str, int, str))


def main(argv: list[str] | None = None) -> int:
    """``python -m aperflow.archive REGIONS... --outdir DIR``: download covering images."""
    p = argparse.ArgumentParser(prog="python -m aperflow.archive", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("regions", nargs="*", help="DS9 region files")
    p.add_argument("--coordinates", nargs="*", default=[], help="CSV/ECSV coordinate lists")
    p.add_argument("--outdir", required=True)
    p.add_argument("--collection", default="HST")
    p.add_argument("--instruments", nargs="*", default=["ACS/WFC"])
    p.add_argument("--filters", nargs="*", default=[])
    p.add_argument("--calib-level", nargs="*", type=int, default=[3])
    p.add_argument("--provenance", nargs="*", default=["HAP-SVM"])
    p.add_argument("--project", nargs="*", default=[])
    p.add_argument("--products", nargs="*", default=["DRC"])
    p.add_argument("--padding-arcsec", type=float, default=10.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    targets = read_targets(args.regions, args.coordinates)
    for problem in targets.problems:
        log.warning("%s", problem)
    options = {k: getattr(args, k) for k in ("collection", "instruments", "filters",
               "calib_level", "provenance", "project", "products", "padding_arcsec")}  # fmt: skip
    try:
        table = fetch_images(targets, args.outdir, options)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table.pprint_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
