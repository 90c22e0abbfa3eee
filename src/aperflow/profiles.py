"""Standard-star profiles: centroid, bad-pixel repair, curve of growth, surface brightness,
and their means over dithers (seed 001: getcircEE1, getcircSB1, meanflux1, meanSB1).

Per image
---------
1. **Position.** The star is looked up near the target (sky position through the WCS, or a
   pixel position; without a target the brightest pixel of a 3x3-median-smoothed image)
   and refined by a centroid on the sky-subtracted image in a ``box x box`` pixel box
   (``centroid_com``, ``centroid_2dg`` or both: the box is re-centred on the estimate three
   times, so the box edge does not pull the centroid). A centroid that fails or moves more
   than ``max_shift`` pixels from the guess is flagged ``CENTROID`` and the guess is used.
   Saturated and bad pixels inside ``core_radius`` are counted (information only: the core
   is not changed; bad core pixels stay out of every sum and set ``MASKED``).
2. **Sky** from the annulus ``rmax + gap .. rmax + gap + width`` (pixels whose centre lies
   in it, bad pixels excluded): a 3-sigma clipped mean, its standard deviation and the
   number of pixels left after clipping.
3. **Bad-pixel repair** between ``core_radius`` and ``rmax``: pixels flagged bad (DQ) and
   pixels more than ``low_sigma`` sky sigmas below the clipped sky are replaced by a
   polynomial surface (degree ``degree`` in x and in y) fitted to the good pixels of the
   ``(2 box + 1)^2`` neighbourhood (``repair: surface``, the default), or by the median of
   the good pixels of a ``median_size^2`` neighbourhood (``repair: median``).
4. **Curve of growth**: exact circular apertures at every radius (one overlap-weight stack,
   one tensor product for all radii), net count rate ``F = sum_i w_i d_i - A * sky`` with
   ``A = sum_i w_i`` over usable pixels, and the error of :func:`aperflow.photometry.flux_error`:
   ``sigma_F^2 = F/g + A sigma_sky^2 + A^2 sigma_sky^2 / n_sky`` (seed 001's formula: Poisson
   with the gain ``g`` [pixel unit -> detected counts, i.e. gain x exposure time for DN/s],
   sky scatter, error of the sky mean), or ``error_model: err``: the ERR extension summed
   with squared weights plus the sky-mean term.
5. **Surface brightness** in concentric annuli (``radius`` = annulus centre, ``width`` wide):
   the mean of the pixels whose centre lies in the annulus, minus the sky measured outside
   the last annulus; pixels more than ``clip_sigma`` sky sigmas below the sky are left out
   unless ``clip: false``.

Per group (filter + subarray): :func:`mean_profile` flags every dither's radius where the
curve of growth does not increase (``F(r_n) <= F(r_n-1)``; for SB where it does not
decrease), averages the unflagged dithers with :func:`aperflow.aggregate.weighted_mean`
and, where every dither is flagged, falls back to the plain mean with error
``sqrt(sum sigma_i^2)/N`` and ``n_good = 0`` (seed meanflux1).

Differences from the seed, on purpose: the seed's ``getcircEE1`` multiplies the count rate
by the gain (e-/s) and mixes units in its variance (net counts in electrons, sky sigma in
DN/s); here every term is in the image's own unit (DN/s for rate files), which is the same
formula in consistent units. The seed clips the sky twice with different iteration limits
(5 for the mean, 10 for the count); here one clipping (``sky_maxiters``, default 10) gives
mean, sigma and count.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table
from numpy.lib.stride_tricks import sliding_window_view
from photutils.aperture import CircularAnnulus, CircularAperture
from photutils.centroids import centroid_2dg, centroid_com, centroid_sources
from scipy.ndimage import median_filter

from aperflow import flags as F
from aperflow.aggregate import weighted_mean
from aperflow.images import PIXEL_BAD, PIXEL_SATURATED, Image
from aperflow.photometry import flux_error
from aperflow.tables import provenance

__all__ = [
    "DEFAULTS",
    "Centroid",
    "ProfileError",
    "Repair",
    "SkyStats",
    "aperture_weights",
    "centroid_star",
    "curve_of_growth",
    "ee_profile",
    "failed_profile",
    "find_bad_pixels",
    "mean_profile",
    "mean_profile_of_files",
    "monotonic_flags",
    "radial_model",
    "repair_pixels",
    "sb_profile",
    "sky_annulus",
    "standard_options",
    "surface_brightness",
    "target_guess",
]

#: Option defaults of the standard mode (config ``standard:`` block; see config/README.md).
DEFAULTS: dict = {
    "radii": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0],
    "centroid": "com",
    "centroid_box": 7,
    "max_shift": 5.0,
    "core_radius": 5.0,
    "sky_gap": 5.0,
    "sky_width": 5.0,
    "sky_sigma": 3.0,
    "sky_maxiters": 10,
    "repair": "surface",
    "repair_box": 3,
    "repair_degree": 3,
    "median_size": 7,
    "low_sigma": 3.0,
    "error_model": "daophot",
    "gain": None,
    "sb": {
        "radii": [5.0, 9.0, 13.0, 17.0, 21.0, 25.0],
        "width": 4.0,
        "clip": True,
        "clip_sigma": 3.0,
        "sky_gap": 0.0,
        "sky_width": 5.0,
    },
    "references": [],
    "total": {"rmin": 5.0, "rmax": 10.0},
    "throughput": {},
}


class ProfileError(ValueError):
    """The star cannot be measured in an image; the message names the file and why."""


def standard_options(options: dict | None) -> dict:
    """``options`` (the merged ``standard`` config of a data set) over :data:`DEFAULTS`."""
    from aperflow.datasets import deep_merge

    return deep_merge(DEFAULTS, options or {})


# ------------------------------------------------------------------------ position


def target_guess(image: Image, target: dict | None) -> tuple[float, float]:
    """0-based pixel position of the target: ``{ra, dec}`` through the WCS, ``{x, y}``, or
    (no target) the brightest pixel of the 3x3-median-smoothed image.

    Raises
    ------
    ProfileError
        No WCS for a sky target, or the position falls outside the image.
    """
    ny, nx = image.shape
    target = target or {}
    if "ra" in target and "dec" in target:
        if image.wcs is None:
            raise ProfileError(f"{image.path}: target given as RA/Dec but the image has no WCS")
        x, y = image.wcs.world_to_pixel_values(target["ra"], target["dec"])
        x, y = float(x), float(y)
    elif "x" in target and "y" in target:
        x, y = float(target["x"]), float(target["y"])
    else:
        smooth = median_filter(np.nan_to_num(image.data, nan=-np.inf), size=3)
        y, x = (float(v) for v in np.unravel_index(np.argmax(smooth), smooth.shape))
    if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
        raise ProfileError(
            f"{image.path}: target at pixel ({x:.1f}, {y:.1f}) lies outside the {nx}x{ny} image"
        )
    return x, y


@dataclass
class Centroid:
    """Refined star position (0-based pixels) and how it was found."""

    x: float
    y: float
    x_guess: float
    y_guess: float
    x_com: float = np.nan
    y_com: float = np.nan
    x_2dg: float = np.nan
    y_2dg: float = np.nan
    method: str = "com"
    flags: int = 0


def _centroid_once(data, mask, x, y, box, func, iterations=3):
    ny, nx = data.shape
    for _ in range(iterations):
        if not (0 <= x <= nx - 1 and 0 <= y <= ny - 1):
            return np.nan, np.nan  # at or beyond the edge: photutils refuses; CENTROID flag
        cx, cy = centroid_sources(data, x, y, box_size=box, mask=mask, centroid_func=func)
        if not (np.isfinite(cx[0]) and np.isfinite(cy[0])):
            return np.nan, np.nan
        x, y = float(cx[0]), float(cy[0])
    return x, y


def centroid_star(
    data: np.ndarray,
    x: float,
    y: float,
    background: float = 0.0,
    box_size: int = 7,
    method: str = "com",
    max_shift: float | None = 5.0,
) -> Centroid:
    """Centroid of the star near ``(x, y)`` on ``data - background``.

    Parameters
    ----------
    method : {'com', '2dg', 'both'}
        Centre of mass in the box (seed 001), a 2-D Gaussian fit, or both (the position
        used is the centre of mass; the Gaussian one is reported beside it).
    max_shift : float, optional
        Largest accepted distance (pixels) from the guess; beyond it, or when the
        centroid fails, the guess is used and ``flags`` has ``CENTROID``.
    """
    if method not in ("com", "2dg", "both"):
        raise ValueError(f"centroid method {method!r} is not one of com, 2dg, both")
    work = np.asarray(data, dtype=float) - background
    mask = ~np.isfinite(work)
    work = np.where(mask, 0.0, work)
    out = Centroid(x, y, x, y, method=method)
    if method in ("com", "both"):
        out.x_com, out.y_com = _centroid_once(work, mask, x, y, box_size, centroid_com)
    if method in ("2dg", "both"):
        out.x_2dg, out.y_2dg = _centroid_once(work, mask, x, y, box_size, centroid_2dg)
    cx, cy = (out.x_2dg, out.y_2dg) if method == "2dg" else (out.x_com, out.y_com)
    moved = np.hypot(cx - x, cy - y)
    if not np.isfinite(moved) or (max_shift is not None and moved > max_shift):
        out.flags |= F.CENTROID
    else:
        out.x, out.y = cx, cy
    return out


# ----------------------------------------------------------------------------- sky


@dataclass
class SkyStats:
    """Clipped sky statistics of an annulus: mean, per-pixel sigma, pixels used."""

    mean: float
    std: float
    n: int
    r_in: float
    r_out: float


def sky_annulus(
    data: np.ndarray,
    x: float,
    y: float,
    r_in: float,
    r_out: float,
    sigma: float = 3.0,
    maxiters: int = 10,
) -> SkyStats:
    """Sigma-clipped mean, standard deviation and unclipped pixel count of the annulus
    ``r_in..r_out`` around ``(x, y)`` (pixels whose centre lies in it; NaN pixels and the
    part off the image are left out). ``n = 0`` and mean 0, std NaN when nothing is left."""
    mask = CircularAnnulus((x, y), r_in, r_out).to_mask(method="center")
    values = mask.get_values(np.asarray(data, dtype=float))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return SkyStats(0.0, np.nan, 0, r_in, r_out)
    clipped = sigma_clip(values, sigma=sigma, maxiters=maxiters, masked=True)
    kept = np.asarray(clipped.compressed(), dtype=float)
    if kept.size == 0:
        return SkyStats(0.0, np.nan, 0, r_in, r_out)
    return SkyStats(float(kept.mean()), float(kept.std()), int(kept.size), r_in, r_out)


# ---------------------------------------------------------------------- bad pixels


def _radius_map(shape, x, y):
    yy, xx = np.indices(shape)
    return np.hypot(xx - x, yy - y)


def find_bad_pixels(
    data: np.ndarray,
    x: float,
    y: float,
    r_min: float,
    r_max: float,
    low_limit: float | None = None,
    bad: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean map of the pixels to repair: centre at ``r_min <= r <= r_max`` from the
    star, and bad (``bad`` True or non-finite) or below ``low_limit``."""
    r = _radius_map(data.shape, x, y)
    ring = (r >= r_min) & (r <= r_max)
    with np.errstate(invalid="ignore"):
        select = ~np.isfinite(data)
        if bad is not None:
            select |= bad
        if low_limit is not None and np.isfinite(low_limit):
            select |= data < low_limit
    return ring & select


@dataclass
class Repair:
    """Result of :func:`repair_pixels`: the repaired image and what was done."""

    data: np.ndarray
    repaired: np.ndarray  # bool map of pixels given a new value
    failed: np.ndarray  # bool map of pixels that could not be repaired (left NaN)
    method: str
    positions: list = field(default_factory=list)  # [(x, y), ...] 0-based, repaired


def _surface_value(data, good, iy, ix, box, degree):
    ny, nx = data.shape
    y0, y1 = max(iy - box, 0), min(iy + box + 1, ny)
    x0, x1 = max(ix - box, 0), min(ix + box + 1, nx)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    use = good[y0:y1, x0:x1]
    u, v, z = (xx[use] - ix) / box, (yy[use] - iy) / box, data[y0:y1, x0:x1][use]
    # Lower the degree until the fit is over-determined (edges, clusters of bad pixels).
    for deg in range(degree, -1, -1):
        if z.size >= (deg + 1) ** 2 + 2:
            basis = np.stack([u**i * v**j for i in range(deg + 1) for j in range(deg + 1)], 1)
            coeff = np.linalg.lstsq(basis, z, rcond=None)[0]
            return float(coeff[0])  # the surface at the pixel itself (u = v = 0)
    return np.nan


def radial_model(data: np.ndarray, good: np.ndarray, x: float, y: float, rmax: float):
    """Azimuthal-median profile of the star around ``(x, y)`` from the ``good`` pixels,
    in 0.25-px rings out to ``rmax``, interpolated at every pixel's radius (NaN beyond)."""
    from scipy.stats import binned_statistic

    r = _radius_map(data.shape, x, y)
    use = good & np.isfinite(data) & (r <= rmax + 1.0)
    edges = np.arange(0.0, rmax + 1.5, 0.25)
    med = binned_statistic(r[use], data[use], "median", edges).statistic
    rc = binned_statistic(r[use], r[use], "mean", edges).statistic
    ok = np.isfinite(med) & np.isfinite(rc)
    if ok.sum() < 2:
        return np.zeros(data.shape)
    return np.where(r <= rmax + 1.0, np.interp(r, rc[ok], med[ok]), 0.0)


def repair_pixels(
    data: np.ndarray,
    select: np.ndarray,
    method: str = "surface",
    box: int = 3,
    degree: int = 3,
    median_size: int = 7,
    center: tuple[float, float] | None = None,
) -> Repair:
    """Replace the ``select`` pixels of ``data`` from their good neighbours.

    ``method='surface'``: a polynomial ``sum_ij c_ij u^i v^j`` (``i, j <= degree``) fitted
    by least squares to the good pixels of the ``(2 box + 1)^2`` box around each pixel,
    evaluated at the pixel. ``method='median'``: the median of the good pixels of the
    ``median_size^2`` box. Neighbours that are themselves selected or NaN never enter.
    ``method='none'`` returns the data unchanged.

    With ``center`` (the star's position), the star's azimuthal-median profile
    (:func:`radial_model`) is subtracted before the fit or median and added back: a cubic
    in a 7x7 box cannot follow a PSF core a few pixels away (errors of tens of per cent
    at 5-6 px on a sharp PSF), while the residual about the radial profile is smooth.
    """
    out = np.array(data, dtype=float, copy=True)
    select = np.asarray(select, dtype=bool)
    nothing = np.zeros_like(select)
    if method == "none" or not select.any():
        return Repair(out, nothing, nothing.copy(), method)
    if method not in ("surface", "median"):
        raise ValueError(f"repair method {method!r} is not one of surface, median, none")
    good = np.isfinite(out) & ~select
    iy, ix = np.nonzero(select)
    model = np.zeros(out.shape)
    if center is not None:
        reach = float(np.hypot(ix - center[0], iy - center[1]).max()) + max(box, median_size)
        model = radial_model(out, good, center[0], center[1], reach)
    resid = out - model
    if method == "surface":
        values = np.array(
            [_surface_value(resid, good, a, b, box, degree) for a, b in zip(iy, ix, strict=True)]
        )
    else:
        half = median_size // 2
        padded = np.pad(np.where(good, resid, np.nan), half, constant_values=np.nan)
        windows = sliding_window_view(padded, (median_size, median_size))[iy, ix]
        with np.errstate(all="ignore"):
            values = np.nanmedian(windows.reshape(len(iy), -1), axis=1)
    values = values + model[iy, ix]
    ok = np.isfinite(values)
    out[iy[ok], ix[ok]] = values[ok]
    out[iy[~ok], ix[~ok]] = np.nan
    repaired, failed = nothing.copy(), nothing.copy()
    repaired[iy[ok], ix[ok]] = True
    failed[iy[~ok], ix[~ok]] = True
    positions = [(int(b), int(a)) for a, b in zip(iy[ok], ix[ok], strict=True)]
    return Repair(out, repaired, failed, method, positions)


# -------------------------------------------------------------------- apertures


def aperture_weights(shape, x: float, y: float, radii) -> tuple[np.ndarray, tuple]:
    """Exact overlap fractions of circles of ``radii`` centred at ``(x, y)``.

    Returns
    -------
    weights : ndarray, shape (n_radii, h, w)
        Overlap of every pixel of the cutout with each circle.
    slices : tuple of slice
        Where the cutout lies in the image (the part of the largest circle on the image).
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    ny, nx = shape
    half = int(np.ceil(radii.max())) + 1
    x0, x1 = max(int(np.floor(x)) - half, 0), min(int(np.ceil(x)) + half + 1, nx)
    y0, y1 = max(int(np.floor(y)) - half, 0), min(int(np.ceil(y)) + half + 1, ny)
    cut = (max(y1 - y0, 0), max(x1 - x0, 0))
    weights = np.stack(
        [
            CircularAperture((x - x0, y - y0), r=r).to_mask(method="exact").to_image(cut)
            if min(cut) > 0
            else np.zeros(cut)
            for r in radii
        ]
    )
    return weights, (slice(y0, y1), slice(x0, x1))


def curve_of_growth(
    data: np.ndarray,
    x: float,
    y: float,
    radii,
    sky: SkyStats,
    gain: float | None = None,
    error: np.ndarray | None = None,
    pixel_flags: np.ndarray | None = None,
    repaired: np.ndarray | None = None,
) -> dict:
    """Net flux, error, area and flags in exact circular apertures at every radius.

    ``error`` given: the ERR form of :func:`aperflow.photometry.flux_error`; otherwise the
    DAOPHOT form with ``gain`` (pixel unit -> counts). NaN pixels are left out (their
    overlap does not count in the area) and set ``MASKED``.

    Returns
    -------
    dict of ndarray
        ``flux``, ``flux_err``, ``area``, ``raw_sum``, ``flags`` per radius.
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    w, sl = aperture_weights(data.shape, x, y, radii)
    cut = np.asarray(data, dtype=float)[sl]
    good = np.isfinite(cut)
    d = np.where(good, cut, 0.0)
    wg = w * good
    raw = np.tensordot(wg, d, axes=2)
    area = wg.sum(axis=(1, 2))
    sky_mean = sky.mean if sky.n > 0 else 0.0
    flux = raw - sky_mean * area
    var_sum = None
    if error is not None:
        e = np.where(good, np.nan_to_num(np.asarray(error, dtype=float)[sl]), 0.0)
        var_sum = np.tensordot(wg**2, e**2, axes=2)
    sky_std = sky.std if sky.n > 0 else 0.0
    err = flux_error(area, sky_std, sky.n, var_sum=var_sum, flux=flux, gain=gain)
    touched = w > 0
    flags = np.zeros(radii.size, dtype=np.int64)
    flags[(touched & ~good).any(axis=(1, 2))] |= F.MASKED
    flags[w.sum(axis=(1, 2)) < np.pi * radii**2 * (1 - 1e-6)] |= F.EDGE
    if pixel_flags is not None:
        pf = pixel_flags[sl]
        flags[(touched & ((pf & PIXEL_SATURATED) != 0)).any(axis=(1, 2))] |= F.SATURATED
    if repaired is not None:
        flags[(touched & repaired[sl]).any(axis=(1, 2))] |= F.REPAIRED
    flags[~(flux > 0)] |= F.NONPOSITIVE
    if sky.n == 0:
        flags |= F.NO_SKY
    return {"flux": flux, "flux_err": err, "area": area, "raw_sum": raw, "flags": flags}


def surface_brightness(
    data: np.ndarray,
    x: float,
    y: float,
    radii,
    width: float,
    sky: SkyStats,
    clip_limit: float | None = None,
    gain: float | None = None,
    error: np.ndarray | None = None,
) -> dict:
    """Mean net surface brightness (pixel unit per pixel) in annuli centred on ``radii``.

    Pixels whose centre lies at ``radius - width/2 <= r < radius + width/2`` and whose
    value is finite and (when ``clip_limit`` is given) not below ``clip_limit`` are
    averaged; the sky mean is subtracted. Error: :func:`aperflow.photometry.flux_error` of
    the annulus sum (area = pixels used) divided by the pixel count.
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    r_in, r_out = np.clip(radii - width / 2, 0, None), radii + width / 2
    w, sl = aperture_weights(data.shape, x, y, [r_out.max()])
    cut = np.asarray(data, dtype=float)[sl]
    yy, xx = np.indices(cut.shape)
    rr = np.hypot(xx + sl[1].start - x, yy + sl[0].start - y)
    inside = (rr[None] >= r_in[:, None, None]) & (rr[None] < r_out[:, None, None])
    use = inside & np.isfinite(cut)[None]
    with np.errstate(invalid="ignore"):
        if clip_limit is not None:
            use &= ~(cut < clip_limit)[None]
    d = np.where(np.isfinite(cut), cut, 0.0)
    n = use.sum(axis=(1, 2))
    n_clipped = (inside & np.isfinite(cut)[None]).sum(axis=(1, 2)) - n
    sky_mean = sky.mean if sky.n > 0 else 0.0
    net_sum = (use * d).sum(axis=(1, 2)) - sky_mean * n
    var_sum = None
    if error is not None:
        e = np.nan_to_num(np.asarray(error, dtype=float)[sl])
        var_sum = (use * e**2).sum(axis=(1, 2))
    err = flux_error(n, sky.std if sky.n > 0 else 0.0, sky.n, var_sum, net_sum, gain)
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = np.where(n > 0, net_sum / np.maximum(n, 1), np.nan)
        sb_err = np.where(n > 0, err / np.maximum(n, 1), np.nan)
    flags = np.zeros(radii.size, dtype=np.int64)
    flags[(inside & ~np.isfinite(cut)[None]).any(axis=(1, 2))] |= F.MASKED
    n_expected = np.pi * (r_out**2 - r_in**2)
    flags[inside.sum(axis=(1, 2)) < 0.9 * n_expected] |= F.EDGE
    if sky.n == 0:
        flags |= F.NO_SKY
    return {
        "r_in": r_in,
        "r_out": r_out,
        "n_pix": n,
        "n_clipped": n_clipped,
        "sb": sb,
        "sb_err": sb_err,
        "flags": flags,
    }


# --------------------------------------------------------------- per-image tables


def _working_data(image: Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Data and error with the pixel-area rule applied (MJy/sr level-2 images)."""
    data = np.asarray(image.data, dtype=float)
    error = None if image.error is None else np.asarray(image.error, dtype=float)
    if image.area is not None and image.is_surface_brightness:
        data = data * image.area
        error = None if error is None else error * image.area
    return data, error


def _error_terms(image: Image, error, opts: dict):
    """The ERR array to use (``error_model: err``) or None, and the Poisson gain."""
    if opts["error_model"] == "err" and error is None:
        raise ProfileError(f"{image.path}: error_model 'err' but the image has no ERR array")
    use_err = error if opts["error_model"] == "err" else None
    return use_err, image.poisson_gain(default_gain=opts.get("gain"))


def _arcsec(radii: np.ndarray, image: Image) -> np.ndarray:
    scale = image.pixel_scale()
    return radii * scale if scale else np.full(radii.size, np.nan)


def _calibration_meta(image: Image) -> dict:
    cal = image.flux_calibration()
    return {
        "factor": float(cal.factor),
        "unit": cal.unit,
        "zeropoint": float(cal.zeropoint),
        "system": cal.system,
        "note": cal.note,
    }


def _locate(image: Image, data: np.ndarray, opts: dict, sky_r_in: float, sky_r_out: float):
    """Guess, sky around the guess, centroid on the sky-subtracted image, final sky."""
    gx, gy = target_guess(image, opts.get("target"))
    pre = sky_annulus(data, gx, gy, sky_r_in, sky_r_out, opts["sky_sigma"], opts["sky_maxiters"])
    cen = centroid_star(
        data,
        gx,
        gy,
        background=pre.mean,
        box_size=int(opts["centroid_box"]),
        method=opts["centroid"],
        max_shift=opts["max_shift"],
    )
    sky = sky_annulus(
        data, cen.x, cen.y, sky_r_in, sky_r_out, opts["sky_sigma"], opts["sky_maxiters"]
    )
    return cen, sky


def _core_counts(image: Image, x: float, y: float, core_radius: float) -> tuple[int, int]:
    core = _radius_map(image.shape, x, y) < core_radius
    return (
        int((core & ((image.flags & PIXEL_SATURATED) != 0)).sum()),
        int((core & ((image.flags & PIXEL_BAD) != 0)).sum()),
    )


def _image_meta(image: Image, cen: Centroid, sky: SkyStats, opts: dict, gain, **extra) -> dict:
    n_sat, n_bad = _core_counts(image, cen.x, cen.y, opts["core_radius"])
    m = image.meta
    return provenance(
        image=str(image.path),
        instrument=m.instrument,
        detector=m.detector,
        filter=m.filter,
        pupil=m.pupil,
        subarray=m.subarray,
        group=m.group,
        bunit=m.bunit,
        exptime=m.exptime,
        pixel_scale=image.pixel_scale(),
        coordinates="0-based pixels (numpy/photutils)",
        x=cen.x,
        y=cen.y,
        x_guess=cen.x_guess,
        y_guess=cen.y_guess,
        x_com=cen.x_com,
        y_com=cen.y_com,
        x_2dg=cen.x_2dg,
        y_2dg=cen.y_2dg,
        centroid_method=cen.method,
        centroid_flags=int(cen.flags),
        sky=sky.mean,
        sky_std=sky.std,
        n_sky=sky.n,
        sky_annulus=[sky.r_in, sky.r_out],
        n_core_saturated=n_sat,
        n_core_bad=n_bad,
        core_radius=float(opts["core_radius"]),
        error_model=opts["error_model"],
        gain=gain,
        calibration=_calibration_meta(image),
        **extra,
    )


def _unit(bunit: str):
    from astropy import units as u

    unit = u.Unit(bunit, parse_strict="silent") if bunit else None
    return None if isinstance(unit, u.UnrecognizedUnit) else unit


def ee_profile(image: Image, options: dict | None = None) -> Table:
    """Curve of growth of the standard star in one image (getcircEE1).

    Parameters
    ----------
    image : Image
        The opened image.
    options : dict
        The data set's merged ``standard`` options (see :data:`DEFAULTS`; ``target`` is the
        data set's target).

    Returns
    -------
    Table
        ``radius`` [pix], ``radius_arcsec``, ``area`` [pix], ``flux``, ``flux_err`` (net
        count rate in the image unit, summed over the aperture), ``flags``; the metadata
        hold the centroid, sky, core counts, repaired pixels and the flux calibration.
    """
    opts = standard_options(options)
    radii = np.sort(np.asarray(opts["radii"], dtype=float))
    rmax = float(radii.max())
    data, error = _working_data(image)
    r_in = rmax + float(opts["sky_gap"])
    cen, sky = _locate(image, data, opts, r_in, r_in + float(opts["sky_width"]))
    low = sky.mean - opts["low_sigma"] * sky.std if sky.n > 0 else None
    select = find_bad_pixels(data, cen.x, cen.y, opts["core_radius"], rmax, low, bad=image.mask)
    rep = repair_pixels(
        data,
        select,
        opts["repair"],
        int(opts["repair_box"]),
        int(opts["repair_degree"]),
        int(opts["median_size"]),
        center=(cen.x, cen.y),
    )
    use_err, gain = _error_terms(image, error, opts)
    cog = curve_of_growth(
        rep.data, cen.x, cen.y, radii, sky, gain, use_err, image.flags, rep.repaired
    )
    flags = cog["flags"] | cen.flags
    unit = _unit(image.meta.bunit) if not image.is_surface_brightness else None
    table = Table(
        {
            "radius": radii,
            "radius_arcsec": _arcsec(radii, image),
            "area": cog["area"],
            "flux": cog["flux"],
            "flux_err": cog["flux_err"],
            "flags": flags,
        },
        meta=_image_meta(
            image,
            cen,
            sky,
            opts,
            gain,
            repair_method=rep.method,
            n_repaired=len(rep.positions),
            repaired_x=[p[0] for p in rep.positions],
            repaired_y=[p[1] for p in rep.positions],
            n_repair_failed=int(rep.failed.sum()),
            radii=radii.tolist(),
        ),
    )
    table["radius"].unit = "pix"
    table["radius_arcsec"].unit = "arcsec"
    table["area"].unit = "pix"
    if unit is not None:
        table["flux"].unit = table["flux_err"].unit = unit
    return table


def sb_profile(image: Image, options: dict | None = None) -> Table:
    """Surface-brightness profile of the standard star in one image (getcircSB1).

    Returns
    -------
    Table
        ``radius`` (annulus centre) [pix], ``radius_arcsec``, ``r_in``, ``r_out``,
        ``n_pix`` (pixels averaged), ``n_clipped`` (left out as too low), ``sb``,
        ``sb_err`` (net, pixel unit per pixel), ``sb_arcsec2`` (per arcsec^2), ``flags``.
    """
    opts = standard_options(options)
    sbo = opts["sb"]
    radii = np.sort(np.asarray(sbo["radii"], dtype=float))
    width = float(sbo["width"])
    data, error = _working_data(image)
    r_in = radii.max() + width / 2 + float(sbo["sky_gap"])
    cen, sky = _locate(image, data, opts, r_in, r_in + float(sbo["sky_width"]))
    clip = sky.mean - sbo["clip_sigma"] * sky.std if (sbo["clip"] and sky.n > 0) else None
    use_err, gain = _error_terms(image, error, opts)
    prof = surface_brightness(data, cen.x, cen.y, radii, width, sky, clip, gain, use_err)
    scale = image.pixel_scale()
    table = Table(
        {
            "radius": radii,
            "radius_arcsec": _arcsec(radii, image),
            "r_in": prof["r_in"],
            "r_out": prof["r_out"],
            "n_pix": prof["n_pix"],
            "n_clipped": prof["n_clipped"],
            "sb": prof["sb"],
            "sb_err": prof["sb_err"],
            "sb_arcsec2": prof["sb"] / scale**2 if scale else np.full(radii.size, np.nan),
            "flags": prof["flags"] | cen.flags,
        },
        meta=_image_meta(
            image,
            cen,
            sky,
            opts,
            gain,
            clip=bool(sbo["clip"]),
            clip_limit=clip,
            width=width,
            sb_unit=f"{image.meta.bunit} per pixel" if image.meta.bunit else "per pixel",
        ),
    )
    for name in ("radius", "r_in", "r_out"):
        table[name].unit = "pix"
    table["radius_arcsec"].unit = "arcsec"
    return table


# -------------------------------------------------------------------- group means


def monotonic_flags(values: np.ndarray, decreasing: bool = False) -> np.ndarray:
    """True where a profile fails to grow: ``v[n] <= v[n-1]`` (or ``v[n] >= v[n-1]``
    with ``decreasing``), along the last axis; the first radius is never flagged.
    A NaN value is flagged too."""
    v = np.asarray(values, dtype=float)
    out = np.zeros(v.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        bad = v[..., 1:] >= v[..., :-1] if decreasing else v[..., 1:] <= v[..., :-1]
    out[..., 1:] = bad | ~np.isfinite(v[..., 1:])
    out[..., 0] = ~np.isfinite(v[..., 0])
    return out


#: Flags that leave a dither's value at a radius out of the mean profile: the star was not
#: found where expected (CENTROID, OFF_IMAGE), the value has no sky subtracted (NO_SKY),
#: and for the curve of growth an aperture cut by the image edge (EDGE: its sum is too
#: low; a surface brightness is a mean per pixel and stays fair on a partial annulus).
MEAN_EXCLUDE_FLAGS = {
    "ee": F.EDGE | F.OFF_IMAGE | F.CENTROID | F.NO_SKY,
    "sb": F.OFF_IMAGE | F.CENTROID | F.NO_SKY,
}


def mean_profile(
    tables: list[Table],
    value: str = "flux",
    error: str = "flux_err",
    decreasing: bool = False,
    names: list[str] | None = None,
    exclude_flags: int | None = None,
) -> Table:
    """Mean profile over dithers with per-dither monotonicity flags (meanflux1/meanSB1).

    At every radius, the dithers whose profile does not grow there (see
    :func:`monotonic_flags`) are left out of the inverse-variance mean
    (:func:`aperflow.aggregate.weighted_mean`); where all are flagged, the plain mean of
    all dithers is used with error ``sqrt(sum sigma_i^2) / N`` and ``n_good = 0``, and the
    row has the ``NONMONOTONIC`` flag. Values with any of ``exclude_flags`` (default
    :data:`MEAN_EXCLUDE_FLAGS` of the profile kind: a star at the image edge, a failed
    centroid, no sky) are left out of both means; where no dither is left the mean is NaN
    and the row carries the OR of all dithers' flags.

    Returns
    -------
    Table
        ``radius``, ``radius_arcsec`` (when present), per dither ``<value>_<k>``,
        ``<error>_<k>``, ``flags_<k>`` (input flags | NONMONOTONIC), then ``mean``,
        ``mean_err``, ``n_good``, ``plain_mean`` (bool), ``reduced_chi2`` and ``flags``.
    """
    if not tables:
        raise ProfileError("mean_profile: no tables to average")
    names = names or [str(t.meta.get("image", k)) for k, t in enumerate(tables)]
    radius = np.asarray(tables[0]["radius"], dtype=float)
    for t, name in zip(tables, names, strict=True):
        if len(t) != radius.size or not np.allclose(t["radius"], radius):
            raise ProfileError(f"{name}: radii {list(t['radius'])} differ from {list(radius)}")
    vals = np.stack([np.asarray(t[value], dtype=float) for t in tables])
    errs = np.stack([np.asarray(t[error], dtype=float) for t in tables])
    in_flags = np.stack([np.asarray(t["flags"], dtype=np.int64) for t in tables])
    flagged = monotonic_flags(vals, decreasing)
    if exclude_flags is None:
        exclude_flags = MEAN_EXCLUDE_FLAGS["sb" if decreasing else "ee"]
    unusable = (in_flags & int(exclude_flags)) != 0
    wm = weighted_mean(vals, errs, axis=0, mask=flagged | unusable)
    plain = wm.n == 0
    n = len(tables)
    n_usable = (~unusable).sum(axis=0)
    usable_vals = np.where(unusable, np.nan, vals)
    usable_errs = np.where(unusable, np.nan, errs)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN radii: NaN, said by n_good
        plain_mean = np.nanmean(usable_vals, axis=0) if n else np.full(radius.size, np.nan)
        plain_err = np.sqrt(np.nansum(usable_errs**2, axis=0)) / n_usable
        mean = np.where(plain, plain_mean, wm.mean)
        mean_err = np.where(plain, np.where(n_usable > 0, plain_err, np.nan), wm.error)
    out = Table({"radius": radius})
    out["radius"].unit = "pix"
    if "radius_arcsec" in tables[0].colnames:
        out["radius_arcsec"] = np.asarray(tables[0]["radius_arcsec"], dtype=float)
        out["radius_arcsec"].unit = "arcsec"
    row_flags = np.zeros(radius.size, dtype=np.int64)
    for k in range(n):
        out[f"{value}_{k}"] = vals[k]
        out[f"{error}_{k}"] = errs[k]
        out[f"flags_{k}"] = in_flags[k] | np.where(flagged[k], F.NONMONOTONIC, 0)
        used = (~flagged[k] | plain) & ~unusable[k]
        row_flags |= np.where(used | (n_usable == 0), in_flags[k], 0)
    out["mean"] = mean
    out["mean_err"] = mean_err
    out["n_good"] = wm.n
    out["plain_mean"] = plain
    out["reduced_chi2"] = wm.reduced_chi2
    out["flags"] = row_flags | np.where(plain, F.NONMONOTONIC, 0)
    unit = tables[0][value].unit
    if unit is not None:
        for name in ("mean", "mean_err", *[f"{c}_{k}" for k in range(n) for c in (value, error)]):
            out[name].unit = unit
    first = tables[0].meta
    keep = ("instrument", "detector", "filter", "pupil", "subarray", "group", "bunit",
            "pixel_scale", "calibration", "software")  # fmt: skip
    out.meta.update({k: first[k] for k in keep if k in first})
    out.meta["dithers"] = {str(k): name for k, name in enumerate(names)}
    out.meta["value"] = value
    out.meta["flag_rule"] = (
        "NONMONOTONIC where the value does not "
        + ("decrease" if decreasing else "increase")
        + " from the previous radius; flagged dithers are left out of the weighted mean"
    )
    out.meta["exclude_flags"] = F.decode(int(exclude_flags))
    return out


# ------------------------------------------------------------- workflow helpers


def failed_profile(kind: str, options: dict | None, path: str, message: str) -> Table:
    """The table written for an image that could not be measured: the configured radii,
    NaN values, the ``CENTROID`` flag (``OFF_IMAGE`` when the star is off the image) and
    the reason in ``meta['error']``; :func:`mean_profile_of_files` leaves it out."""
    opts = standard_options(options)
    radii = np.sort(np.asarray(opts["radii"] if kind == "ee" else opts["sb"]["radii"], float))
    nan = np.full(radii.size, np.nan)
    flag = F.OFF_IMAGE if "outside" in message else F.CENTROID
    cols = ("flux", "flux_err") if kind == "ee" else ("sb", "sb_err")
    table = Table({"radius": radii, "radius_arcsec": nan, cols[0]: nan, cols[1]: nan})
    table["flags"] = np.full(radii.size, flag, dtype=np.int64)
    table.meta.update(provenance(image=str(path), error=message))
    return table


def mean_profile_of_files(paths: list[str], kind: str = "ee", log=None) -> Table:
    """Read per-image ``ee``/``sb`` tables, leave out failed ones (logged), and return
    :func:`mean_profile` (EE: must increase; SB: must decrease with radius)."""
    from aperflow.datasets import image_id
    from aperflow.tables import read_table

    value, error = ("flux", "flux_err") if kind == "ee" else ("sb", "sb_err")
    tables, names, left_out = [], [], []
    for path in paths:
        t = read_table(path)
        if t.meta.get("error"):
            left_out.append(f"{path}: {t.meta['error']}")
            continue
        tables.append(t)
        names.append(image_id(t.meta.get("image", path)))
    for why in left_out:
        if log is not None:
            log.warning("left out of the mean: %s", why)
    if not tables:
        raise ProfileError(f"no measurable image among {len(paths)}: " + "; ".join(left_out))
    out = mean_profile(tables, value, error, decreasing=(kind == "sb"), names=names)
    out.meta["left_out"] = left_out
    exclude = MEAN_EXCLUDE_FLAGS[kind]
    radius = np.asarray(out["radius"])
    for k, name in enumerate(names):
        flags = np.asarray(out[f"flags_{k}"], dtype=np.int64)
        bad = (flags & exclude) != 0
        if bad.any() and log is not None:
            why = F.decode(int(np.bitwise_or.reduce(flags[bad] & exclude)))
            log.warning(
                "%s: left out of the mean at radii %s px (%s)",
                name, radius[bad].tolist(), ", ".join(why),
            )  # fmt: skip
    if log is not None:
        fallback = np.asarray(out["radius"])[np.asarray(out["plain_mean"])]
        log.info(
            "%s mean of %d dithers; plain-mean fallback at radii %s",
            kind.upper(), len(tables), fallback.tolist(),
        )  # fmt: skip
    return out
