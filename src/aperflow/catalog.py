"""Per-group catalogs: the photometry tables of the dithers of one group merged by sky
position into one row per star.

Matching
--------
Every detection of every image is a node; two detections of *different* images closer
than ``match_radius`` (arcsec on the sky, or pixels when an image has no WCS) are linked
(:meth:`astropy.coordinates.SkyCoord.search_around_sky`), and a star is a connected
component of that graph (:func:`scipy.sparse.csgraph.connected_components`). When a
component holds two detections of one image (a chain through close neighbours), the one
nearest the component's mean position is kept and the star counts them in
``n_rejected``. No Python loop runs over sources.

Means
-----
Per star and radius ``R``: the inverse-variance weighted mean flux of the measurements
whose flags have none of ``exclude_flags`` (:func:`aperflow.aggregate.weighted_mean`),
its error, the number of measurements used ``n_R``, ``chi2_R`` and ``rchi2_R`` (chi-square
per degree of freedom: ~1 when the dithers agree within their errors), ``flags_R`` (the
OR of the flags of the measurements used; of all when none was usable) and the magnitude
of the mean flux (``mag_R``, ``mag_err_R``: averaging fluxes, not magnitudes, keeps faint
and non-positive measurements unbiased). Aperture-corrected totals get the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from aperflow import flags as F
from aperflow.photometry import radii_labels

__all__ = [
    "DEFAULT_EXCLUDE_FLAGS",
    "match_detections",
    "merge_catalog_files",
    "merge_catalogs",
    "write_regions",
]

log = logging.getLogger("aperflow.catalog")

#: Measurements with any of these flags are left out of the means.
DEFAULT_EXCLUDE_FLAGS = ("MASKED", "SATURATED", "EDGE", "NO_SKY", "OFF_IMAGE")


def _flag_mask(names) -> int:
    bits = {name: bit for bit, (name, _) in F.FLAG_BITS.items()}
    mask = 0
    for name in names or ():
        if isinstance(name, int | np.integer):
            mask |= int(name)
        elif str(name).upper() in bits:
            mask |= bits[str(name).upper()]
        else:
            raise ValueError(f"unknown flag {name!r}; known: {', '.join(bits)}")
    return mask


def _unit_vectors(ra, dec):
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.c_[np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]


def match_detections(
    ra, dec, image, match_radius_arcsec: float = 0.1, x=None, y=None, match_radius_px=None
) -> tuple[np.ndarray, np.ndarray]:
    """Group detections of several images into stars (module docstring).

    Parameters
    ----------
    ra, dec : array_like
        Positions in degrees (NaN where an image has no WCS).
    image : array_like of int
        Index of the image of each detection.
    match_radius_arcsec : float
        Link radius on the sky.
    x, y, match_radius_px : array_like, float, optional
        Pixel positions and link radius used instead when some ``ra``/``dec`` are not
        finite (images without WCS, assumed registered).

    Returns
    -------
    star : ndarray of int
        Star index of each detection (0..n_stars-1), -1 for a rejected duplicate.
    n_rejected : ndarray of int
        Per star, detections dropped as second detections in one image.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    image = np.asarray(image, dtype=np.int64)
    n = ra.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sky = bool(np.all(np.isfinite(ra) & np.isfinite(dec)))
    if sky:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        coords = SkyCoord(ra * u.deg, dec * u.deg)
        i, j, _, _ = coords.search_around_sky(coords, match_radius_arcsec * u.arcsec)
        pos = _unit_vectors(ra, dec)
    else:
        from scipy.spatial import cKDTree

        if x is None or y is None or not match_radius_px:
            raise ValueError("detections without sky positions need x, y and match_radius_px")
        pos = np.c_[np.asarray(x, float), np.asarray(y, float)]
        pairs = cKDTree(pos).query_pairs(float(match_radius_px), output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
    keep = image[i] != image[j]
    graph = coo_matrix((np.ones(keep.sum()), (i[keep], j[keep])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    # Mean position per component and each detection's distance from it.
    counts = np.bincount(label)
    centre = np.stack([np.bincount(label, pos[:, k]) for k in range(pos.shape[1])], 1)
    centre /= counts[:, None]
    dist = np.linalg.norm(pos - centre[label], axis=1)
    order = np.lexsort((dist, image, label))
    key = label[order] * (image.max() + 1) + image[order]
    first = np.r_[True, key[1:] != key[:-1]]
    kept = np.zeros(n, bool)
    kept[order[first]] = True
    rejected = np.bincount(label[~kept], minlength=counts.size)
    # Renumber stars 0..m-1 in order of first appearance.
    stars, star_of_label = np.unique(label, return_inverse=True)
    star = np.where(kept, star_of_label, -1)
    return star.astype(np.int64), rejected[stars].astype(np.int64)


@dataclass(frozen=True)
class _Images:
    """What merging needs of the per-image tables of a group: each one's metadata, column
    names and units, and their columns stacked on demand (from memory or Parquet files)."""

    metas: list[Mapping]
    colnames: list[list[str]]
    #: units(k): the units of image k's columns (a unit, a string or None each).
    units: Callable[[int], Mapping[str, object]]
    #: stack(images, columns): the columns of those images concatenated in that order,
    #: NaN (0 in an integer column) where an image lacks one, and ``image``: the position
    #: in ``images`` of each row's image.
    stack: Callable[[list[int], list[str]], dict[str, np.ndarray]]

    @classmethod
    def from_tables(cls, tables: Sequence[Table]) -> _Images:
        def stack(images, columns):
            parts = [tables[i] for i in images]
            out = {name: _concatenate(parts, name) for name in columns}
            out["image"] = np.repeat(np.arange(len(parts)), [len(t) for t in parts])
            return out

        return cls(
            metas=[t.meta for t in tables],
            colnames=[list(t.colnames) for t in tables],
            units=lambda k: {c: tables[k][c].unit for c in tables[k].colnames},
            stack=stack,
        )

    @classmethod
    def from_parquet(cls, paths: Sequence[str | Path]) -> _Images:
        from aperflow.tables import read_parquet_header, stack_parquet_columns

        paths = [str(p) for p in paths]
        headers = [read_parquet_header(p) for p in paths]

        def stack(images, columns):
            table = stack_parquet_columns([paths[i] for i in images], columns)
            return {name: np.asarray(table[name]) for name in [*columns, "image"]}

        return cls(
            metas=[h.meta for h in headers],
            colnames=[h.colnames for h in headers],
            units=lambda k: headers[k].units(),
            stack=stack,
        )

    def has_photometry(self, k: int) -> bool:
        """Whether image ``k`` has photometry columns (a failed image's table has not)."""
        return bool(radii_labels(self.metas[k], self.colnames[k]))


def _concatenate(tables: Sequence[Table], name: str) -> np.ndarray:
    """Column ``name`` of ``tables`` end to end; NaN (0 in an integer column) where a
    table lacks it, as :func:`aperflow.tables.stack_parquet_columns` fills."""
    dtype = next((t[name].dtype for t in tables if name in t.colnames), np.dtype(float))
    fill = 0 if dtype.kind in "iub" else np.nan
    parts = [np.asarray(t[name]) if name in t.colnames else np.full(len(t), fill) for t in tables]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _same_calibration(images: _Images, names: list[str]) -> tuple[list[int], list[str]]:
    """The images whose fluxes share one unit and magnitude system, and why the others
    were left out.

    A dither with another calibration (e.g. its BUNIT is missing, so its fluxes are
    uncalibrated pixel sums while the others are in Jy) cannot be averaged with the
    others: it is left out with a warning naming it. The kept calibration is the one of
    most images, calibrated before instrumental, then the first.
    """
    keys = [
        (str(meta.get("flux_unit")), str(meta.get("magnitude_system")))
        if images.has_photometry(k)
        else None
        for k, meta in enumerate(images.metas)
    ]
    found = [k for k in keys if k is not None]
    if len(set(found)) <= 1:
        return list(range(len(keys))), []
    best = max(
        dict.fromkeys(found),
        key=lambda k: (found.count(k), k[1] != "instrumental", -found.index(k)),
    )
    kept, left_out = [], []
    for k, (name, key) in enumerate(zip(names, keys, strict=True)):
        if key is None or key == best:
            kept.append(k)
            continue
        why = (
            f"{name}: fluxes in {key[0]!r} ({key[1]} magnitudes) while the group's are in "
            f"{best[0]!r} ({best[1]}): left out of the catalog"
        )
        note = images.metas[k].get("calibration")
        log.warning("%s%s", why, f" [{note}]" if note else "")
        left_out.append(why)
    return kept, left_out


def _radius_labels(images: _Images, kept: Sequence[int], ref: int | None) -> list[str]:
    if ref is None:
        return []
    labels = radii_labels(images.metas[ref], images.colnames[ref])
    for k in kept:
        other = images.metas[k].get("radii_labels")
        if other and list(other) != labels:
            log.warning(
                "images of the group have different aperture radii (%s vs %s, e.g. radii in "
                "FWHM units with a FWHM measured per image); the catalog uses %s",
                other,
                labels,
                labels,
            )
    return labels


def merge_catalogs(
    tables: Sequence[Table],
    names: Sequence[str] | None = None,
    *,
    match_radius_arcsec: float = 0.1,
    match_radius_px: float = 1.0,
    exclude_flags=DEFAULT_EXCLUDE_FLAGS,
    min_images: int = 1,
) -> Table:
    """Merge the photometry tables of one group into a catalog of stars.

    Parameters
    ----------
    tables : sequence of astropy.table.Table
        Per-image tables of :func:`aperflow.photometry.measure_image` (same radii; or,
        from :func:`merge_catalog_files`, its Parquet files read on demand). A
        table whose flux unit or magnitude system differs from the group's (a dither
        without BUNIT among calibrated ones) is left out with a warning and named in
        ``meta['left_out']``. A table without photometry columns (a failed image) adds
        no detections.
    names : sequence of str, optional
        Image ids, for the metadata.
    match_radius_arcsec, match_radius_px : float
        Link radius on the sky, and in pixels for images without WCS.
    exclude_flags : list of str or int
        Flag names (:mod:`aperflow.flags`) that leave a measurement out of the means.
    min_images : int
        Keep stars detected in at least this many images.

    Returns
    -------
    astropy.table.Table
        ``id, ra, dec, n_images, n_rejected`` and per radius ``R``: ``flux_R,
        flux_err_R, mag_R, mag_err_R, n_R, chi2_R, rchi2_R, flags_R`` (+ ``flux_total_R,
        flux_total_err_R, mag_total_R, mag_total_err_R, rchi2_total_R`` with aperture
        corrections), sorted by ``mag`` of the first radius (bright first).
    """
    from aperflow.tables import provenance

    images = tables if isinstance(tables, _Images) else _Images.from_tables(tables)
    names = list(names) if names is not None else [str(i) for i in range(len(images.metas))]
    kept, left_out = _same_calibration(images, names)
    # Only images with photometry columns add detections (a failed image has no rows);
    # the first of them gives the radii, units and calibration metadata.
    measured = [k for k in kept if images.has_photometry(k)]
    ref = measured[0] if measured else None
    labels = _radius_labels(images, kept, ref)
    exclude = _flag_mask(exclude_flags)
    read = _merged_columns(images, ref, labels)
    columns = images.stack(measured, read) if read else {"image": np.zeros(0, np.int64)}
    # Each detection's image as its position among the kept images.
    position = {k: j for j, k in enumerate(kept)}
    in_kept = np.array([position[k] for k in measured], dtype=np.int64)
    image = in_kept[columns.pop("image")] if len(in_kept) else np.zeros(0, np.int64)

    def column(name, fill=np.nan):
        if name in columns:
            return np.asarray(columns[name], float)
        return np.full(image.size, fill, float)

    ra, dec = column("ra"), column("dec")
    star, rejected = match_detections(
        ra, dec, image, match_radius_arcsec, column("x"), column("y"), match_radius_px
    )
    rows = _rows_by_star(star, image)
    metas = [images.metas[k] for k in kept]
    out = _star_positions(ra, dec, rows, rejected)
    zp = _common_zeropoint(metas)
    unit = images.units(ref).get(f"flux_{labels[0]}") if ref is not None and labels else None
    flux_unit = u.Unit(unit, parse_strict="silent") if unit is not None else None
    _add_means(out, column, rows, labels, set(read), exclude, zp, flux_unit)
    out = out[out["n_images"] >= int(min_images)]
    if len(out) and labels:
        order = np.argsort(np.nan_to_num(np.asarray(out[f"mag_{labels[0]}"]), nan=np.inf))
        out = out[order]
    out.add_column(np.arange(1, len(out) + 1, dtype=np.int64), name="id", index=0)
    ref_meta = images.metas[ref] if ref is not None else {}
    out.meta.update(
        provenance(
            images=[names[k] for k in kept],
            match_radius_arcsec=float(match_radius_arcsec),
            match_radius_px=float(match_radius_px),
            exclude_flags=[F.FLAG_BITS[b][0] for b in F.FLAG_BITS if b & exclude],
            min_images=int(min_images),
            radii_labels=labels,
            radii_px=ref_meta.get("radii_px"),
            zeropoint=zp,
            magnitude_system=ref_meta.get("magnitude_system"),
            calibration=ref_meta.get("calibration"),
            flux_unit=str(flux_unit) if flux_unit is not None else ref_meta.get("flux_unit"),
            left_out=left_out,
            mean="inverse-variance weighted mean flux (aperflow.aggregate.weighted_mean); "
            "mag = magnitude of the mean flux",
            n_detections=int(image.size),
        )
    )
    return out


def merge_catalog_files(
    paths: Sequence[str | Path], names: Sequence[str] | None = None, **options
) -> Table:
    """:func:`merge_catalogs` of per-image Parquet tables (of
    :func:`aperflow.tables.write_table`), read fast.

    The same catalog as ``merge_catalogs([read_table(p) for p in paths], ...)``, but
    each file's metadata is read with :func:`aperflow.tables.read_parquet_header` and only
    the columns the merge uses, all files at once with
    :func:`aperflow.tables.stack_parquet_columns`: ~2 ms a file where astropy's reading
    takes ~15 ms (half a minute more for a group of thousands of small images).

    Parameters
    ----------
    paths : sequence of str or Path
        The group's per-image Parquet tables.
    names : sequence of str, optional
        As :func:`merge_catalogs`.
    **options
        ``match_radius_arcsec``, ``match_radius_px``, ``exclude_flags``, ``min_images``
        of :func:`merge_catalogs`.

    Returns
    -------
    astropy.table.Table
        As :func:`merge_catalogs`.
    """
    return merge_catalogs(_Images.from_parquet(paths), names, **options)


def _merged_columns(images: _Images, ref: int | None, labels: Sequence[str]) -> list[str]:
    """The columns the merge reads: positions, and per radius fluxes, errors and flags."""
    if ref is None:
        return []
    wanted = ["ra", "dec", "x", "y"]
    for label in labels:
        for kind in ("", "total_"):
            wanted += [f"flux_{kind}{label}", f"flux_{kind}err_{label}"]
        wanted.append(f"flags_{label}")
    return [c for c in wanted if c in images.colnames[ref]]


def _rows_by_star(star: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``rows[s, j]``: the index of star ``s``'s ``j``-th detection (in image order), -1
    past its last.

    The matrix is as wide as the most images one star is in, not as the group's images:
    a mosaic of thousands of images would otherwise give stars x images cells (gigabytes).
    """
    used = np.flatnonzero(star >= 0)
    order = used[np.lexsort((image[used], star[used]))]
    counts = np.bincount(star[order], minlength=int(star.max(initial=-1)) + 1)
    slot = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.full((counts.size, int(counts.max(initial=0))), -1, dtype=np.int64)
    rows[star[order], slot] = order
    return rows


def _star_positions(ra, dec, rows, rejected) -> Table:
    """``ra, dec`` (the mean unit vector of each star's detections), ``n_images``,
    ``n_rejected``; ``rows`` as :func:`_rows_by_star`."""
    present = rows >= 0
    pos = _unit_vectors(ra, dec)
    mean = np.zeros((rows.shape[0], 3))
    for k in range(3):
        mean[:, k] = np.where(present, np.take(pos[:, k], np.where(present, rows, 0)), 0).sum(1)
    out = Table()
    out["ra"] = np.mod(np.rad2deg(np.arctan2(mean[:, 1], mean[:, 0])), 360.0)
    out["dec"] = np.rad2deg(np.arctan2(mean[:, 2], np.hypot(mean[:, 0], mean[:, 1])))
    out["ra"].unit = out["dec"].unit = "deg"
    out["n_images"] = present.sum(axis=1)
    out["n_rejected"] = rejected
    return out


def _add_means(out, column, rows, labels, read, exclude, zp, flux_unit) -> None:
    """Per radius and kind (aperture, aperture-corrected ``total_``) in the ``read``
    columns, the weighted mean flux of each star, its error, magnitude, chi-square and
    flags (module docstring)."""
    from aperflow.aggregate import weighted_mean
    from aperflow.calibration import magnitude, magnitude_error

    present = rows >= 0

    def gather(name, fill=np.nan):
        values = column(name, fill)
        return np.where(present, np.take(values, np.where(present, rows, 0)), fill)

    for label in labels:
        flags = gather(f"flags_{label}", 0).astype(np.int64)
        bad = (flags & exclude) != 0
        for kind in ("", "total_"):
            if f"flux_{kind}{label}" not in read:
                continue
            wm = weighted_mean(
                gather(f"flux_{kind}{label}"),
                gather(f"flux_{kind}err_{label}"),
                axis=1,
                mask=bad | ~present,
            )
            out[f"flux_{kind}{label}"] = wm.mean
            out[f"flux_{kind}err_{label}"] = wm.error
            out[f"flux_{kind}{label}"].unit = out[f"flux_{kind}err_{label}"].unit = flux_unit
            out[f"mag_{kind}{label}"] = magnitude(wm.mean, zp)
            out[f"mag_{kind}err_{label}"] = magnitude_error(wm.mean, wm.error)
            out[f"mag_{kind}{label}"].unit = out[f"mag_{kind}err_{label}"].unit = "mag"
            if kind == "":
                out[f"n_{label}"] = wm.n
                out[f"chi2_{label}"] = wm.chi2
                out[f"rchi2_{label}"] = wm.reduced_chi2
                use = present & ~bad
                out[f"flags_{label}"] = np.where(
                    use.any(axis=1),
                    np.bitwise_or.reduce(np.where(use, flags, 0), axis=1),
                    np.bitwise_or.reduce(np.where(present, flags, 0), axis=1),
                ).astype(np.int32)
            else:
                out[f"rchi2_total_{label}"] = wm.reduced_chi2


def _common_zeropoint(metas) -> float:
    zps = [float(m["zeropoint"]) for m in metas if "zeropoint" in m]
    if not zps:
        return 0.0
    if np.ptp(zps) > 1e-6:
        log.warning(
            "zero points differ between the images of the group (%s); fluxes are averaged "
            "in the calibrated unit and magnitudes use the first (%.4f)",
            ", ".join(f"{z:.4f}" for z in zps),
            zps[0],
        )
    return zps[0]


def write_regions(catalog: Table, path, radius_arcsec: float = 0.2, color: str = "green"):
    """Write the catalog's stars as a DS9 region file (fk5/icrs circles labelled with the
    star id), atomically; an empty catalog gives a file with only the header."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion, Regions

    from aperflow.tables import write_text

    good = np.isfinite(np.asarray(catalog["ra"], float)) if len(catalog) else np.zeros(0, bool)
    shapes = []
    if good.any():
        centres = SkyCoord(catalog["ra"][good], catalog["dec"][good], unit="deg")
        ids = np.asarray(catalog["id"])[good]
        shapes = [
            CircleSkyRegion(
                c, radius_arcsec * u.arcsec, meta={"text": f"{i}"}, visual={"color": color}
            )
            for c, i in zip(centres, ids, strict=True)
        ]
    text = Regions(shapes).serialize(format="ds9") if shapes else ""
    if not text:
        text = "# Region file format: DS9 astropy/regions\n# no sources\n"
    write_text(text, path)
