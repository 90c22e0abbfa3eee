"""Aperture photometry: apertures, local sky, errors and flags.

Error model (DESIGN.md, one formula for every mode)
---------------------------------------------------
With an ERR array (which already holds source Poisson, sky and read noise)::

    sigma_F^2 = sum_i (w_i ERR_i)^2  +  A^2 sigma_sky^2 / n_sky

where ``w_i`` is the aperture's overlap fraction of pixel ``i`` over unmasked pixels,
``A = sum_i w_i`` the unmasked area, ``sigma_sky`` the sky scatter per pixel and
``n_sky`` the effective number of sky pixels (below). Without ERR, the DAOPHOT/IRAF form::

    sigma_F^2 = F / g  +  A sigma_sky^2  +  A^2 sigma_sky^2 / n_sky

with ``g`` the factor from pixel units to detected counts
(:meth:`aperflow.images.Image.poisson_gain`). ``A sigma_sky^2`` is never added on top of
ERR: the sky noise would count twice and errors come out ~25 % too large.

Engine (:func:`aperture_photometry`)
------------------------------------
Vectorised over sources, in chunks of ``chunk_size`` (bounded memory): the pixels of
every aperture are gathered at once into ``(n, s, s)`` stamps, and the overlap weight of
each pixel with a circle of radius ``r`` comes from a closed form evaluated on the stamp's
pixel corners (``method="exact"``: the signed area of the circle in the quadrant below
and left of each corner, ``G(u, v)``, whose four-corner difference is the pixel's overlap;
equal to photutils' exact overlap to ~1e-13). ``center`` takes whole pixels whose centre
is inside (``d < r``), ``subpixel`` the fraction of ``subpixels^2`` sub-pixel centres
inside, as photutils does.

The local sky of every source is a sigma-clipped statistic of the pixels of its annulus
``r_in <= d < r_out`` (pixel centres, as photutils' ``ApertureStats`` uses), with bad
pixels and the discs of neighbouring sources left out. All annuli are clipped together:
each row of annulus values is sorted once, the kept values are then a contiguous range
of that row, and every iteration only moves the range's ends (astropy's ``SigmaClip``
rule: keep ``median - k std <= v <= median + k std`` of the values kept so far, std with
ddof 0, until nothing changes or ``maxiters``). ``median``: the clipped median;
``mmm``: DAOPHOT's mode ``3 median - 2 mean`` of the clipped values; ``mean``.

The engine feeds :func:`flux_error` with the sky terms of the statistic actually used:
``sigma_sky`` is the clipped std divided by :func:`clipped_std_correction` (a converged
3-sigma clip keeps 98.5 % of a Gaussian's std), and ``n_sky`` is the effective number of
sky pixels ``n / f`` with ``f`` from :data:`SKY_VARIANCE_FACTOR` (pi/2 for a median: its
variance is pi/2 that of a mean). The tables' ``sky_std`` and ``n_sky`` columns keep the
plain clipped std and pixel count. On simulated fields this makes ``(F - F_true)/sigma_F``
unit-variance (the plain formula gives ~1.04 with a median sky). With exact overlap the
DAOPHOT form counts a partial pixel with weight ``w`` instead of ``w^2`` in ``F/g`` and
``A sigma^2``, so it is slightly conservative for small apertures (exact for ``center``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from aperflow import flags as F

__all__ = [
    "METHODS",
    "SKY_STATISTICS",
    "SKY_VARIANCE_FACTOR",
    "ApertureResult",
    "aperture_photometry",
    "aperture_weights",
    "clipped_std_correction",
    "clipped_stats_sorted",
    "flux_error",
    "image_pixels",
    "load_field_apcorr",
    "measure_from_options",
    "measure_image",
    "radii_labels",
    "radius_label",
    "resolve_annulus",
    "resolve_radii",
]

log = logging.getLogger("aperflow.photometry")

#: Pixel-overlap methods (photutils' names).
METHODS = ("exact", "center", "subpixel")
#: Local-sky statistics of the clipped annulus pixels.
SKY_STATISTICS = ("median", "mmm", "mean")

# Bits of the padded pixel-flag plane (the first three are aperflow.images' PIXEL_*).
_BAD, _SAT, _CR, _OFF = 1, 2, 4, 8
# Overlaps below this are round-off of the corner formula, not area.
_TINY = 1e-12


def flux_error(area, sky_std, n_sky, var_sum=None, flux=None, gain=None):
    """One-sigma error of a sky-subtracted aperture flux (see the module docstring).

    Parameters
    ----------
    area : array_like
        Unmasked aperture area in pixels (sum of overlap fractions).
    sky_std : array_like
        Sky scatter per pixel (same unit as the pixels); callers pass the clipped std
        de-biased with :func:`clipped_std_correction`.
    n_sky : array_like
        *Effective* number of sky pixels behind the sky level: the unmasked pixels used,
        divided by the statistic's variance factor :data:`SKY_VARIANCE_FACTOR` (1 for a
        mean, pi/2 for a median). Every caller does this division; with the raw count a
        median sky's error would be 25 % too small.
    var_sum : array_like, optional
        ``sum (w_i ERR_i)^2`` over the aperture; when given, the ERR form is used.
    flux : array_like, optional
        Net flux (pixel units), for the Poisson term of the DAOPHOT form.
    gain : float, optional
        Pixel units -> counts, for the DAOPHOT form; without it the Poisson term is 0.

    Returns
    -------
    ndarray
        The flux error in pixel units.
    """
    area = np.asarray(area, dtype=float)
    sky_var = np.asarray(sky_std, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        sky_mean_var = np.where(np.asarray(n_sky) > 0, area**2 * sky_var / np.asarray(n_sky), 0.0)
    sky_mean_var = np.nan_to_num(sky_mean_var, nan=0.0)
    if var_sum is not None:
        return np.sqrt(np.asarray(var_sum, dtype=float) + sky_mean_var)
    poisson = 0.0
    if flux is not None and gain:
        poisson = np.clip(np.asarray(flux, dtype=float), 0.0, None) / gain
    return np.sqrt(poisson + area * sky_var + sky_mean_var)


# ------------------------------------------------------------------------- geometry


def _corner_terms(edges: np.ndarray, r: float):
    """Per-edge pieces of the quadrant area ``Q(a, b)`` of a circle of radius ``r``.

    For ``a, b`` in ``[0, r]``, ``Q(a, b)`` is the area of the circle inside
    ``[0, a] x [0, b]`` (centre at the origin)::

        Q = a b                               if a <= h(b)
        Q = b h(b) + S(a) - S(h(b))           otherwise

    with ``h(b) = sqrt(r^2 - b^2)`` and ``S(t) = (t h(t) + r^2 asin(t / r)) / 2`` the
    integral of ``h``. Every piece depends on one edge only, so the 2-D grid of ``Q`` is
    a broadcast of 1-D terms.
    """
    a = np.minimum(np.abs(edges), r)
    h = np.sqrt(np.maximum(r * r - a * a, 0.0))
    s_a = 0.5 * (a * h + r * r * np.arcsin(a / r))
    s_h = 0.5 * (h * a + r * r * np.arcsin(h / r))  # S(h(a)), since h(h(a)) = a
    return a, h, s_a, s_h, np.sign(edges)


def _exact_weights(fx: np.ndarray, fy: np.ndarray, half: int, r: float) -> np.ndarray:
    """Exact overlap of circles (radius ``r``, centres ``fx, fy`` from the central pixel's
    centre) with the pixels of ``(2 half + 1)^2`` stamps; shape ``(n, s, s)``, rows = y."""
    edges = np.arange(-half, half + 2) - 0.5
    ax, _, sx, _, sgx = _corner_terms(edges[None, :] - fx[:, None], r)
    ay, hy, _, shy, sgy = _corner_terms(edges[None, :] - fy[:, None], r)
    big_a, s_big_a = ax[:, None, :], sx[:, None, :]
    b, hb, s_hb = ay[:, :, None], hy[:, :, None], shy[:, :, None]
    q = np.where(big_a <= hb, big_a * b, b * hb + s_big_a - s_hb)
    g = q * (sgx[:, None, :] * sgy[:, :, None])  # signed area from the centre to a corner
    w = g[:, 1:, 1:] - g[:, :-1, 1:] - g[:, 1:, :-1] + g[:, :-1, :-1]
    w = np.clip(w, 0.0, 1.0)
    w[w < _TINY] = 0.0
    return w


def _sampled_weights(fx, fy, half: int, r: float, subpixels: int) -> np.ndarray:
    """Fraction of ``subpixels^2`` sub-pixel centres with ``d < r`` (``center``: 1)."""
    k = int(subpixels)
    sub = (np.arange(k) + 0.5) / k - 0.5
    pos = np.arange(-half, half + 1)[:, None] + sub[None, :]  # (s, k)
    dx2 = (pos[None] - fx[:, None, None]) ** 2  # (n, s, k)
    dy2 = (pos[None] - fy[:, None, None]) ** 2
    inside = dy2[:, :, None, :, None] + dx2[:, None, :, None, :] < r * r
    return inside.mean(axis=(3, 4))


def aperture_weights(fx, fy, radius: float, method: str = "exact", subpixels: int = 5):
    """Overlap weights of circular apertures with the pixels of square stamps.

    Parameters
    ----------
    fx, fy : array_like
        Offsets (pixels, in ``[-0.5, 0.5]``) of the aperture centres from the centre of
        each stamp's central pixel.
    radius : float
        Aperture radius in pixels.
    method : {"exact", "center", "subpixel"}
        As in photutils: exact area, pixel centre inside (``d < r``), or the fraction of
        ``subpixels x subpixels`` sub-pixel centres inside.
    subpixels : int
        Sub-sampling for ``subpixel``.

    Returns
    -------
    ndarray
        Weights of shape ``(n, 2 h + 1, 2 h + 1)`` with ``h = ceil(radius)``; rows are y.
    """
    if method not in METHODS:
        raise ValueError(f"aperture method {method!r} is not one of {METHODS}")
    if not radius > 0:
        raise ValueError(f"aperture radius must be positive, got {radius}")
    fx = np.atleast_1d(np.asarray(fx, dtype=float))
    fy = np.atleast_1d(np.asarray(fy, dtype=float))
    half = int(np.ceil(radius))
    if method == "exact":
        return _exact_weights(fx, fy, half, float(radius))
    return _sampled_weights(fx, fy, half, float(radius), 1 if method == "center" else subpixels)


# ------------------------------------------------------------------------------ sky


def clipped_stats_sorted(values: np.ndarray, n: np.ndarray, sigma: float, maxiters: int):
    """Sigma-clipped mean, median, std and count of every row of a row-sorted array.

    Parameters
    ----------
    values : ndarray, shape (m, k)
        Each row sorted ascending, its ``n`` valid values first (pad with +inf).
    n : ndarray of int, shape (m,)
        Number of valid values per row.
    sigma : float
        Clipping threshold in standard deviations (both sides).
    maxiters : int
        Maximum number of clipping iterations (astropy's ``SigmaClip`` rule, module doc).

    Returns
    -------
    mean, median, std : ndarray
        Statistics of the kept values (std with ddof 0); NaN where none is kept.
    count : ndarray of int
        Number of values kept.
    """
    m_rows, k = values.shape
    rows = np.arange(m_rows)
    n = np.asarray(n, dtype=np.int64)
    lo = np.zeros(m_rows, dtype=np.int64)
    hi = n.copy()
    values = np.asarray(values, dtype=float)  # one conversion; comparisons stay float64
    # Cumulative sums about a per-row reference keep the variance free of cancellation.
    # Only prefixes up to n are ever read, so the +inf padding needs no masking.
    ref = values[rows, np.maximum((n - 1) // 2, 0)]
    ref[n == 0] = 0.0
    centred = values - ref[:, None]
    c1 = np.empty((m_rows, k + 1))
    c2 = np.empty((m_rows, k + 1))
    c1[:, 0] = c2[:, 0] = 0.0
    with np.errstate(invalid="ignore"):
        np.cumsum(centred, axis=1, out=c1[:, 1:])
        np.cumsum(np.square(centred, out=centred), axis=1, out=c2[:, 1:])

    def stats(lo, hi):
        count = hi - lo
        safe = np.maximum(count, 1)
        i1 = np.minimum(lo + (safe - 1) // 2, values.shape[1] - 1)
        i2 = np.minimum(lo + safe // 2, values.shape[1] - 1)
        median = 0.5 * (values[rows, i1] + values[rows, i2])
        s1 = (c1[rows, hi] - c1[rows, lo]) / safe
        var = (c2[rows, hi] - c2[rows, lo]) / safe - s1 * s1
        std = np.sqrt(np.maximum(var, 0.0))
        mean = s1 + ref
        empty = count == 0
        for arr in (median, std, mean):
            arr[empty] = np.nan
        return mean, median, std, count

    for _ in range(int(maxiters)):
        _, median, std, count = stats(lo, hi)
        with np.errstate(invalid="ignore"):
            lower = median - sigma * std
            upper = median + sigma * std
            new_lo = np.maximum(lo, (values < lower[:, None]).sum(axis=1))
            new_hi = np.minimum(hi, (values <= upper[:, None]).sum(axis=1))
        new_hi = np.maximum(new_hi, new_lo)
        live = count > 0
        new_lo = np.where(live, new_lo, lo)
        new_hi = np.where(live, new_hi, hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    return stats(lo, hi)


#: Variance of the sky statistic in units of ``sigma^2 / n`` for Gaussian noise: the mean
#: 1, the median pi/2 (its asymptotic efficiency), DAOPHOT's ``3 median - 2 mean``
#: ``9 pi/2 + 4 - 12 = 9 pi/2 - 8`` (cov(median, mean) = sigma^2 / n).
SKY_VARIANCE_FACTOR = {"mean": 1.0, "median": np.pi / 2.0, "mmm": 9.0 * np.pi / 2.0 - 8.0}


def clipped_std_correction(sigma: float) -> float:
    """Factor by which a converged ``sigma``-clipped std underestimates a Gaussian's.

    Clipping at ``median +- k s`` keeps a normal distribution truncated at ``t = k s /
    sigma``, whose std is ``sigma sqrt(v(t))`` with ``v(t) = 1 - 2 t phi(t) / (2 Phi(t) -
    1)``; at convergence ``t = k sqrt(v(t))`` (solved by iteration). 0.985 for k = 3.
    """
    k = float(sigma)
    if not np.isfinite(k) or k <= 0:
        return 1.0
    t = k
    for _ in range(100):
        # phi(t) and 2 Phi(t) - 1 from math: importing scipy.stats costs ~0.6 s per job
        pdf = math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
        v = 1.0 - 2.0 * t * pdf / math.erf(t / math.sqrt(2.0))
        t_new = k * np.sqrt(max(v, 1e-12))
        if abs(t_new - t) < 1e-12:
            break
        t = t_new
    return float(np.sqrt(max(v, 1e-12)))


def _sky_levels(mean, median, statistic: str):
    if statistic == "median":
        return median
    if statistic == "mmm":
        return 3.0 * median - 2.0 * mean  # DAOPHOT's mode estimate
    return mean


# --------------------------------------------------------------------------- engine


@dataclass
class ApertureResult:
    """Photometry of ``n`` sources at ``m`` radii, in the image's pixel units.

    Attributes
    ----------
    radii : ndarray, shape (m,)
        Aperture radii in pixels.
    raw_sum : ndarray, shape (n, m)
        ``sum w_i data_i`` over unmasked, on-image pixels.
    area : ndarray, shape (n, m)
        ``sum w_i`` over the same pixels (pixels actually used).
    var_sum : ndarray or None, shape (n, m)
        ``sum (w_i ERR_i)^2`` (None without an error array).
    flux, flux_err : ndarray, shape (n, m)
        Net flux ``raw_sum - sky * area`` and its error (:func:`flux_error`).
    flags : ndarray of int, shape (n, m)
        :mod:`aperflow.flags` bits per radius.
    sky : ndarray, shape (n,)
        Sky level per pixel that was subtracted (NaN where there was none).
    sky_mean, sky_median, sky_std : ndarray, shape (n,)
        Clipped statistics of the annulus pixels.
    n_sky : ndarray of int, shape (n,)
        Unmasked annulus pixels kept after clipping.
    annulus : tuple of float or None
        Inner and outer sky radius (pixels).
    """

    radii: np.ndarray
    raw_sum: np.ndarray
    area: np.ndarray
    var_sum: np.ndarray | None
    flux: np.ndarray
    flux_err: np.ndarray
    flags: np.ndarray
    sky: np.ndarray
    sky_mean: np.ndarray
    sky_median: np.ndarray
    sky_std: np.ndarray
    n_sky: np.ndarray
    annulus: tuple[float, float] | None


def _disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    h = int(np.floor(radius))
    oy, ox = np.mgrid[-h : h + 1, -h : h + 1]
    keep = ox * ox + oy * oy <= radius * radius
    return oy[keep], ox[keep]


class _Planes:
    """The image planes, read by flat-index gathering without copying the image: stamps
    inside the image use one offset table; stamps crossing the border are clipped and
    their off-image pixels get ``_OFF``. Bad pixels (flagged, masked, non-finite value or
    error) get ``_BAD`` as they are gathered."""

    def __init__(self, data, error, pixel_flags, mask):
        self.shape = data.shape
        self.data = np.ravel(data)
        self.error = None if error is None else np.ravel(error)
        self.flags = None if pixel_flags is None else np.ravel(pixel_flags)
        self.mask = None if mask is None else np.ravel(np.asarray(mask, dtype=bool))
        self.cover = None
        self.disc_radius = 0.0

    def index(self, iy, ix, oy, ox):
        """Flat indices ``(n, k)`` of the pixels ``(iy + oy, ix + ox)`` (clipped into the
        image) and the off-image mask (None when every pixel is inside)."""
        ny, nx = self.shape
        hy, hx = int(np.abs(oy).max()), int(np.abs(ox).max())
        inside = (iy >= hy) & (iy < ny - hy) & (ix >= hx) & (ix < nx - hx)
        if inside.all():
            return (iy * nx + ix)[:, None] + (oy * nx + ox)[None, :], None
        yy = iy[:, None] + oy[None, :]
        xx = ix[:, None] + ox[None, :]
        off = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
        return np.clip(yy, 0, ny - 1) * nx + np.clip(xx, 0, nx - 1), off

    def gather(self, idx, off, error: bool = True):
        """Values, errors (None without an error plane or when not asked for) and pixel
        bits at flat indices ``idx``."""
        values = self.data[idx]
        bad = ~np.isfinite(values)
        err = None
        if self.error is not None and error:
            err = self.error[idx]
            bad |= ~np.isfinite(err)
        if self.mask is not None:
            bad |= self.mask[idx]
        if self.flags is not None:
            bits = self.flags[idx] & np.uint8(_BAD | _SAT | _CR)
        else:
            bits = np.zeros(idx.shape, np.uint8)
        bits |= bad.view(np.uint8) * np.uint8(_BAD)
        if off is not None:
            bits |= off.view(np.uint8) * np.uint8(_OFF)
        return values, err, bits

    def add_discs(self, iy, ix, radius: float, inner: float):
        """Mark the pixels covered by source discs of ``radius`` (``cover``: 0, 1, or 2 for
        two or more discs). When the discs cannot reach a source's own annulus (``radius
        < inner`` - 1 px) a union is enough: one fancy assignment; otherwise the discs are
        counted (bincount), so that a source's own disc is not taken for a neighbour's."""
        oy, ox = _disc_offsets(radius)
        idx, off = self.index(iy, ix, oy, ox)
        flat = idx[~off] if off is not None else idx.ravel()
        if radius < inner - 1.0:
            self.cover = np.zeros(self.data.size, np.uint8)
            self.cover[flat] = 1
            self.disc_radius = 0.0  # no own-disc pixel lies in the annulus
        else:
            counts = np.bincount(flat, minlength=self.data.size)
            self.cover = np.minimum(counts, 2).astype(np.uint8)
            self.disc_radius = radius


def _prepare_positions(x, y, shape, reach):
    """Nearest pixels and sub-pixel offsets; positions so far off the image that no
    aperture or annulus pixel is on it are reported in ``far`` (results NaN, OFF_IMAGE)."""
    ny, nx = shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    xs, ys = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
    ix = np.floor(xs + 0.5).astype(np.int64)
    iy = np.floor(ys + 0.5).astype(np.int64)
    far = ~finite | (ix < -reach) | (iy < -reach) | (ix > nx - 1 + reach) | (iy > ny - 1 + reach)
    off_image = ~finite | (xs < -0.5) | (ys < -0.5) | (xs >= nx - 0.5) | (ys >= ny - 0.5)
    ix[far], iy[far] = 0, 0
    return ix, iy, xs - ix, ys - iy, far, off_image


def aperture_photometry(
    data,
    x,
    y,
    radii,
    *,
    error=None,
    pixel_flags=None,
    mask=None,
    annulus: tuple[float, float] | None = (10.0, 15.0),
    sky_statistic: str = "median",
    sky_sigma: float = 3.0,
    sky_maxiters: int = 5,
    min_sky_pixels: int = 10,
    neighbour_radius: float | None = None,
    method: str = "exact",
    subpixels: int = 5,
    gain: float | None = None,
    sky_std_default: float | None = None,
    chunk_size: int = 4096,
    workers: int = 1,
) -> ApertureResult:
    """Multi-radius circular aperture photometry with a local sky, for all sources at once.

    Parameters
    ----------
    data : ndarray
        The image (already multiplied by the pixel-area map where that applies).
    x, y : array_like
        Source positions in 0-based pixels.
    radii : array_like of float
        Aperture radii in pixels.
    error : ndarray, optional
        Per-pixel 1-sigma error (ERR); selects the ERR form of :func:`flux_error`.
    pixel_flags : ndarray of uint8, optional
        aperflow pixel flags (:data:`aperflow.images.PIXEL_BAD`, ``PIXEL_SATURATED``,
        ``PIXEL_COSMIC_RAY``); bad pixels are left out of sums and sky.
    mask : ndarray of bool, optional
        Extra pixels to leave out (True = bad).
    annulus : (float, float) or None
        Inner and outer radius of the sky annulus in pixels; None: no local sky (the
        flux is not sky-subtracted, e.g. for sky-subtracted drizzled images).
    sky_statistic : {"median", "mmm", "mean"}
        Statistic of the clipped annulus pixels used as the sky level.
    sky_sigma, sky_maxiters : float, int
        Sigma clipping of the annulus pixels.
    min_sky_pixels : int
        Fewer kept annulus pixels raise ``SKY_FEW_PIXELS`` (none: ``NO_SKY``).
    neighbour_radius : float, optional
        Pixels within this radius (px) of any *other* source are left out of the annuli.
    method : {"exact", "center", "subpixel"}
        Pixel-overlap method (:func:`aperture_weights`).
    subpixels : int
        Sub-sampling for ``subpixel``.
    gain : float, optional
        Pixel units -> counts for the Poisson term of the DAOPHOT form (no ERR).
    sky_std_default : float, optional
        Sky RMS per pixel used for the errors when there is no annulus.
    chunk_size : int
        Sources per vectorised batch (memory ~ ``chunk_size * 4 (r_out + 1)^2 * 8`` B).
    workers : int
        Threads measuring chunks in parallel (numpy releases the GIL in the heavy steps).

    Returns
    -------
    ApertureResult
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"aperture photometry needs a 2-D image, got shape {data.shape}")
    if method not in METHODS:
        raise ValueError(f"aperture method {method!r} is not one of {METHODS}")
    if sky_statistic not in SKY_STATISTICS:
        raise ValueError(f"sky statistic {sky_statistic!r} is not one of {SKY_STATISTICS}")
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    if radii.size == 0 or not np.all(radii > 0):
        raise ValueError(f"aperture radii must be positive, got {radii.tolist()}")
    if annulus is not None:
        r_in, r_out = float(annulus[0]), float(annulus[1])
        if not 0 <= r_in < r_out:
            raise ValueError(f"sky annulus must have 0 <= inner < outer, got {annulus}")
        annulus = (r_in, r_out)
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    n = x.size
    reach = int(np.ceil(max(radii.max(), annulus[1] if annulus else 0.0))) + 1
    planes = _Planes(data, error, pixel_flags, mask)
    ix, iy, fx, fy, far, off_image = _prepare_positions(x, y, data.shape, reach)
    if annulus is not None and neighbour_radius and n > 1:
        planes.add_discs(iy[~far], ix[~far], float(neighbour_radius), annulus[0])
    m = radii.size
    out = {
        "raw_sum": np.full((n, m), np.nan),
        "area": np.zeros((n, m)),
        "var_sum": np.full((n, m), np.nan) if error is not None else None,
        "flags": np.zeros((n, m), dtype=np.int64),
        "sky_mean": np.full(n, np.nan),
        "sky_median": np.full(n, np.nan),
        "sky_std": np.full(n, np.nan),
        "n_sky": np.zeros(n, dtype=np.int64),
    }
    step = max(int(chunk_size), 1)
    if workers > 1:  # several chunks per thread, so that no thread idles at the end
        step = min(step, max(512, -(-n // (4 * int(workers)))))
    slices = [slice(a, min(a + step, n)) for a in range(0, n, step)]

    def run(sl):
        _measure_chunk(
            planes,
            ix[sl],
            iy[sl],
            fx[sl],
            fy[sl],
            radii,
            method,
            subpixels,
            annulus,
            sky_sigma,
            sky_maxiters,
            out,
            sl,
        )

    if workers > 1 and len(slices) > 1:
        # numpy releases the GIL in the sorts, cumsums, gathers and ufuncs of a chunk
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=int(workers)) as pool:
            list(pool.map(run, slices))
    else:
        for sl in slices:
            run(sl)
    return _finish(
        out,
        radii,
        annulus,
        far,
        off_image,
        sky_statistic,
        sky_sigma,
        min_sky_pixels,
        gain,
        sky_std_default,
    )


def _measure_chunk(
    planes, ix, iy, fx, fy, radii, method, subpixels, annulus, sigma, maxiters, out, sl
):
    half = int(np.ceil(radii.max()))
    s = 2 * half + 1
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    idx, off = planes.index(iy, ix, oy.ravel(), ox.ravel())
    values, err, pbits = planes.gather(idx, off)
    pbits = pbits.reshape(-1, s, s)
    good = (pbits & (_BAD | _OFF)) == 0
    values = np.where(good, values.reshape(-1, s, s), 0.0)
    var = None
    if err is not None:
        var = np.where(good, np.square(err.reshape(-1, s, s), dtype=float), 0.0)
    for j, r in enumerate(radii):
        w = aperture_weights(fx, fy, r, method, subpixels)
        h = (w.shape[1] - 1) // 2
        cut = (slice(None), slice(half - h, half + h + 1), slice(half - h, half + h + 1))
        wg = w * good[cut]
        out["raw_sum"][sl, j] = np.einsum("nij,nij->n", wg, values[cut])
        out["area"][sl, j] = wg.sum(axis=(1, 2))
        if var is not None:
            out["var_sum"][sl, j] = np.einsum("nij,nij->n", wg * wg, var[cut])
        # OR of the pixel bits the aperture touches, mapped to measurement flags
        touched = np.bitwise_or.reduce(np.where(w > 0, pbits[cut], 0), axis=(1, 2))
        bits = np.zeros(len(ix), dtype=np.int64)
        for pix_bit, flag in (
            (_BAD, F.MASKED),
            (_SAT, F.SATURATED),
            (_CR, F.COSMIC_RAY),
            (_OFF, F.EDGE),
        ):
            bits |= np.where(touched & pix_bit, flag, 0)
        out["flags"][sl, j] = bits
    if annulus is not None:
        _chunk_sky(planes, ix, iy, fx, fy, annulus, sigma, maxiters, out, sl)


def _chunk_sky(planes, ix, iy, fx, fy, annulus, sigma, maxiters, out, sl):
    r_in, r_out = annulus
    h = int(np.ceil(r_out)) + 1
    oy, ox = np.mgrid[-h : h + 1, -h : h + 1]
    d = np.hypot(ox, oy)
    # Every pixel whose centre can fall in the annulus for some sub-pixel offset.
    ring = (d >= r_in - 0.7072) & (d < r_out + 0.7072)
    oy, ox = oy[ring], ox[ring]
    idx, off = planes.index(iy, ix, oy, ox)
    values, _, pbits = planes.gather(idx, off, error=False)
    d2 = np.square(ox[None, :] - fx[:, None]) + np.square(oy[None, :] - fy[:, None])
    use = (d2 >= r_in * r_in) & (d2 < r_out * r_out)
    use &= (pbits & (_BAD | _OFF)) == 0
    if planes.cover is not None:
        own = (ox * ox + oy * oy <= planes.disc_radius**2).astype(np.uint8)
        use &= planes.cover[idx] <= (own[None, :] if own.any() else 0)
    values = np.where(use, values, np.inf)
    values.sort(axis=1)
    mean, median, std, count = clipped_stats_sorted(values, use.sum(axis=1), sigma, maxiters)
    out["sky_mean"][sl], out["sky_median"][sl] = mean, median
    out["sky_std"][sl], out["n_sky"][sl] = std, count


def _finish(
    out, radii, annulus, far, off_image, statistic, sky_sigma, min_sky, gain, sky_std_default
):
    flags = out["flags"]
    n_sky = out["n_sky"]
    if annulus is not None:
        sky = _sky_levels(out["sky_mean"], out["sky_median"], statistic)
        no_sky = n_sky == 0
        flags |= np.where(no_sky, F.NO_SKY | F.SKY_FEW_PIXELS, 0)[:, None]
        flags |= np.where(~no_sky & (n_sky < min_sky), F.SKY_FEW_PIXELS, 0)[:, None]
        sky_std = out["sky_std"]
    else:
        sky = np.full(n_sky.shape, np.nan)
        std = np.nan if sky_std_default is None else float(sky_std_default)
        sky_std = np.full(n_sky.shape, std)
    area = out["area"]
    flux = out["raw_sum"] - np.nan_to_num(sky)[:, None] * area
    # Honest sky terms: the scatter de-biased for the clipping, and the effective number
    # of sky pixels of the statistic used (a median is noisier than a mean).
    noise = sky_std / (clipped_std_correction(sky_sigma) if annulus is not None else 1.0)
    n_eff = n_sky / SKY_VARIANCE_FACTOR[statistic]
    err = flux_error(area, noise[:, None], n_eff[:, None], out["var_sum"], flux, gain)
    with np.errstate(invalid="ignore"):
        flags |= np.where(~(flux > 0), F.NONPOSITIVE, 0)
    flags |= np.where(off_image, F.OFF_IMAGE, 0)[:, None]
    if far.any():
        for key in ("raw_sum", "sky_mean", "sky_median", "sky_std"):
            out[key][far] = np.nan
        flux[far], err[far], sky[far] = np.nan, np.nan, np.nan
        area[far] = 0.0
        flags[far] |= F.EDGE | F.OFF_IMAGE
    return ApertureResult(
        radii=radii,
        raw_sum=out["raw_sum"],
        area=area,
        var_sum=out["var_sum"],
        flux=flux,
        flux_err=err,
        flags=flags,
        sky=sky,
        sky_mean=out["sky_mean"],
        sky_median=out["sky_median"],
        sky_std=sky_std,
        n_sky=n_sky,
        annulus=annulus,
    )


# ---------------------------------------------------------------- radii and tables


def radius_label(radius_px: float) -> str:
    """Column suffix of a radius in pixels: ``r3.5``, ``r3``, ``r9.65`` (2 decimals)."""
    return f"r{round(float(radius_px), 2):g}"


def radii_labels(meta: Mapping, colnames: Iterable[str]) -> list[str]:
    """Radius labels (:func:`radius_label`) of a photometry table, in its order.

    Its ``radii_labels`` metadata, else the suffixes of its ``flux_err_r*`` columns; none
    for a failed image's table, which has no photometry columns.
    """
    labels = meta.get("radii_labels")
    if labels:
        return list(labels)
    return [c.removeprefix("flux_err_") for c in colnames if c.startswith("flux_err_r")]


def resolve_radii(
    radii=None,
    radii_arcsec=None,
    radii_fwhm=None,
    *,
    fwhm: float | None = None,
    pixel_scale: float | None = None,
    path: str = "",
) -> tuple[np.ndarray, list[str], list[str]]:
    """Aperture radii in pixels from radii given in pixels, arcsec and FWHM multiples.

    Parameters
    ----------
    radii, radii_arcsec, radii_fwhm : list of float, optional
        Radii in pixels, in arcsec (needs ``pixel_scale``) and in units of the FWHM
        (needs ``fwhm``; seed 003's ``aperture_diameter_seeing`` halved).
    fwhm : float, optional
        PSF FWHM in pixels.
    pixel_scale : float, optional
        Arcsec per pixel.
    path : str
        Image name for messages.

    Returns
    -------
    radii_px : ndarray
        Radii in pixels, in the order pixels, arcsec, FWHM.
    labels : list of str
        Column suffixes (:func:`radius_label`).
    origins : list of str
        How each radius was given (``"3.5 px"``, ``"0.2 arcsec"``, ``"1.5 FWHM"``).

    Raises
    ------
    ValueError
        No radius, a non-positive radius, a conversion without its scale, or two radii
        with the same label.
    """
    where = f"{path}: " if path else ""
    out, origins = [], []
    for r in radii or []:
        out.append(float(r))
        origins.append(f"{r:g} px")
    if radii_arcsec:
        if not pixel_scale:
            raise ValueError(f"{where}radii_arcsec needs a pixel scale; the image has no WCS")
        for r in radii_arcsec:
            out.append(float(r) / pixel_scale)
            origins.append(f"{r:g} arcsec")
    if radii_fwhm:
        if not fwhm:
            raise ValueError(f"{where}radii_fwhm needs a FWHM; none is known for this image")
        for r in radii_fwhm:
            out.append(float(r) * fwhm)
            origins.append(f"{r:g} FWHM")
    if not out:
        raise ValueError(f"{where}no aperture radius configured (radii, radii_arcsec, radii_fwhm)")
    radii_px = np.asarray(out)
    if not np.all(radii_px > 0):
        raise ValueError(f"{where}aperture radii must be positive, got {radii_px.tolist()}")
    labels = [radius_label(r) for r in radii_px]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}two aperture radii give the same column name: {labels}")
    return radii_px, labels, origins


# ------------------------------------------------------------------ one image -> table


def image_pixels(image, mask_zeros: bool = False):
    """Pixels ready for photometry: data and error with the pixel-area rule applied.

    JWST level-2 surface brightnesses (MJy/sr) are multiplied by the relative pixel area
    (``AREA``) so that sums are proportional to flux, as seed 000 does; other images are
    used as they are.

    Parameters
    ----------
    image : aperflow.images.Image
    mask_zeros : bool
        Treat pixels that are exactly 0 as bad: resampled products (``i2d``, ``drz``)
        fill the area without coverage with 0, not NaN (seed 000 masks them too).

    Returns
    -------
    data : ndarray
    error : ndarray or None
    pixel_flags : ndarray of uint8
        The image's pixel flags, with zeros marked bad when ``mask_zeros``.
    """
    data, error = image.data, image.error
    if image.area is not None and image.is_surface_brightness:
        data = data * image.area
        error = None if error is None else error * image.area
    flags = image.flags
    if mask_zeros:
        zero = data == 0
        if zero.any():
            flags = flags | np.where(zero, _BAD, 0).astype(np.uint8)
            data = np.where(zero, np.nan, data)
    return data, error, flags


def resolve_annulus(
    annulus=None,
    annulus_fwhm=None,
    *,
    fwhm: float | None = None,
    apcorr=None,
    path: str = "",
) -> tuple[tuple[float, float], str]:
    """The sky annulus in pixels: from the config (pixels or FWHM multiples), else the
    aperture-correction table's ``skyin, skyout``, else 10-15 px (seed 000).

    A configured annulus that differs from the apcorr table's is used, with a warning:
    CRDS-style corrections include the share of the PSF wings that falls in *their*
    annulus, so the total fluxes are then biased by that share's difference.
    """
    where = f"{path}: " if path else ""
    if annulus is not None:
        chosen, how = (float(annulus[0]), float(annulus[1])), "config (px)"
    elif annulus_fwhm is not None:
        if not fwhm:
            raise ValueError(f"{where}annulus_fwhm needs a FWHM; none is known")
        chosen = (float(annulus_fwhm[0]) * fwhm, float(annulus_fwhm[1]) * fwhm)
        how = f"config ({annulus_fwhm[0]:g}-{annulus_fwhm[1]:g} FWHM)"
    elif apcorr is not None:
        return (float(apcorr.skyin), float(apcorr.skyout)), f"apcorr table {apcorr.source}"
    else:
        return (10.0, 15.0), "default (seed 000)"
    if apcorr is not None and not np.allclose(chosen, (apcorr.skyin, apcorr.skyout)):
        log.warning(
            "%ssky annulus %.3g-%.3g px differs from the apcorr table's %.3g-%.3g px: the "
            "CRDS corrections include the PSF-wing share of their own annulus, so total "
            "fluxes are biased by the difference",
            where,
            *chosen,
            apcorr.skyin,
            apcorr.skyout,
        )
    return chosen, how


def _check_annulus_outside(annulus, note, radii_px, origins, path) -> None:
    """Refuse a sky annulus that starts inside the largest aperture: its sky would hold the
    star's own light. Radii and annulus given in the same unit are already refused when
    the config is read (:mod:`aperflow.validation`); this catches mixed units (arcsec,
    FWHM, the apcorr table's ``skyin``), known only per image."""
    k = int(np.argmax(radii_px))
    if annulus[0] > radii_px[k]:
        return
    raise ValueError(
        f"{path}: sky annulus {annulus[0]:.3g}-{annulus[1]:.3g} px ({note}) starts inside "
        f"the largest aperture radius {radii_px[k]:.3g} px ({origins[k]}): the sky would "
        "include the star's own light; set field.photometry.annulus (or annulus_fwhm) "
        "beyond the largest radius, or use smaller radii"
    )


def _unit(name: str):
    from astropy import units as u

    unit = u.Unit(name, parse_strict="silent") if name else None
    return None if unit is None or isinstance(unit, u.UnrecognizedUnit) else unit


def _source_column(sources, name, n):
    if sources is not None and name in sources.colnames:
        return np.asarray(sources[name], dtype=float)
    return np.full(n, np.nan)


def measure_image(
    image,
    sources,
    *,
    radii=(3.0,),
    radii_arcsec=None,
    radii_fwhm=None,
    fwhm: float | None = None,
    annulus=None,
    annulus_fwhm=None,
    sky_statistic: str = "median",
    sky_sigma: float = 3.0,
    sky_maxiters: int = 5,
    min_sky_pixels: int = 10,
    neighbour_radius_fwhm: float | None = 2.0,
    method: str = "exact",
    subpixels: int = 5,
    zeropoint: float | None = None,
    vega_offset: float | None = None,
    gain: float | None = None,
    apcorr=None,
    mask_zeros: bool = True,
    chunk_size: int = 4096,
    workers: int = 1,
):
    """Photometry table of one image at the positions of ``sources``.

    Parameters
    ----------
    image : aperflow.images.Image
        The image (pixel-area rule and calibration from its metadata).
    sources : astropy.table.Table
        Positions ``x``, ``y`` (0-based); ``id``, ``sharpness``, ``roundness1``,
        ``roundness2`` are copied when present.
    radii, radii_arcsec, radii_fwhm : list of float
        Aperture radii (:func:`resolve_radii`).
    fwhm : float, optional
        PSF FWHM in pixels (for ``_fwhm`` radii, the annulus and the neighbour mask).
    annulus, annulus_fwhm : (float, float), optional
        Sky annulus (:func:`resolve_annulus`).
    sky_statistic, sky_sigma, sky_maxiters, min_sky_pixels, method, subpixels, chunk_size, workers
        As :func:`aperture_photometry`.
    neighbour_radius_fwhm : float or None
        Neighbours' discs of this many FWHM are left out of the annuli (None: not).
    zeropoint : float, optional
        Zero point from the config (wins over the header; see
        :meth:`aperflow.images.Image.flux_calibration`).
    vega_offset : float, optional
        ``m_AB - m_Vega`` of the image's filter: magnitudes become Vega.
    gain : float, optional
        Gain (e-/unit) when the header has none, for the DAOPHOT errors without ERR.
    apcorr : aperflow.apcorr.ApcorrTable, optional
        Aperture corrections: adds ``flux_total_rR``, ``flux_total_err_rR``,
        ``mag_total_rR``, ``mag_total_err_rR``.
    mask_zeros : bool
        Treat exact zeros as no coverage (:func:`image_pixels`).

    Returns
    -------
    astropy.table.Table
        One row per source: ``id, x, y, ra, dec, sharpness, roundness1, roundness2,
        sky_median, sky_std, n_sky`` and per radius ``R`` (labels like ``r3.5``, pixels)
        ``flux_R, flux_err_R, sky_R, area_R, mag_R, mag_err_R, mag_lim3_R, mag_lim5_R,
        flags_R``; fluxes in the calibrated unit, sky per pixel in image units. The
        metadata say how every number was made.
    """
    from astropy.table import Table

    from aperflow.calibration import magnitude, magnitude_error, upper_limit_magnitude
    from aperflow.tables import provenance

    path = image.path
    scale = image.pixel_scale()
    radii_px, labels, origins = resolve_radii(
        radii, radii_arcsec, radii_fwhm, fwhm=fwhm, pixel_scale=scale, path=path
    )
    ann, ann_note = resolve_annulus(annulus, annulus_fwhm, fwhm=fwhm, apcorr=apcorr, path=path)
    _check_annulus_outside(ann, ann_note, radii_px, origins, path)
    data, error, pixel_flags = image_pixels(image, mask_zeros)
    n = 0 if sources is None else len(sources)
    x = _source_column(sources, "x", n)
    y = _source_column(sources, "y", n)
    poisson_gain = image.poisson_gain(gain) if error is None else None
    neighbour = neighbour_radius_fwhm * fwhm if (neighbour_radius_fwhm and fwhm) else None
    res = aperture_photometry(
        data,
        x,
        y,
        radii_px,
        error=error,
        pixel_flags=pixel_flags,
        annulus=ann,
        sky_statistic=sky_statistic,
        sky_sigma=sky_sigma,
        sky_maxiters=sky_maxiters,
        min_sky_pixels=min_sky_pixels,
        neighbour_radius=neighbour,
        method=method,
        subpixels=subpixels,
        gain=poisson_gain,
        chunk_size=chunk_size,
        workers=workers,
    )
    cal = image.flux_calibration(zeropoint)
    zp, system = cal.zeropoint, cal.system
    if vega_offset is not None and system == "AB":
        zp, system = zp - float(vega_offset), "Vega"
    flux_unit, sky_unit = _unit(cal.unit), _unit(image.meta.bunit)
    t = Table()
    ids = (
        sources["id"] if sources is not None and "id" in sources.colnames else np.arange(1, n + 1)
    )
    t["id"] = np.asarray(ids, dtype=np.int64)
    t["x"], t["y"] = x, y
    t["x"].unit = t["y"].unit = "pix"
    ra, dec = np.full(n, np.nan), np.full(n, np.nan)
    if image.wcs is not None and n:
        ra, dec = image.wcs.pixel_to_world_values(x, y)
    t["ra"], t["dec"] = np.asarray(ra, float), np.asarray(dec, float)
    t["ra"].unit = t["dec"].unit = "deg"
    for name in ("sharpness", "roundness1", "roundness2"):
        t[name] = _source_column(sources, name, n)
    t["sky_median"] = res.sky_median
    t["sky_std"] = res.sky_std
    t["sky_median"].unit = t["sky_std"].unit = sky_unit
    t["n_sky"] = res.n_sky
    corr = corr_err = None
    if apcorr is not None:
        corr, corr_err = apcorr.correction(radii_px)
        corr, corr_err = np.atleast_1d(corr), np.atleast_1d(corr_err)
    for j, label in enumerate(labels):
        flux = res.flux[:, j] * cal.factor
        err = res.flux_err[:, j] * cal.factor
        t[f"flux_{label}"] = flux
        t[f"flux_err_{label}"] = err
        t[f"flux_{label}"].unit = t[f"flux_err_{label}"].unit = flux_unit
        t[f"sky_{label}"] = res.sky
        t[f"sky_{label}"].unit = sky_unit
        t[f"area_{label}"] = res.area[:, j]
        t[f"area_{label}"].unit = "pix2"
        t[f"mag_{label}"] = magnitude(flux, zp)
        t[f"mag_err_{label}"] = magnitude_error(flux, err)
        t[f"mag_lim3_{label}"] = upper_limit_magnitude(err, 3.0, zp)
        t[f"mag_lim5_{label}"] = upper_limit_magnitude(err, 5.0, zp)
        t[f"flags_{label}"] = res.flags[:, j].astype(np.int32)
        if corr is not None:
            total = flux * corr[j]
            total_err = np.hypot(err * corr[j], flux * corr_err[j])
            t[f"flux_total_{label}"] = total
            t[f"flux_total_err_{label}"] = total_err
            t[f"flux_total_{label}"].unit = t[f"flux_total_err_{label}"].unit = flux_unit
            t[f"mag_total_{label}"] = magnitude(total, zp)
            t[f"mag_total_err_{label}"] = magnitude_error(total, total_err)
    for name in t.colnames:
        if name.startswith("mag"):
            t[name].unit = "mag"
    t.meta.update(
        provenance(
            image=str(path),
            filter=image.meta.filter,
            group=image.meta.group,
            coordinates="x, y are 0-based pixel positions (numpy/photutils); ra, dec ICRS deg",
            radii_px=[float(r) for r in radii_px],
            radii_labels=labels,
            radii_given_as=origins,
            pixel_scale_arcsec=scale,
            fwhm_px=fwhm,
            method=method,
            annulus_px=list(ann),
            annulus_from=ann_note,
            sky_statistic=sky_statistic,
            sky_sigma=float(sky_sigma),
            sky_maxiters=int(sky_maxiters),
            neighbour_mask_radius_px=neighbour,
            pixel_area_applied=bool(image.area is not None and image.is_surface_brightness),
            flux_unit=cal.unit,
            flux_factor=float(cal.factor),
            calibration=cal.note,
            magnitude_system=system,
            zeropoint=float(zp),
            vega_offset=vega_offset,
            error_model=(
                "ERR: sqrt(sum (w ERR)^2 + A^2 sky_std^2 / n_sky)"
                if error is not None
                else f"DAOPHOT: sqrt(F/g + A sky_std^2 + A^2 sky_std^2 / n_sky), g={poisson_gain}"
            ),
            flags={bit: name for bit, (name, _) in F.FLAG_BITS.items()},
            apcorr=None
            if apcorr is None
            else {
                "source": apcorr.source,
                "filter": apcorr.filter,
                "pupil": apcorr.pupil,
                "skyin": float(apcorr.skyin),
                "skyout": float(apcorr.skyout),
                "apcorr": [float(c) for c in corr],
                "apcorr_err": [float(c) for c in corr_err],
            },
        )
    )
    return t


#: ``field.photometry`` keys that are :func:`measure_image` keywords.
_MEASURE_KEYS = (
    "radii",
    "radii_arcsec",
    "radii_fwhm",
    "annulus",
    "annulus_fwhm",
    "sky_statistic",
    "sky_sigma",
    "sky_maxiters",
    "min_sky_pixels",
    "neighbour_radius_fwhm",
    "method",
    "subpixels",
    "zeropoint",
    "gain",
    "chunk_size",
    "workers",
)


def load_field_apcorr(image, path, tabulation_error: float = 0.0):
    """The aperture-correction rows of ``path`` for the image's filter and pupil.

    NIRCam/NIRISS tables key narrow filters by the filter wheel *and* the pupil wheel, so
    the header's FILTER and PUPIL are tried first, then the effective filter alone.
    """
    from aperflow.apcorr import ReferenceError, load_apcorr_table

    raw_filter = str(image.header.get("FILTER", "") or "").strip().upper()
    pupil = image.meta.pupil or None
    tries = [(raw_filter, pupil), (image.meta.filter, pupil), (image.meta.filter, None)]
    last = None
    for filt, pup in tries:
        if not filt:
            continue
        try:
            table = load_apcorr_table(path, filt, pup)
        except ReferenceError as exc:
            last = exc
            continue
        table.tabulation_error = float(tabulation_error or 0.0)
        return table
    raise last or ValueError(f"{path}: no aperture corrections for {image.path}")


def measure_from_options(image, sources, options: dict | None = None, apcorr_path=None):
    """:func:`measure_image` driven by a data set's ``field`` options.

    Parameters
    ----------
    image : aperflow.images.Image
    sources : astropy.table.Table
        Detections (:func:`aperflow.detection.detect_image`); its ``fwhm_px`` metadata is
        the FWHM for ``_fwhm`` radii and the neighbour mask.
    options : dict
        The merged ``field`` options (``photometry`` block, ``mask_zeros``, data-set
        ``zeropoint``).
    apcorr_path : str, optional
        CRDS-style aperture-correction table (``photometry.apcorr`` in the config).
    """
    options = options or {}
    phot = dict(options.get("photometry") or {})
    kwargs = {k: phot[k] for k in _MEASURE_KEYS if phot.get(k) is not None}
    if "zeropoint" not in kwargs and options.get("zeropoint") is not None:
        kwargs["zeropoint"] = options["zeropoint"]
    offsets = {str(k).upper(): v for k, v in (phot.get("vega_offsets") or {}).items()}
    vega = offsets.get(image.meta.filter.upper())
    apcorr = None
    if apcorr_path:
        apcorr = load_field_apcorr(image, apcorr_path, phot.get("apcorr_tabulation_error", 0.0))
    fwhm = sources.meta.get("fwhm_px") if sources is not None else None
    return measure_image(
        image,
        sources,
        fwhm=fwhm,
        vega_offset=vega,
        apcorr=apcorr,
        mask_zeros=options.get("mask_zeros", True),
        **kwargs,
    )
