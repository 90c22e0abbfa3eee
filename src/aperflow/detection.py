"""Source detection: DAOFIND, IRAF starfind or image segmentation, on a background-
subtracted image with a threshold in units of the background RMS.

The PSF FWHM that shapes the detection kernel comes, in order, from the config, from the
table shipped with the package (``aperflow/data/fwhm.ecsv``: NIRCam from seed 000, MIRI
from JDox, per instrument and filter), or is measured on the image itself
(:func:`estimate_fwhm`: the median moment-based FWHM of bright, round, isolated sources).

Every finder returns the same table: ``id`` (1-based), ``x``, ``y`` (0-based pixels),
``flux`` and ``peak`` of the finder (background-subtracted, image units), ``sharpness``,
``roundness1``, ``roundness2`` (DAOFIND/starfind statistics; NaN for segmentation) and
``npix``.
"""

from __future__ import annotations

import functools
import logging
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = [
    "DETECTION_METHODS",
    "detect_image",
    "estimate_fwhm",
    "find_sources",
    "find_stars_in_strips",
    "suppress_close",
    "fwhm_table",
    "lookup_fwhm",
    "resolve_fwhm",
]

log = logging.getLogger("aperflow.detection")

DETECTION_METHODS = ("dao", "iraf", "segmentation")
_COLUMNS = ("id", "x", "y", "flux", "peak", "sharpness", "roundness1", "roundness2", "npix")


@functools.lru_cache(maxsize=4)
def _read_fwhm_table(path: str) -> Table:
    table = Table.read(path, format="ascii.ecsv")
    for name in ("instrument", "filter"):
        table[name] = [str(v).strip().upper() for v in table[name]]
    return table


def fwhm_table(path: str | Path | None = None) -> Table:
    """The FWHM table (``telescope, instrument, filter, fwhm_px, pixel_scale,
    fwhm_arcsec, source``): the one shipped with aperflow, or a user file of that form."""
    if path is None:
        path = resources.files("aperflow") / "data" / "fwhm.ecsv"
    return _read_fwhm_table(str(path))


def lookup_fwhm(
    instrument: str,
    filter: str,
    pixel_scale: float | None = None,
    table: Table | None = None,
) -> tuple[float | None, str]:
    """PSF FWHM in pixels of ``instrument``/``filter`` from the FWHM table.

    The tabulated pixel value holds for the native pixel scale; an image on another grid
    (a resampled ``i2d`` whose scale differs by more than 2 %) gets
    ``fwhm_arcsec / pixel_scale`` instead.

    Returns
    -------
    fwhm : float or None
        FWHM in pixels, None when the table has no row.
    note : str
        Where the value came from.
    """
    table = fwhm_table() if table is None else table
    rows = table[
        (table["instrument"] == (instrument or "").strip().upper())
        & (table["filter"] == (filter or "").strip().upper())
    ]
    if len(rows) == 0:
        return None, f"no FWHM for {instrument}/{filter} in the table"
    row = rows[0]
    native = float(row["pixel_scale"])
    if pixel_scale and abs(pixel_scale / native - 1.0) > 0.02:
        fwhm = float(row["fwhm_arcsec"]) / pixel_scale
        return fwhm, (
            f"table {instrument}/{filter}: {float(row['fwhm_arcsec']):g} arcsec at "
            f"{pixel_scale:.4g} arcsec/px ({row['source']})"
        )
    return float(row["fwhm_px"]), f"table {instrument}/{filter} ({row['source']})"


def estimate_fwhm(
    data,
    rms,
    mask=None,
    nsigma: float = 10.0,
    npixels: int = 5,
    peak_max: float | None = None,
    max_sources: int = 30,
) -> float | None:
    """Median FWHM (pixels) of bright, isolated, unsaturated sources of the image.

    Candidates are segments of ``npixels`` connected pixels above ``nsigma`` RMS of the
    background-subtracted ``data`` that do not touch masked pixels, peak below
    ``peak_max`` and have no other candidate within 12 px; a pixel-integrated circular
    Gaussian is fitted to the ``max_sources`` brightest (:func:`photutils.psf.fit_fwhm`,
    11x11 px): the result is the Gaussian FWHM (a Moffat-like PSF with wings comes out
    ~15 % wider than its true FWHM). Fits narrower than 0.5 px (hot pixels, cosmic rays)
    are ignored.

    Returns
    -------
    float or None
        None when fewer than 3 sources give a fit.
    """
    from photutils.psf import fit_fwhm
    from photutils.segmentation import SourceCatalog, detect_sources
    from scipy.spatial import cKDTree

    data = np.asarray(data, dtype=float)
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool) | ~np.isfinite(data))
    clean = np.where(bad, 0.0, data)
    threshold = nsigma * np.broadcast_to(rms, data.shape)
    segm = detect_sources(clean, threshold, int(npixels), mask=bad)
    if segm is None or segm.n_labels < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = SourceCatalog(clean, segm, mask=bad)
        x, y = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
        peak = np.asarray(cat.max_value, float)
        flux = np.asarray(cat.segment_flux, float)
    ok = np.isfinite(x) & np.isfinite(y) & (flux > 0)
    if peak_max is not None:
        ok &= peak < peak_max
    grown = segm.make_source_mask(size=3)
    touches = np.zeros(segm.n_labels, bool)
    labels_touching = np.unique(segm.data[grown & bad & (segm.data > 0)])
    touches[np.searchsorted(segm.labels, labels_touching)] = True
    ok &= ~touches
    pairs = cKDTree(np.c_[x, y]).query_pairs(12.0, output_type="ndarray")
    crowded = np.zeros(len(x), bool)
    crowded[pairs.ravel()] = True
    ok &= ~crowded
    ny, nx = data.shape
    ok &= (x > 6) & (x < nx - 7) & (y > 6) & (y < ny - 7)
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(flux[idx])[::-1][:max_sources]]
    if idx.size < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fwhm = np.asarray(
            fit_fwhm(np.where(bad, np.nan, data), xypos=np.c_[x[idx], y[idx]], fit_shape=11),
            float,
        )
    fwhm = fwhm[np.isfinite(fwhm) & (fwhm > 0.5) & (fwhm < 30.0)]
    if fwhm.size < 3:
        return None
    return float(np.median(fwhm))


def resolve_fwhm(
    image,
    fwhm: float | None = None,
    table_path: str | Path | None = None,
    background=None,
) -> tuple[float, str]:
    """The FWHM (pixels) to detect with: config value, table, or measured on the image.

    Parameters
    ----------
    image : aperflow.images.Image
        The image (its instrument, filter and pixel scale).
    fwhm : float, optional
        A FWHM in pixels from the config; wins when given.
    table_path : str or Path, optional
        A user FWHM table instead of the shipped one.
    background : aperflow.background.Background, optional
        Background of the image, needed to measure the FWHM when the table has none.

    Returns
    -------
    fwhm : float
    note : str

    Raises
    ------
    ValueError
        When no FWHM is configured, tabulated or measurable (the message names the file).
    """
    if fwhm:
        return float(fwhm), "config"
    table = fwhm_table(table_path)
    value, note = lookup_fwhm(
        image.meta.instrument, image.meta.filter, image.pixel_scale(), table=table
    )
    if value is not None:
        return value, note
    if background is not None:
        measured = estimate_fwhm(image.data - background.background, background.rms, image.mask)
        if measured is not None:
            return measured, f"measured on the image ({note})"
    raise ValueError(
        f"{image.path}: {note}, and it cannot be measured on the image; "
        "set field.detection.fwhm (pixels) in the config"
    )


def _empty_sources() -> Table:
    cols = {name: np.zeros(0, dtype=int if name in ("id", "npix") else float) for name in _COLUMNS}
    return Table(cols)


def _starfinder(method, threshold, fwhm, sharpness, roundness, **kwargs):
    """A photutils star finder; ``kwargs``: exclude_border, peak_max, min_separation."""
    from photutils.detection import DAOStarFinder, IRAFStarFinder

    finder = DAOStarFinder if method == "dao" else IRAFStarFinder
    return finder(
        threshold,
        fwhm,
        sharpness_range=None if sharpness is None else tuple(sharpness),
        roundness_range=None if roundness is None else tuple(roundness),
        **kwargs,
    )


def suppress_close(x, y, min_separation: float) -> np.ndarray:
    """Greedy non-maximum suppression of detections sorted brightest first.

    A detection is dropped when a brighter *kept* detection lies closer than
    ``min_separation`` pixels; vectorised over the close pairs
    (:meth:`scipy.spatial.cKDTree.query_pairs`), iterated to the greedy fixed point.

    Returns
    -------
    ndarray of bool
        True for the detections kept.
    """
    from scipy.spatial import cKDTree

    xy = np.c_[np.asarray(x, float), np.asarray(y, float)]
    keep = np.ones(len(xy), bool)
    if len(xy) < 2 or not min_separation:
        return keep
    pairs = cKDTree(xy).query_pairs(float(min_separation), output_type="ndarray")
    brighter, fainter = pairs.min(axis=1), pairs.max(axis=1)  # index = brightness rank
    for _ in range(len(xy)):
        suppressed = np.zeros(len(xy), bool)
        suppressed[fainter[keep[brighter]]] = True
        new = ~suppressed
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def _from_starfinder(found: Table | None) -> Table:
    if found is None or len(found) == 0:
        return _empty_sources()
    out = Table()
    out["x"] = np.asarray(found["x_centroid"], float)
    out["y"] = np.asarray(found["y_centroid"], float)
    out["flux"] = np.asarray(found["flux"], float)
    out["peak"] = np.asarray(found["peak"], float)
    out["sharpness"] = np.asarray(found["sharpness"], float)
    if "roundness1" in found.colnames:
        out["roundness1"] = np.asarray(found["roundness1"], float)
        out["roundness2"] = np.asarray(found["roundness2"], float)
    else:  # IRAFStarFinder has one moment-based roundness
        out["roundness1"] = np.asarray(found["roundness"], float)
        out["roundness2"] = np.full(len(found), np.nan)
    out["npix"] = np.asarray(found["npix"], int)
    return out


def _segmentation(data, threshold, mask, fwhm, npixels, deblend, exclude_border):
    from astropy.convolution import convolve
    from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel

    size = int(2 * np.ceil(1.5 * fwhm) + 1)
    kernel = make_2dgaussian_kernel(fwhm, size=size)
    convolved = convolve(data, kernel, mask=mask, normalize_kernel=True)
    finder = SourceFinder(int(npixels), deblend=deblend, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no sources found" is reported by the caller
        segm = finder(np.where(mask, 0.0, convolved), threshold, mask=mask)
    if segm is None:
        return _empty_sources()
    cat = SourceCatalog(data, segm, convolved_data=convolved, mask=mask)
    out = Table()
    out["x"] = np.asarray(cat.x_centroid, float)
    out["y"] = np.asarray(cat.y_centroid, float)
    out["flux"] = np.asarray(cat.segment_flux, float)
    out["peak"] = np.asarray(cat.max_value, float)
    out["sharpness"] = np.full(len(out), np.nan)
    out["roundness1"] = np.full(len(out), np.nan)
    out["roundness2"] = np.full(len(out), np.nan)
    out["npix"] = np.asarray(getattr(cat.area, "value", cat.area), int)
    if exclude_border:
        ny, nx = data.shape
        edge = size // 2
        keep = (out["x"] >= edge) & (out["x"] <= nx - 1 - edge)
        keep &= (out["y"] >= edge) & (out["y"] <= ny - 1 - edge)
        out = out[keep]
    return out


def _detection_arrays(data, rms, mask, threshold, rows: slice = slice(None)):
    """The finders' inputs for the image rows ``rows``: the image in float64 with bad
    pixels set to 0, the threshold ``threshold * rms`` (float64; inf where the RMS is not
    finite) and the bad pixels (masked, non-finite data or RMS)."""
    full = np.asarray(data)
    given = full[rows]
    data = np.asarray(given, dtype=float)
    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)[rows]
    rms = np.broadcast_to(np.asarray(rms), full.shape)[rows]
    rms_bad = ~np.isfinite(rms)
    level = np.multiply(threshold, rms, dtype=np.float64)  # float64 whatever the RMS dtype
    if rms_bad.any():
        level[rms_bad] = np.inf
        bad |= rms_bad
    if bad.any():
        # zero the bad pixels in a copy (np.asarray may have returned the caller's array)
        clean = data.copy() if np.shares_memory(data, given) else data
        clean[bad] = 0.0
    else:
        clean = data
    return clean, level, bad


def find_stars_in_strips(make_finder, prepare, shape, workers: int = 1) -> Table:
    """Run a photutils star finder over horizontal strips of the image on threads.

    Each strip covers the rows it owns plus a halo of ``3 * half-kernel + 4`` rows on
    either side, so that every value the finder computes for an owned source (the
    convolved image, its local maxima, the cut-outs of the catalog) is computed from
    exactly the pixels a single call over the whole image uses. A source found by two
    strips is kept by the one owning its ``y``, the boundary put in the middle of the
    widest gap between the sources' ``y`` near the strip edge (so that the two strips'
    ``y``, which may differ in the last bit, fall on the same side). ``scipy.ndimage``
    filters release the GIL: the strips run in parallel, each preparing its own pixels.
    The table equals that of one call on the whole image (``y`` to ~1e-12 px), rows in
    another order.

    Parameters
    ----------
    make_finder : callable
        ``make_finder(threshold)`` -> a photutils star finder for that threshold (a
        scalar or the strip's per-pixel array).
    prepare : callable
        ``prepare(rows)`` -> ``(data, threshold, mask)`` for the image rows ``rows`` (a
        slice): background-subtracted image without NaN, per-pixel threshold, pixels
        to ignore. The threshold must be positive everywhere when ``workers > 1`` (a
        zero threshold switches photutils' flux check off for a whole catalog).
    shape : (int, int)
        Shape of the image.
    workers : int
        Strips (threads); 1 runs the finder once on the whole image.

    Returns
    -------
    astropy.table.Table
        :func:`find_sources`' columns but ``id``.
    """
    ny = shape[0]
    half = max(make_finder(1.0).kernel.data.shape) // 2
    halo = 3 * half + 4
    workers = max(1, min(int(workers), ny // (4 * halo)))
    edges = np.linspace(0, ny, workers + 1).astype(int)
    spans = [
        slice(max(a - halo, 0), min(b + halo, ny))
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    with warnings.catch_warnings():
        # "no sources found" is reported by the caller; set once here, as the threads
        # must not each swap the (process-wide) warning filters
        warnings.simplefilter("ignore")
        if workers == 1:
            return _find_in_strip(make_finder, prepare, spans[0])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda rows: _find_in_strip(make_finder, prepare, rows), spans))
    cuts = [-np.inf]
    for part, edge in zip(parts[:-1], edges[1:-1], strict=True):
        cuts.append(_strip_boundary(np.asarray(part["y"]), float(edge)))
    cuts.append(np.inf)
    kept = [
        p[(p["y"] >= lo) & (p["y"] < hi)]
        for p, lo, hi in zip(parts, cuts[:-1], cuts[1:], strict=True)
    ]
    from astropy.table import vstack

    return vstack(kept)


def _find_in_strip(make_finder, prepare, rows: slice) -> Table:
    """The finder's sources on the image rows ``rows``, in image coordinates."""
    data, threshold, mask = prepare(rows)
    found = _from_starfinder(make_finder(threshold).find_stars(data, mask=mask))
    found["y"] += rows.start
    return found


def _strip_boundary(y: np.ndarray, edge: float) -> float:
    """Middle of the widest gap between the ``y`` within half a pixel of ``edge``."""
    near = np.sort(y[np.abs(y - edge) <= 0.5])
    points = np.concatenate([[edge - 0.5], near, [edge + 0.5]])
    j = int(np.argmax(np.diff(points)))
    return 0.5 * (points[j] + points[j + 1])


def find_sources(
    data,
    rms,
    *,
    fwhm: float,
    mask=None,
    method: str = "dao",
    threshold: float = 5.0,
    sharpness: tuple[float, float] | None = (0.2, 1.0),
    roundness: tuple[float, float] | None = (-1.0, 1.0),
    exclude_border: bool = True,
    peak_max: float | None = None,
    n_brightest: int | None = None,
    min_separation: float | None = None,
    npixels: int = 5,
    deblend: bool = True,
    min_kernel_fwhm: float = 1.5,
    workers: int = 1,
) -> Table:
    """Detect point sources on a background-subtracted image.

    Parameters
    ----------
    data : ndarray
        Background-subtracted image (NaN/masked pixels are ignored).
    rms : float or ndarray
        Background RMS (scalar or per-pixel map); the threshold is ``threshold * rms``.
    fwhm : float
        PSF FWHM in pixels (detection kernel).
    mask : ndarray of bool, optional
        True on pixels to ignore.
    method : {"dao", "iraf", "segmentation"}
        :class:`~photutils.detection.DAOStarFinder`,
        :class:`~photutils.detection.IRAFStarFinder`, or
        :class:`~photutils.segmentation.SourceFinder` + ``SourceCatalog`` on the image
        convolved with a Gaussian of ``fwhm``.
    threshold : float
        Detection threshold in units of the RMS (DAOFIND applies it to the convolved
        image, scaled by the kernel as in the original algorithm).
    sharpness, roundness : (float, float) or None
        Accepted ranges (star finders only); None for no cut.
    exclude_border : bool
        Drop sources within half a kernel of the image border.
    peak_max : float, optional
        Drop sources peaking above this value (star finders).
    n_brightest : int, optional
        Keep only the brightest sources (star finders).
    min_separation : float, optional
        Star finders: a detection closer than this (pixels) to a brighter kept one is
        dropped (greedy, brightest first; :func:`suppress_close`). None or 0 keeps every
        local maximum, as the original DAOFIND and seed 000 do. (photutils 3's own
        default, 2.5 FWHM, searches rings pixel by pixel: ~10x slower on a crowded 4k
        image, and it merges pairs that are resolved at 1-2.5 FWHM.)
    npixels : int
        Segmentation: minimum connected pixels.
    deblend : bool
        Segmentation: deblend overlapping sources.
    min_kernel_fwhm : float
        The detection kernel is at least this wide (pixels): DAOFIND with a kernel much
        narrower than ~1.5 px turns every noise spike and hot pixel into a "star" on
        undersampled images.
    workers : int
        Star finders: threads, each running the finder on one horizontal strip of the
        image (:func:`find_stars_in_strips`: the same table as one call).

    Returns
    -------
    astropy.table.Table
        Columns ``id, x, y, flux, peak, sharpness, roundness1, roundness2, npix`` (see the
        module docstring), sorted by decreasing flux (equal fluxes by ``y``, then ``x``);
        empty (with the same columns) when nothing is found.
    """
    if method not in DETECTION_METHODS:
        raise ValueError(f"detection method {method!r} is not one of {DETECTION_METHODS}")
    if not fwhm or fwhm <= 0:
        raise ValueError(f"detection needs a positive FWHM, got {fwhm}")
    kernel_fwhm = max(float(fwhm), float(min_kernel_fwhm or 0.0))
    if method == "segmentation":
        clean, level, bad = _detection_arrays(data, rms, mask, threshold)
        if bad.all():
            sources = _empty_sources()
        else:
            sources = _segmentation(
                clean, level, bad, kernel_fwhm, npixels, deblend, exclude_border
            )
    else:

        def finder(level):
            return _starfinder(
                method,
                level,
                kernel_fwhm,
                sharpness,
                roundness,
                exclude_border=exclude_border,
                peak_max=peak_max,
                min_separation=0.0,
            )

        def prepare(rows: slice):
            return _detection_arrays(data, rms, mask, threshold, rows)

        # strips need a positive threshold everywhere (inf where the RMS is not finite)
        if threshold <= 0 or np.any(np.asarray(rms) <= 0):
            workers = 1
        sources = find_stars_in_strips(finder, prepare, np.shape(data), workers)
    if len(sources):
        # brightest first; ties (equal fluxes) in position order, whatever the finder's
        order = np.lexsort((sources["x"], sources["y"], -np.asarray(sources["flux"])))
        sources = sources[order]
        if n_brightest is not None and method != "segmentation":
            sources = sources[: int(n_brightest)]
        if min_separation and method != "segmentation":
            sources = sources[suppress_close(sources["x"], sources["y"], min_separation)]
    sources["id"] = np.arange(1, len(sources) + 1, dtype=int)
    sources = sources[list(_COLUMNS)]
    for name in ("x", "y"):
        sources[name].unit = "pix"
    sources.meta.update(
        {
            "method": method,
            "fwhm_px": float(fwhm),
            "kernel_fwhm_px": kernel_fwhm,
            "threshold_sigma": float(threshold),
            "coordinates": "x, y are 0-based pixel positions (numpy/photutils)",
        }
    )
    return sources


#: ``field.detection`` keys that are :func:`find_sources` keywords.
_FINDER_KEYS = (
    "method",
    "workers",
    "threshold",
    "sharpness",
    "roundness",
    "exclude_border",
    "peak_max",
    "n_brightest",
    "min_separation",
    "npixels",
    "deblend",
    "min_kernel_fwhm",
)


def detect_image(image, background, options: dict | None = None, mask_zeros: bool = True):
    """Detect the sources of an image from the ``field.detection`` options.

    Parameters
    ----------
    image : aperflow.images.Image
    background : aperflow.background.Background
        Its background (subtracted; its RMS sets the threshold).
    options : dict
        ``fwhm`` and ``fwhm_table`` (:func:`resolve_fwhm`) and :func:`find_sources`
        keywords.
    mask_zeros : bool
        As :func:`aperflow.photometry.image_pixels`.

    Returns
    -------
    astropy.table.Table
        :func:`find_sources`' table with ``ra``, ``dec`` added and the FWHM (and where it
        came from) in the metadata.
    """
    from aperflow.photometry import image_pixels

    opts = dict(options or {})
    data, _, flags = image_pixels(image, mask_zeros)
    fwhm, note = resolve_fwhm(image, opts.get("fwhm"), opts.get("fwhm_table"), background)
    kwargs = {k: opts[k] for k in _FINDER_KEYS if k in opts}
    for key in ("sharpness", "roundness"):
        if kwargs.get(key) is not None:
            kwargs[key] = tuple(kwargs[key])
    sources = find_sources(
        data - background.background, background.rms, fwhm=fwhm, mask=(flags & 1) != 0, **kwargs
    )
    ra = dec = np.full(len(sources), np.nan)
    if image.wcs is not None and len(sources):
        ra, dec = image.wcs.pixel_to_world_values(sources["x"], sources["y"])
    sources["ra"], sources["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    sources["ra"].unit = sources["dec"].unit = "deg"
    sources.meta.update(
        {"image": str(image.path), "fwhm_from": note, "background_note": background.note}
    )
    return sources
