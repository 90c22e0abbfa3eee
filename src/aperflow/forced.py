"""Forced photometry: given regions measured on every image that covers them.

Per image (:func:`measure_image`)
    Each target (:mod:`aperflow.regions`) is turned into a photutils aperture. Sky
    regions become ``Sky*Aperture`` objects converted with the image's WCS
    (``Sky*Aperture.to_pixel``), so one region file works on images of any pixel scale
    and orientation; regions whose centre falls outside the image (or whose aperture
    holds no usable pixel) are left out and reported. Targets of the same shape are
    measured together with one multi-position aperture. The sky is

    * ``local``: a sigma-clipped median (or mean, or DAOPHOT's ``mmm``) in an annulus
      around each region (by default 2-3 times the region's size; a DS9 ``background``
      annulus wins),
    * ``global``: :func:`aperflow.background.estimate_background` (a 2-D map or one
      level), averaged over each aperture,
    * ``none``: the image is already sky-subtracted (HST ``drc``); the sky noise is still
      measured in the annulus for the errors.

    Fluxes are ``sum_i w_i (I_i - sky)`` over unmasked pixels (``w`` the exact overlap).
    Errors come only from :func:`aperflow.photometry.flux_error` (ERR form when the image
    has ERR, else DAOPHOT's with :meth:`aperflow.images.Image.poisson_gain`). Magnitudes
    follow :meth:`aperflow.images.Image.flux_calibration`; a zero point from the config
    (per filter, or per data set) wins over the header. Also given: the area actually
    used, 3- and 5-sigma upper limits, and the flux-weighted centroid inside the region
    in pixels and on the sky.
Per filter (:func:`combine_band`)
    One row per target: the inverse-variance mean (:func:`aperflow.aggregate.weighted_mean`)
    over the images of the filter that cover it, the number of images, AB magnitudes.
    Fluxes of AB-calibrated images are averaged as flux densities in microjansky (so
    images with different zero points combine correctly).
Across filters (:func:`wide_catalog`)
    One row per target, one block of columns per filter.

Pixel coordinates are 0-based.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from aperflow import flags as F
from aperflow.aggregate import weighted_mean
from aperflow.calibration import magnitude, magnitude_error, upper_limit_magnitude
from aperflow.datasets import deep_merge
from aperflow.images import PIXEL_BAD, PIXEL_COSMIC_RAY, PIXEL_SATURATED, Image
from aperflow.photometry import (
    SKY_VARIANCE_FACTOR,
    clipped_std_correction,
    flux_error,
    image_pixels,
)
from aperflow.regions import Target, TargetList
from aperflow.tables import provenance

__all__ = [
    "DEFAULTS",
    "Placement",
    "assign_bands",
    "band_sort_key",
    "filter_wavelength_nm",
    "combine_band",
    "failed_table",
    "forced_options",
    "image_filter",
    "image_zeropoint",
    "measure_image",
    "place_targets",
    "sky_apertures",
    "wide_catalog",
]

log = logging.getLogger("aperflow.forced")

#: Default options of the ``forced`` config block (config/README.md documents each).
DEFAULTS: dict = {
    "default_radius_arcsec": 0.5,
    "background": {
        "method": "local",
        "annulus": [2.0, 3.0],
        "annulus_unit": "scale",
        "statistic": "median",
        "sigma_clip": 3.0,
        "min_pixels": 20,
        "global": {"method": "2d", "box_size": 64, "filter_size": 3},
    },
    "filter_from_name": None,
    "zeropoints": {},
    "mask_zeros": None,
    "exclude_flags": ["EDGE", "MASKED", "NO_SKY"],
    "plots": {"max_regions": 36, "cutout_scale": 1.3},
    "archive": {
        "activate": False,
        "outdir": "resources/archive",
        "collection": "HST",
        "instruments": ["ACS/WFC"],
        "filters": [],
        "calib_level": [3],
        "provenance": ["HAP-SVM"],
        "project": [],
        "products": ["DRC"],
        "padding_arcsec": 10.0,
    },
}

_RESAMPLED = {"drc", "drz", "i2d", "sci"}

#: Magnitude of 1 microjansky on the AB scale: m = -2.5 log10(f / uJy) + 23.9.
AB_ZEROPOINT_UJY = 23.9
_FLAG_NAMES = {name: bit for bit, (name, _) in F.FLAG_BITS.items()}


def forced_options(options: Mapping | None = None) -> dict:
    """The forced options with every default filled in (``options`` wins)."""
    out = deep_merge(DEFAULTS, options or {})
    bkg = out["background"]
    if bkg["method"] not in ("local", "global", "none"):
        raise ValueError(f"forced.background.method {bkg['method']!r}: use local, global or none")
    if bkg["annulus_unit"] not in ("scale", "arcsec"):
        raise ValueError(
            f"forced.background.annulus_unit {bkg['annulus_unit']!r}: scale or arcsec"
        )
    if bkg["statistic"] not in SKY_VARIANCE_FACTOR:
        raise ValueError(
            f"forced.background.statistic {bkg['statistic']!r}: one of {list(SKY_VARIANCE_FACTOR)}"
        )
    inner, outer = (float(v) for v in bkg["annulus"])
    if not 0 < inner < outer:
        raise ValueError(f"forced.background.annulus {bkg['annulus']}: need 0 < inner < outer")
    return out


# ---------------------------------------------------------------------- filters, ZPs


def image_filter(header_filter: str, path: str, pattern: str | None = None) -> str:
    """The filter of an image: the header's, else the first group of ``pattern``
    searched in the file name (case-insensitive), else ``"NONE"``. Upper case."""
    filt = (header_filter or "").strip().upper()
    if filt:
        return filt
    if pattern:
        from pathlib import Path

        match = re.search(pattern, Path(path).name, flags=re.IGNORECASE)
        if match:
            value = match.group(1) if match.groups() else match.group(0)
            return value.strip().upper() or "NONE"
    return "NONE"


def assign_bands(rows: Iterable[Mapping], pattern: str | None = None) -> dict[str, str]:
    """Band label per image: its filter, or ``INSTRUMENT_FILTER`` when one filter of the
    data set is seen on several instruments (ACS F814W and WFC3 F814W differ).

    ``rows`` are mappings with ``image``, ``path``, ``instrument`` and ``filter`` (the
    inventory's columns).
    """
    rows = list(rows)
    filt = {r["image"]: image_filter(str(r.get("filter") or ""), r["path"], pattern) for r in rows}
    instruments: dict[str, set] = {}
    for r in rows:
        instruments.setdefault(filt[r["image"]], set()).add(str(r.get("instrument") or ""))
    out = {}
    for r in rows:
        f = filt[r["image"]]
        inst = str(r.get("instrument") or "")
        out[r["image"]] = f"{inst}_{f}" if len(instruments[f]) > 1 and inst else f
    return out


_JWST_INSTRUMENTS = {"NIRCAM", "NIRISS", "MIRI", "NIRSPEC", "FGS"}


def filter_wavelength_nm(band: str, instrument: str = "", photplam: float | None = None) -> float:
    """Pivot wavelength of a filter in nm: PHOTPLAM when known, else from the name.

    Filter names give the wavelength in nm for HST UV/optical (F606W), but in units of
    10 nm for JWST (F444W = 4.44 um, F1130W) and for HST IR names below 200 (F160W).
    NaN when the name holds no number.
    """
    if photplam:
        return float(photplam) / 10.0
    match = re.search(r"F(\d{3,4})[A-Z]*$", band.upper())
    if not match:
        return np.nan
    n = int(match.group(1))
    ten_nm = instrument.upper() in _JWST_INSTRUMENTS or len(match.group(1)) == 4 or n < 200
    return float(n * 10 if ten_nm else n)


def band_sort_key(band: str, wavelength_nm: float | None = None) -> tuple:
    """Sort key of a filter: by wavelength (:func:`filter_wavelength_nm`), then name."""
    nm = wavelength_nm if wavelength_nm and np.isfinite(wavelength_nm) else None
    nm = nm if nm is not None else filter_wavelength_nm(band)
    return (nm if np.isfinite(nm) else np.inf, band)


def image_zeropoint(band: str, options: Mapping) -> float | None:
    """Zero point from the config for ``band``: ``zeropoints[band]`` (or the filter part of
    ``INSTRUMENT_FILTER``), else the data set's ``zeropoint``, else None (use the header)."""
    zps = {str(k).upper(): v for k, v in (options.get("zeropoints") or {}).items()}
    for key in (band.upper(), band.upper().rsplit("_", 1)[-1]):
        if key in zps and zps[key] is not None:
            return float(zps[key])
    value = options.get("zeropoint")
    return None if value is None else float(value)


# ----------------------------------------------------------------------- placement


@dataclass
class PlacedGroup:
    """Targets sharing one pixel aperture shape: a multi-position photutils aperture."""

    index: np.ndarray  # indices into the TargetList
    aperture: object  # photutils PixelAperture with len(index) positions
    px_per_arcsec: float  # local pixel scale (NaN when unknown)
    sky: object | None = None  # explicit sky annulus (DS9 background region), 1 position


@dataclass
class Placement:
    """Where the targets fall on one image."""

    groups: list[PlacedGroup] = field(default_factory=list)
    off_image: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _shape_key(aperture) -> tuple:
    values = []
    for name in aperture._params[1:]:
        v = getattr(aperture, name)
        values.append(round(float(u.Quantity(v).value), 9))
    return (type(aperture).__name__, *values)


def _with_positions(aperture, positions):
    params = {name: getattr(aperture, name) for name in aperture._params[1:]}
    return type(aperture)(positions, **params)


def _size(aperture) -> float:
    """Outer semi-major axis (or radius) of an aperture, in its own units."""
    for name in ("r_out", "a_out", "r", "a"):
        if hasattr(aperture, name):
            return float(u.Quantity(getattr(aperture, name)).value)
    raise TypeError(f"aperture {type(aperture).__name__} has no size")


def _scale_varies(wcs, shape, tol: float = 1e-3) -> bool:
    """True when the pixel scale changes by more than ``tol`` over the image (distortion):
    then each sky aperture is converted at its own position."""
    ny, nx = shape
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2], dtype=float)
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2], dtype=float)
    c0 = wcs.pixel_to_world(x, y)
    sx = c0.separation(wcs.pixel_to_world(x + 1, y)).arcsec
    sy = c0.separation(wcs.pixel_to_world(x, y + 1)).arcsec
    scale = np.sqrt(sx * sy)
    return bool(np.ptp(scale) > tol * np.median(scale))


def place_targets(
    targets: TargetList | Sequence[Target], image: Image, mask: np.ndarray | None = None
) -> Placement:
    """Convert the targets to pixel apertures on ``image``; keep those it covers.

    Sky regions need the image WCS (those of an image without one are reported, pixel
    regions still work). A target is on the image when its centre lies inside the array
    and its aperture holds at least one pixel not in ``mask`` (default: the image's bad
    pixels); the others go to ``off_image``.
    """
    from photutils.aperture import region_to_aperture

    targets = list(targets)
    mask = image.mask if mask is None else mask
    out = Placement()
    has_wcs = image.wcs is not None
    sky_idx = [i for i, t in enumerate(targets) if t.is_sky]
    if sky_idx and not has_wcs:
        out.problems.append(
            f"{image.path}: no celestial WCS in the header: {len(sky_idx)} sky region(s) "
            f"cannot be placed on it ({', '.join(targets[i].id for i in sky_idx[:10])}"
            f"{', ...' if len(sky_idx) > 10 else ''}); only pixel regions are measured"
        )
    per_position = has_wcs and _scale_varies(image.wcs, image.shape)
    default_scale = 1.0 / image.pixel_scale() if image.pixel_scale() else np.nan
    buckets: dict[tuple, list[int]] = {}
    apertures = {}
    for i, target in enumerate(targets):
        if target.is_sky and not has_wcs:
            continue
        ap = region_to_aperture(target.region)
        apertures[i] = ap
        key = (_shape_key(ap), target.is_sky)
        if target.sky_region is not None or (per_position and target.is_sky):
            key = (*key, i)  # its own group: own sky region, or converted at its own position
        buckets.setdefault(key, []).append(i)
    order = np.asarray(list(apertures), dtype=int)  # target indices, increasing
    icrs = _icrs_centres(targets, list(order))
    for key, members in buckets.items():
        first = apertures[members[0]]
        if key[1]:  # sky apertures: one to_pixel for the group
            coords = icrs[np.searchsorted(order, members)]
            pix = _with_positions(first, coords).to_pixel(image.wcs)
            scale = _size(pix) / u.Quantity(_size(first), _first_unit(first)).to_value(u.arcsec)
        else:
            pos = np.array([apertures[i].positions for i in members], dtype=float)
            pix = _with_positions(first, pos)
            scale = default_scale
        sky = None
        t0 = targets[members[0]]
        if t0.sky_region is not None:
            sky_ap = region_to_aperture(t0.sky_region)
            sky = sky_ap.to_pixel(image.wcs) if t0.is_sky else sky_ap
        keep, reasons = _covered(pix, mask)
        for m, why in zip(members, reasons, strict=True):
            if why:
                out.off_image.append(targets[m].id)
        if keep.any():
            idx = np.asarray(members)[keep]
            out.groups.append(PlacedGroup(idx, pix[np.flatnonzero(keep)], scale, sky))
    out.groups.sort(key=lambda g: int(g.index[0]))
    if out.off_image:
        order = {t.id: k for k, t in enumerate(targets)}
        out.off_image.sort(key=order.get)
    return out


def _icrs_centres(targets: list[Target], indices: list[int]) -> SkyCoord:
    """ICRS centres of the sky targets among ``indices`` (NaN for pixel ones), transformed
    once per frame rather than once per region."""
    lon = np.full(len(indices), np.nan)
    lat = np.full(len(indices), np.nan)
    frames: dict[tuple, list[int]] = {}
    examples = {}
    for k, i in enumerate(indices):
        if not targets[i].is_sky:
            continue
        frame = targets[i].region.center.frame
        key = (frame.name, str(getattr(frame, "equinox", "")), str(getattr(frame, "obstime", "")))
        if key not in examples:
            examples[key] = frame.replicate_without_data()
        frames.setdefault(key, []).append(k)
        data = frame.data  # the stored representation: no frame machinery per region
        if not hasattr(data, "lon"):
            data = frame.represent_as("unitspherical")
        lon[k], lat[k] = data.lon.to_value(u.deg), data.lat.to_value(u.deg)
    for key, ks in frames.items():
        c = SkyCoord(lon[ks] * u.deg, lat[ks] * u.deg, frame=examples[key]).icrs
        lon[ks], lat[ks] = c.ra.deg, c.dec.deg
    return SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")


def _first_unit(aperture) -> u.Unit:
    """Unit of an aperture's size parameters (arcsec for sky apertures, else pixel)."""
    for name in ("r_out", "a_out", "r", "a"):
        if hasattr(aperture, name):
            v = getattr(aperture, name)
            return v.unit if isinstance(v, u.Quantity) else u.pix
    return u.pix


def _covered(aperture, mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Which positions of ``aperture`` the image covers, and why the others are not."""
    ny, nx = mask.shape
    xy = np.atleast_2d(aperture.positions)
    x, y = xy[:, 0], xy[:, 1]
    inside = np.isfinite(x) & np.isfinite(y)
    inside &= (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    reasons = ["" if ok else "centre outside the image" for ok in inside]
    if inside.any():
        sub = aperture[np.flatnonzero(inside)]
        used = np.atleast_1d(sub.area_overlap(np.zeros(mask.shape), mask=mask))
        for k, j in enumerate(np.flatnonzero(inside)):
            if not used[k] > 0:
                inside[j] = False
                reasons[j] = "no usable pixel inside the region"
    return inside, reasons


def sky_apertures(group: PlacedGroup, options: Mapping):
    """The pixel sky annulus of a placed group (the explicit one when given)."""
    from photutils.aperture import (
        CircularAnnulus,
        CircularAperture,
        EllipticalAnnulus,
        EllipticalAperture,
    )

    if group.sky is not None:
        return group.sky
    bkg = options["background"]
    inner, outer = (float(v) for v in bkg["annulus"])
    ap = group.aperture
    pos = ap.positions
    if isinstance(ap, CircularAperture | CircularAnnulus):
        size = ap.r if isinstance(ap, CircularAperture) else ap.r_out
        r_in, r_out = _annulus_radii(size, inner, outer, bkg["annulus_unit"], group.px_per_arcsec)
        return CircularAnnulus(pos, r_in, r_out)
    if isinstance(ap, EllipticalAperture | EllipticalAnnulus):
        a, b = (ap.a, ap.b) if isinstance(ap, EllipticalAperture) else (ap.a_out, ap.b_out)
        a_in, a_out = _annulus_radii(a, inner, outer, bkg["annulus_unit"], group.px_per_arcsec)
        return EllipticalAnnulus(
            pos, a_in, a_out, b_out=a_out * b / a, b_in=a_in * b / a, theta=ap.theta
        )
    raise TypeError(f"no sky annulus for {type(ap).__name__}")


def _annulus_radii(size, inner, outer, unit, px_per_arcsec):
    if unit == "arcsec":
        if not np.isfinite(px_per_arcsec):
            raise ValueError(
                "forced.background.annulus_unit 'arcsec' needs a pixel scale (WCS); "
                "use 'scale' for images without WCS"
            )
        r_in, r_out = inner * px_per_arcsec, outer * px_per_arcsec
        if r_in <= size:
            log.warning(
                "sky annulus inner radius %.3g px lies inside a region of size %.3g px",
                r_in,
                size,
            )
        return r_in, r_out
    return inner * size, outer * size


# ------------------------------------------------------------------------ measuring


def _weighted_variance_sum(aperture, variance: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``sum_i (w_i ERR_i)^2`` per position: the ERR term of the error formula, with the
    exact overlap fractions squared (not photutils' linear weights)."""
    # masked and non-finite pixels contribute nothing (as they do to the flux)
    var = np.where(mask | ~np.isfinite(variance), 0.0, variance)
    out = []
    masks = aperture.to_mask(method="exact")
    for m in masks if isinstance(masks, list) else [masks]:
        cut = m.cutout(var, fill_value=0.0)
        out.append(float(np.sum(m.data**2 * cut)) if cut is not None else np.nan)
    return np.asarray(out)


def _pixel_flag_in(aperture, pixel_flags: np.ndarray, bit) -> np.ndarray:
    from photutils.aperture import aperture_photometry

    hit = ((pixel_flags & bit) != 0).astype(float)
    if not hit.any():
        return np.zeros(len(aperture), dtype=bool)
    return np.asarray(aperture_photometry(hit, aperture, method="exact")["aperture_sum"]) > 0


def _local_sky(work, mask, annulus, options):
    """Sigma-clipped sky level, scatter and pixel count in each annulus."""
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats

    bkg = options["background"]
    clip = SigmaClip(sigma=float(bkg["sigma_clip"]), maxiters=10) if bkg["sigma_clip"] else None
    stats = ApertureStats(work, annulus, mask=mask, sigma_clip=clip)
    median = np.atleast_1d(stats.median).astype(float)
    mean = np.atleast_1d(stats.mean).astype(float)
    level = {"median": median, "mean": mean, "mmm": 3.0 * median - 2.0 * mean}[bkg["statistic"]]
    # the clipped std de-biased for the clipping (as the field engine does)
    std = np.atleast_1d(stats.std).astype(float)
    if bkg["sigma_clip"]:
        std = std / clipped_std_correction(float(bkg["sigma_clip"]))
    n = np.atleast_1d(u.Quantity(stats.center_aper_area).value).astype(float)
    return level, std, np.nan_to_num(n, nan=0.0)


@dataclass
class _Pixels:
    """The pixels photometry sums: area rule applied, zero fill masked, sky map removed."""

    data: np.ndarray
    error: np.ndarray | None
    flags: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return (self.flags & PIXEL_BAD) != 0


def _pixels(image: Image, options: Mapping) -> _Pixels:
    mask_zeros = options.get("mask_zeros")
    if mask_zeros is None:  # resampled products fill uncovered pixels with 0, not NaN
        mask_zeros = image.meta.product in _RESAMPLED
    data, error, flags = image_pixels(image, mask_zeros=bool(mask_zeros))
    data = np.asarray(data, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    return _Pixels(data, error, flags)


def _global_sky_model(pix: _Pixels, options):
    from aperflow.background import estimate_background

    opts = dict(options["background"].get("global") or {})
    method = opts.pop("method", "2d")
    bkg = estimate_background(pix.data, mask=pix.mask, method=method, **opts)
    if bkg.method == "global":
        n_sky = float((~pix.mask & np.isfinite(pix.data)).sum())
    else:  # one mesh value: box_size^2 pixels, median-filtered over filter_size^2 boxes
        box = np.broadcast_to(np.atleast_1d(opts.get("box_size", 64)), 2)
        filt = np.broadcast_to(np.atleast_1d(opts.get("filter_size", 3)), 2)
        n_sky = float(np.prod(np.minimum(box, pix.data.shape)) * np.prod(filt))
    return bkg, n_sky


def _group_sky(group, pix: _Pixels, options, global_bkg):
    """Sky level per pixel, sky noise per pixel, pixels used, the effective number of sky
    pixels for the error formula and the annulus' inner/outer semi-major axes, for each
    position of a group."""
    from photutils.aperture import ApertureStats

    bkg_opts = options["background"]
    method = bkg_opts["method"]
    n = len(group.index)
    if method == "global":
        bkg, n_sky = global_bkg
        ap = group.aperture
        level = np.atleast_1d(ApertureStats(bkg.background, ap, sum_method="exact").sum)
        rms = np.atleast_1d(ApertureStats(bkg.rms, ap, sum_method="exact").sum)
        area = np.atleast_1d(ap.area_overlap(np.zeros(pix.data.shape)))
        nan = np.full(n, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return level / area, rms / area, np.full(n, n_sky), np.full(n, n_sky), nan, nan
    annulus = sky_apertures(group, options)
    if annulus.isscalar:  # an explicit DS9 background annulus (one target, its own centre)
        annulus = _with_positions(annulus, np.atleast_2d(annulus.positions))
    level, std, n_sky = _local_sky(pix.data, pix.mask, annulus, options)
    geom = _geometry(annulus)
    sky_in, sky_out = np.full(n, geom["a_in_px"]), np.full(n, geom["a_px"])
    if method == "none":  # already sky-subtracted: no level, no error of the level
        return np.zeros(n), std, n_sky, np.full(n, np.inf), sky_in, sky_out
    # a median is a noisier level than a mean: fewer effective pixels (field engine's rule)
    n_eff = n_sky / SKY_VARIANCE_FACTOR[bkg_opts["statistic"]]
    return level, std, n_sky, n_eff, sky_in, sky_out


def measure_image(
    image: Image,
    targets: TargetList | Sequence[Target],
    options: Mapping | None = None,
    band: str | None = None,
) -> Table:
    """Forced photometry of ``targets`` on one image.

    Parameters
    ----------
    image : Image
        The image (:func:`aperflow.images.open_image`).
    targets : TargetList or sequence of Target
        The regions (:func:`aperflow.regions.read_targets`).
    options : mapping, optional
        The ``forced`` options (defaults: :data:`DEFAULTS`).
    band : str, optional
        The filter label (default: :func:`image_filter` of the header and file name).

    Returns
    -------
    astropy.table.Table
        One row per target on the image, in the order of ``targets``: ``id, kind, ra,
        dec, x, y`` (region centre; 0-based pixels), the pixel aperture (``a_px, b_px,
        a_in_px, theta_px``), ``area`` (unmasked pixels used), ``area_arcsec2``, ``sky``
        (level per pixel subtracted), ``sky_std`` (noise per pixel, de-biased for the
        clipping), ``n_sky`` (sky pixels used), ``sky_in_px, sky_out_px`` (the sky
        annulus' semi-major axes; NaN for the global sky), ``sum`` and ``sum_err`` (pixel
        units),
        ``flux`` and ``flux_err`` (calibrated unit, ``meta['flux_unit']``), ``flux_ujy``
        and ``flux_ujy_err`` (AB flux density, NaN when uncalibrated), ``snr``, ``mag``,
        ``mag_err``, ``mag_ul3``, ``mag_ul5``, ``xcentroid, ycentroid, ra_centroid,
        dec_centroid`` (flux-weighted centroid inside the region) and ``flags``
        (:mod:`aperflow.flags`). ``meta`` holds ``off_image`` (ids not covered),
        ``problems`` and the calibration.
    """
    opts = forced_options(options)
    targets = list(targets)
    band = band or image_filter(image.meta.filter, image.path, opts.get("filter_from_name"))
    pix = _pixels(image, opts)
    placement = place_targets(targets, image, pix.mask)
    for msg in placement.problems:
        log.error(msg)
    if placement.off_image:
        log.warning(
            "%s: %d region(s) not on the image: %s",
            image.path,
            len(placement.off_image),
            ", ".join(placement.off_image),
        )
    global_bkg = None
    if opts["background"]["method"] == "global" and placement.groups:
        global_bkg = _global_sky_model(pix, opts)
        pix.data = pix.data - global_bkg[0].background
        log.info("%s: global background %s", image.path, global_bkg[0].note)
    gain = image.poisson_gain()
    if pix.error is None and gain is None:
        log.warning(
            "%s: no ERR array and no gain/exposure time: the source Poisson noise is left "
            "out of the errors",
            image.path,
        )
    zp = image_zeropoint(band, opts)
    cal = image.flux_calibration(zeropoint=zp)
    rows = [
        _measure_group(g, targets, image.wcs, pix, gain, opts, global_bkg)
        for g in placement.groups
    ]
    table = _assemble(rows, image.pixel_scale(), image.meta.bunit, cal)
    table.meta.update(
        provenance(
            image=image.path,
            filter=band,
            instrument=image.meta.instrument,
            photplam=image.meta.photplam,
            wavelength_nm=filter_wavelength_nm(band, image.meta.instrument, image.meta.photplam),
            mag_system=cal.system,
            zeropoint=float(cal.zeropoint),
            flux_unit=cal.unit,
            calibration=cal.note,
            background=opts["background"]["method"],
            off_image=list(placement.off_image),
            problems=list(placement.problems),
            pixel_origin="0-based",
        )
    )
    return table


def _measure_group(group, targets, wcs, pix: _Pixels, gain, opts, global_bkg) -> dict:
    from photutils.aperture import ApertureStats

    ap = group.aperture
    n = len(group.index)
    method = opts["background"]["method"]
    sky, sky_std, n_sky, n_eff, sky_in, sky_out = _group_sky(group, pix, opts, global_bkg)
    flag = np.zeros(n, dtype=np.int64)
    no_sky = ~np.isfinite(sky) | ((n_sky == 0) & (method == "local"))
    flag[no_sky] |= F.NO_SKY
    sky = np.where(no_sky, 0.0, sky)
    if method != "global":
        flag[n_sky < int(opts["background"]["min_pixels"])] |= F.SKY_FEW_PIXELS
    # the global map is already subtracted from the pixels; a local level is subtracted here
    local = sky if method == "local" else np.zeros(n)
    stats = ApertureStats(
        pix.data, ap, mask=pix.mask, local_bkg=local, wcs=wcs, sum_method="exact"
    )
    total = np.atleast_1d(stats.sum).astype(float)
    area = np.atleast_1d(u.Quantity(stats.sum_aper_area).value).astype(float)
    full = np.atleast_1d(ap.area_overlap(np.zeros(pix.data.shape))).astype(float)
    flag[area < full - 1e-6] |= F.MASKED
    flag[full < ap.area - 1e-6] |= F.EDGE
    flag[_pixel_flag_in(ap, pix.flags, PIXEL_SATURATED)] |= F.SATURATED
    flag[_pixel_flag_in(ap, pix.flags, PIXEL_COSMIC_RAY)] |= F.COSMIC_RAY
    var_sum = None if pix.error is None else _weighted_variance_sum(ap, pix.error**2, pix.mask)
    n_eff = np.where(np.isfinite(n_eff) | np.isinf(n_eff), n_eff, 0.0)
    err = flux_error(area, np.nan_to_num(sky_std, nan=0.0), n_eff, var_sum, total, gain)
    flag[~(total > 0)] |= F.NONPOSITIVE
    xc = np.atleast_1d(stats.x_centroid).astype(float)
    yc = np.atleast_1d(stats.y_centroid).astype(float)
    flag[~(np.isfinite(xc) & np.isfinite(yc))] |= F.CENTROID
    if wcs is not None:
        sc = wcs.pixel_to_world(xc, yc)
        rac, decc = np.atleast_1d(sc.ra.deg), np.atleast_1d(sc.dec.deg)
        centre = wcs.pixel_to_world(*np.atleast_2d(ap.positions).T)
        ra, dec = np.atleast_1d(centre.ra.deg), np.atleast_1d(centre.dec.deg)
    else:
        rac = decc = ra = dec = np.full(n, np.nan)
    xy = np.atleast_2d(ap.positions)
    geometry = _geometry(ap)
    return {
        "id": [targets[i].id for i in group.index],
        "kind": [targets[i].kind for i in group.index],
        "order": group.index,
        "ra": ra,
        "dec": dec,
        "x": xy[:, 0],
        "y": xy[:, 1],
        **{k: np.full(n, v) for k, v in geometry.items()},
        "area": area,
        "sky": sky,
        "sky_std": sky_std,
        "n_sky": n_sky,
        "sky_in_px": sky_in,
        "sky_out_px": sky_out,
        "sum": total,
        "sum_err": err,
        "xcentroid": xc,
        "ycentroid": yc,
        "ra_centroid": rac,
        "dec_centroid": decc,
        "flags": flag,
    }


def _geometry(ap) -> dict:
    """Pixel semi-axes and angle of an aperture: a_px (outer), b_px, a_in_px, theta_px."""
    theta = (
        float(u.Quantity(getattr(ap, "theta", 0.0), u.deg).value) if hasattr(ap, "theta") else 0.0
    )
    if hasattr(ap, "r"):
        return {"a_px": ap.r, "b_px": ap.r, "a_in_px": 0.0, "theta_px": 0.0}
    if hasattr(ap, "r_out"):
        return {"a_px": ap.r_out, "b_px": ap.r_out, "a_in_px": ap.r_in, "theta_px": 0.0}
    if hasattr(ap, "a_out"):
        return {"a_px": ap.a_out, "b_px": ap.b_out, "a_in_px": ap.a_in, "theta_px": theta}
    return {"a_px": ap.a, "b_px": ap.b, "a_in_px": 0.0, "theta_px": theta}


_COLUMNS = (
    ("id", str, None), ("kind", str, None), ("ra", float, u.deg), ("dec", float, u.deg),
    ("x", float, u.pix), ("y", float, u.pix), ("a_px", float, u.pix), ("b_px", float, u.pix),
    ("a_in_px", float, u.pix), ("theta_px", float, u.deg), ("area", float, u.pix**2),
    ("area_arcsec2", float, u.arcsec**2), ("sky", float, None), ("sky_std", float, None),
    ("n_sky", float, None), ("sky_in_px", float, u.pix), ("sky_out_px", float, u.pix),
    ("sum", float, None), ("sum_err", float, None),
    ("flux", float, None), ("flux_err", float, None), ("flux_ujy", float, u.uJy),
    ("flux_ujy_err", float, u.uJy), ("snr", float, None), ("mag", float, u.mag),
    ("mag_err", float, u.mag), ("mag_ul3", float, u.mag), ("mag_ul5", float, u.mag),
    ("xcentroid", float, u.pix), ("ycentroid", float, u.pix), ("ra_centroid", float, u.deg),
    ("dec_centroid", float, u.deg), ("flags", np.int64, None),
)  # fmt: skip


_BUNITS = {
    "ELECTRONS/S": "electron/s",
    "ELECTRON/S": "electron/s",
    "E/S": "electron/s",
    "E-/S": "electron/s",
    "ELECTRONS": "electron",
    "COUNTS/S": "count/s",
    "COUNTS": "count",
    "DN/S": "DN/s",
    "DN": "DN",
    "ADU": "adu",
    "ADU/S": "adu/s",
    "MJY/SR": "MJy/sr",
    "JY": "Jy",
    "UJY": "uJy",
}


def _unit(text: str):
    """An astropy unit for a header BUNIT-like string (``ELECTRONS/S``, ``MJy/sr pix``),
    or None when it does not parse."""
    t = (text or "").strip()
    extra = u.dimensionless_unscaled
    if t.lower().endswith(" pix"):  # a surface brightness summed without PIXAR_SR
        t, extra = t[:-4].strip(), u.pix
    t = _BUNITS.get(t.upper().replace(" ", ""), t)
    try:
        unit = u.Unit(t, parse_strict="raise")
    except (ValueError, TypeError):
        return None
    unit = unit * extra
    return None if unit == u.dimensionless_unscaled else unit


def _assemble(rows: list[dict], pixel_scale: float | None, bunit: str, cal) -> Table:
    data = {name: [] for name, _, _ in _COLUMNS}
    order = []
    for row in rows:
        order.append(row["order"])
        for name, _, _ in _COLUMNS:
            if name in row:
                data[name].append(np.asarray(row[name]))
    n = int(sum(len(o) for o in order))
    cols = {}
    for name, dtype, _ in _COLUMNS:
        parts = data[name]
        cols[name] = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
    scale = pixel_scale or np.nan
    cols["area_arcsec2"] = cols["area"] * scale**2
    cols["flux"] = cal.factor * cols["sum"]
    cols["flux_err"] = cal.factor * cols["sum_err"]
    if cal.system == "AB":
        to_ujy = 10 ** (-0.4 * (cal.zeropoint - AB_ZEROPOINT_UJY))
        cols["flux_ujy"] = cols["flux"] * to_ujy
        cols["flux_ujy_err"] = cols["flux_err"] * to_ujy
    else:
        cols["flux_ujy"] = cols["flux_ujy_err"] = np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["snr"] = cols["flux"] / cols["flux_err"]
    cols["mag"] = magnitude(cols["flux"], cal.zeropoint)
    cols["mag_err"] = magnitude_error(cols["flux"], cols["flux_err"])
    cols["mag_ul3"] = upper_limit_magnitude(cols["flux_err"], 3.0, cal.zeropoint)
    cols["mag_ul5"] = upper_limit_magnitude(cols["flux_err"], 5.0, cal.zeropoint)
    sort = np.argsort(np.concatenate(order)) if order else np.zeros(0, dtype=int)
    table = Table()
    pix_unit = _unit(bunit)
    flux_unit = _unit(cal.unit)
    for name, _, unit in _COLUMNS:
        if name in ("sky", "sky_std", "sum", "sum_err"):
            unit = pix_unit if name.startswith("sky") else (pix_unit * u.pix if pix_unit else None)
        if name in ("flux", "flux_err"):
            unit = flux_unit
        table[name] = cols[name][sort]
        if unit is not None:
            table[name].unit = unit
    table["flags"].description = "aperflow.flags bits (0 = clean)"
    table["x"].description = "region centre, 0-based pixel"
    return table


def failed_table(path: str, reason: str, band: str = "NONE") -> Table:
    """The per-image table of an image that could not be measured: no rows, every column,
    and ``meta['problems']`` saying why (the catalogs skip it)."""
    from aperflow.calibration import FluxCalibration

    cal = FluxCalibration(1.0, "", 0.0, "instrumental", reason)
    table = _assemble([], None, "", cal)
    table.meta.update(
        provenance(
            image=str(path),
            filter=band,
            mag_system="",
            zeropoint=0.0,
            flux_unit="",
            off_image=[],
            problems=[reason],
            pixel_origin="0-based",
        )
    )
    return table


# -------------------------------------------------------------------------- catalogs


_CATALOG_FLUX_DESC = "inverse-variance mean over the images of this filter"


def combine_band(
    tables: Sequence[Table],
    targets: TargetList | Sequence[Target],
    band: str,
    exclude_flags: Iterable[str] = ("EDGE", "MASKED", "NO_SKY"),
) -> Table:
    """Per-filter catalog: one row per target, the weighted mean over the images.

    Parameters
    ----------
    tables : sequence of Table
        Per-image tables of :func:`measure_image`, all of filter ``band``.
    targets : TargetList or sequence of Target
        Every target of the data set (rows keep their order; a target no image covers
        gets NaN fluxes, ``n_images = 0`` and the ``OFF_IMAGE`` flag).
    band : str
        The filter label.
    exclude_flags : iterable of str
        Measurements with any of these flags (names of :mod:`aperflow.flags`) are left out
        of the mean.

    Returns
    -------
    Table
        ``id, kind, ra, dec, filter, n_images, n_covering, flux, flux_err, reduced_chi2,
        snr, mag, mag_err, mag_ul3, mag_ul5, flags, images``. ``flux`` is in microjansky
        when every image is AB-calibrated (``meta['flux_unit']``), else in the images'
        common unit with their common zero point.
    """
    targets = list(targets)
    ids = [t.id for t in targets]
    pos = {t: k for k, t in enumerate(ids)}
    # images that covered nothing (or failed) add nothing, whatever their calibration
    tables = [t for t in tables if t is not None and len(t)]
    n_t, n_i = len(ids), len(tables)
    bad_bits = 0
    for name in exclude_flags:
        if name not in _FLAG_NAMES:
            raise ValueError(
                f"forced.exclude_flags: unknown flag {name!r}; known {list(_FLAG_NAMES)}"
            )
        bad_bits |= _FLAG_NAMES[name]
    ab = n_i > 0 and all(t.meta.get("mag_system") == "AB" for t in tables)
    values, errors = np.full((n_i, n_t), np.nan), np.full((n_i, n_t), np.nan)
    flagmat = np.zeros((n_i, n_t), dtype=np.int64)
    covered = np.zeros((n_i, n_t), dtype=bool)
    zp, unit = AB_ZEROPOINT_UJY, "uJy"
    if not ab and n_i:
        zps = {round(float(t.meta.get("zeropoint", 0.0)), 6) for t in tables}
        units = {str(t.meta.get("flux_unit", "")) for t in tables}
        if len(zps) > 1 or len(units) > 1:
            raise ValueError(
                f"filter {band}: images are not AB-calibrated and differ in zero point "
                f"{sorted(zps)} or unit {sorted(units)}: set forced.zeropoints for {band}"
            )
        zp, unit = zps.pop(), units.pop()
    for i, t in enumerate(tables):
        j = np.array([pos.get(str(k), -1) for k in t["id"]], dtype=int)
        ok = j >= 0
        col_v = "flux_ujy" if ab else "flux"
        col_e = "flux_ujy_err" if ab else "flux_err"
        values[i, j[ok]] = np.asarray(t[col_v])[ok]
        errors[i, j[ok]] = np.asarray(t[col_e])[ok]
        flagmat[i, j[ok]] = np.asarray(t["flags"])[ok]
        covered[i, j[ok]] = True
    excluded = (flagmat & bad_bits) != 0
    wm = weighted_mean(values, errors, axis=0, mask=excluded | ~covered)
    used = covered & ~excluded & np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    flags_out = (
        np.bitwise_or.reduce(np.where(used, flagmat, 0), axis=0)
        if n_i
        else np.zeros(n_t, np.int64)
    )
    flags_out = np.asarray(flags_out, dtype=np.int64)
    excluded_only = covered.any(axis=0) & ~used.any(axis=0)
    if n_i:
        flags_out[excluded_only] |= np.bitwise_or.reduce(np.where(covered, flagmat, 0), axis=0)[
            excluded_only
        ]
    flags_out[~covered.any(axis=0)] |= F.OFF_IMAGE
    mean = np.asarray(wm.mean, dtype=float)
    err = np.asarray(wm.error, dtype=float)
    flags_out[~(mean > 0) & np.isfinite(mean)] |= F.NONPOSITIVE
    names = [str(t.meta.get("image", "")) for t in tables]
    images = [
        ",".join(_image_name(names[i]) for i in range(n_i) if used[i, k]) for k in range(n_t)
    ]
    ra, dec = _target_radec(targets, tables)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = mean / err
    out = Table(
        {
            "id": ids,
            "kind": [t.kind for t in targets],
            "ra": ra * u.deg,
            "dec": dec * u.deg,
            "filter": [band] * n_t,
            "n_images": np.asarray(wm.n, dtype=int),
            "n_covering": covered.sum(axis=0).astype(int),
            "flux": mean,
            "flux_err": err,
            "reduced_chi2": np.asarray(wm.reduced_chi2, dtype=float),
            "snr": snr,
            "mag": magnitude(mean, zp) * u.mag,
            "mag_err": magnitude_error(mean, err) * u.mag,
            "mag_ul3": upper_limit_magnitude(err, 3.0, zp) * u.mag,
            "mag_ul5": upper_limit_magnitude(err, 5.0, zp) * u.mag,
            "flags": flags_out,
            "images": images,
        }
    )
    flux_unit = _unit(unit)
    if flux_unit is not None:
        out["flux"].unit = out["flux_err"].unit = flux_unit
    out["flux"].description = _CATALOG_FLUX_DESC
    waves = [t.meta.get("wavelength_nm") for t in tables if t.meta.get("wavelength_nm")]
    waves = [w for w in waves if np.isfinite(w)]
    out.meta.update(
        provenance(
            filter=band,
            mag_system="AB"
            if ab
            else (tables[0].meta.get("mag_system", "instrumental") if n_i else "AB"),
            zeropoint=float(zp),
            flux_unit=unit,
            wavelength_nm=float(np.median(waves)) if waves else filter_wavelength_nm(band),
            images=[_image_name(nm) for nm in names],
            exclude_flags=list(exclude_flags),
        )
    )
    return out


def _image_name(path: str) -> str:
    from aperflow.datasets import image_id

    return image_id(path) if path else ""


def _target_radec(targets, tables) -> tuple[np.ndarray, np.ndarray]:
    """Sky centre of each target: the region's own, else from any image that placed it."""
    n = len(targets)
    ra, dec = np.full(n, np.nan), np.full(n, np.nan)
    for k, t in enumerate(targets):
        if t.is_sky:
            c = t.region.center.icrs
            ra[k], dec[k] = c.ra.deg, c.dec.deg
    pos = {t.id: k for k, t in enumerate(targets)}
    for tab in tables:
        for row_id, r, d in zip(
            tab["id"], np.asarray(tab["ra"]), np.asarray(tab["dec"]), strict=True
        ):
            k = pos.get(str(row_id))
            if k is not None and not np.isfinite(ra[k]) and np.isfinite(r):
                ra[k], dec[k] = r, d
    return ra, dec


_WIDE = ("flux", "flux_err", "mag", "mag_err", "mag_ul3", "mag_ul5", "snr", "n_images", "flags")


def wide_catalog(band_tables: Mapping[str, Table]) -> Table:
    """One row per target, one block of columns per filter (``flux_F606W``, ``mag_F606W``,
    ..., ``n_images_F606W``, ``flags_F606W``), filters in wavelength order."""
    bands = sorted(
        band_tables, key=lambda b: band_sort_key(b, band_tables[b].meta.get("wavelength_nm"))
    )
    if not bands:
        return Table({"id": np.zeros(0, dtype=str)})
    first = band_tables[bands[0]]
    out = Table({k: first[k] for k in ("id", "kind", "ra", "dec")})
    for band in bands:
        t = band_tables[band]
        if list(t["id"]) != list(out["id"]):
            raise ValueError(f"filter {band}: its catalog lists other regions than {bands[0]}'s")
        for name in _WIDE:
            out[f"{name}_{band}"] = t[name]
    out.meta.update(
        provenance(
            filters=bands,
            wavelength_nm={b: band_tables[b].meta.get("wavelength_nm") for b in bands},
            flux_unit={b: band_tables[b].meta.get("flux_unit") for b in bands},
            mag_system={b: band_tables[b].meta.get("mag_system") for b in bands},
        )
    )
    return out
