"""Centroids of one star in a stack of frames, vectorised over the frames.

Three estimators, each on a batch of equally-sized stamps ``(n, h, w)`` (NaN where a pixel
is bad or off the image), all in 0-based stamp pixel coordinates (pixel ``(i, j)`` has its
centre at ``x = j``, ``y = i``, as photutils):

* :func:`cross_correlation_centroids`: the peak of the cross-correlation of a template (a
  circular Gaussian, :func:`gaussian_template`, or a PSF image) with each stamp, refined
  to sub-pixel precision by a three-point Gaussian (log-parabola) interpolation per axis.
  Robust, used as the start of the fit.
* :func:`fit_gaussian_2d`: a weighted Levenberg-Marquardt fit of an elliptical 2-D
  Gaussian plus a constant,

  .. math:: G = A \\exp\\!\\big(-[a\\,\\Delta x^2 + 2b\\,\\Delta x\\Delta y
            + c\\,\\Delta y^2]\\big) + C,

  with an analytic Jacobian, all frames solved at once (batched normal equations). Every
  Jacobian row is the Gaussian times a polynomial of degree <= 2 in the pixel
  coordinates, so the normal equations are built from weighted sums of monomials (one
  small matrix product per frame) instead of the full per-pixel Jacobian. The
  quadratic form ``(a, b, c)`` is fitted instead of ``(sigma_x, sigma_y, theta)`` because
  it stays well conditioned for round stars, where the rotation is undefined; widths and
  rotation (astropy's ``Gaussian2D`` convention: ``sigma_x`` along ``theta``, counter-
  clockwise from +x, ``|theta| <= 45 deg``) and their errors follow by error propagation.
* :func:`center_of_mass`: the first moment of the (background-subtracted) stamp, as
  :func:`photutils.centroids.centroid_com`.

Batched cut-outs of a stack around per-frame positions: :func:`extract_stamps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GaussianFit",
    "center_of_mass",
    "cross_correlation_centroids",
    "extract_stamps",
    "fit_gaussian_2d",
    "gaussian_template",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: fitted parameters, in order: amplitude, x0, y0, a, b, c, offset
_NPAR = 7


def extract_stamps(
    frames: np.ndarray, x: np.ndarray, y: np.ndarray, half: int, fill: float = np.nan
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a ``(2 half + 1)``-pixel square around ``(x[k], y[k])`` out of each frame ``k``.

    Parameters
    ----------
    frames : ndarray, shape (n, ny, nx)
        The stack.
    x, y : array_like, shape (n,) or scalar
        Centres (0-based pixels); each stamp is centred on the nearest pixel.
    half : int
        Half-size of the stamps.
    fill : float
        Value of stamp pixels that fall outside the frame.

    Returns
    -------
    stamps : ndarray, shape (n, 2 half + 1, 2 half + 1)
        The cut-outs (a copy).
    x0, y0 : ndarray of int, shape (n,)
        Frame pixel indices of each stamp's first column and row.
    """
    n, ny, nx = frames.shape
    x = np.broadcast_to(np.asarray(x, dtype=float), (n,))
    y = np.broadcast_to(np.asarray(y, dtype=float), (n,))
    finite = np.isfinite(x) & np.isfinite(y)
    xc = np.where(finite, np.floor(np.where(finite, x, 0) + 0.5), -(10**6)).astype(np.int64)
    yc = np.where(finite, np.floor(np.where(finite, y, 0) + 0.5), -(10**6)).astype(np.int64)
    x0, y0 = xc - half, yc - half
    size = 2 * half + 1
    if n and x0.min() >= 0 and y0.min() >= 0 and x0.max() + size <= nx and y0.max() + size <= ny:
        # Every stamp inside: pick whole windows of a strided view (block copies), several
        # times faster than gathering each pixel through three index arrays.
        windows = np.lib.stride_tricks.sliding_window_view(frames, (size, size), axis=(1, 2))
        return windows[np.arange(n), y0, x0], x0, y0
    cols = x0[:, None] + np.arange(size)[None, :]
    rows = y0[:, None] + np.arange(size)[None, :]
    inside = (rows >= 0)[:, :, None] & (rows < ny)[:, :, None]
    inside = inside & ((cols >= 0) & (cols < nx))[:, None, :]
    idx = np.arange(n)[:, None, None]
    stamps = frames[
        idx, np.clip(rows, 0, ny - 1)[:, :, None], np.clip(cols, 0, nx - 1)[:, None, :]
    ]
    if not inside.all():
        stamps = np.where(inside, stamps, fill)
    return stamps, x0, y0


def gaussian_template(size: int, fwhm: float) -> np.ndarray:
    """A circular, unit-peak Gaussian of ``fwhm`` pixels centred in a ``size`` square."""
    sigma = fwhm * _FWHM_TO_SIGMA
    c = (size - 1) / 2.0
    r = np.arange(size) - c
    return np.exp(-0.5 * (r[None, :] ** 2 + r[:, None] ** 2) / sigma**2)


def _template_stamp(template: np.ndarray, size: int) -> np.ndarray:
    """Centre ``template`` (its peak-free geometric centre) in a ``size`` square."""
    t = np.nan_to_num(np.asarray(template, dtype=float))
    out = np.zeros((size, size))
    th, tw = t.shape
    # Crop or pad symmetrically about the template's centre pixel (odd sizes keep it exact).
    cy, cx, c = (th - 1) // 2, (tw - 1) // 2, (size - 1) // 2
    ys, xs = max(cy - c, 0), max(cx - c, 0)
    ye, xe = min(cy + (size - c), th), min(cx + (size - c), tw)
    out[c - (cy - ys) : c + (ye - cy), c - (cx - xs) : c + (xe - cx)] = t[ys:ye, xs:xe]
    return out


def _peak_offset(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset of a peak from three samples: log-parabola when all are positive
    (exact for a Gaussian peak), plain parabola otherwise; clipped to +-0.5."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (left > 0) & (mid > 0) & (right > 0)
        ll, lm, lr = (np.log(np.where(pos, v, 1.0)) for v in (left, mid, right))
        den_log = ll - 2 * lm + lr
        den = left - 2 * mid + right
        off = np.where(pos, 0.5 * (ll - lr) / den_log, 0.5 * (left - right) / den)
    off = np.where(np.isfinite(off), off, 0.0)
    return np.clip(off, -0.5, 0.5)


def cross_correlation_centroids(
    stamps: np.ndarray, template: np.ndarray | None = None, fwhm: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Centre of the star in each stamp from its cross-correlation with a template.

    Parameters
    ----------
    stamps : ndarray, shape (n, h, w)
        Background-subtracted stamps; NaN pixels count as 0.
    template : ndarray, optional
        A PSF image sampled like the stamps (its centre pixel taken as the star's
        position). Default: a circular Gaussian of ``fwhm``.
    fwhm : float
        FWHM in pixels of the default Gaussian template.

    Returns
    -------
    x, y : ndarray, shape (n,)
        Centres in stamp pixels; NaN for a stamp without finite pixels.
    """
    stamps = np.asarray(stamps, dtype=float)
    n, h, w = stamps.shape
    data = np.nan_to_num(stamps, nan=0.0)
    if template is None:
        corr = _gaussian_correlation(data, fwhm)
    else:
        corr = _fft_correlation(data, template)
    # corr[:, k, j]: the template centred on stamp pixel (j, k); refine the peak.
    flat = corr.reshape(n, -1).argmax(axis=1)
    iy, ix = np.unravel_index(flat, (h, w))
    k = np.arange(n)
    iy_c, ix_c = np.clip(iy, 1, h - 2), np.clip(ix, 1, w - 2)
    dy = _peak_offset(corr[k, iy_c - 1, ix], corr[k, iy_c, ix], corr[k, iy_c + 1, ix])
    dx = _peak_offset(corr[k, iy, ix_c - 1], corr[k, iy, ix_c], corr[k, iy, ix_c + 1])
    x = ix + np.where(ix == ix_c, dx, 0.0)
    y = iy + np.where(iy == iy_c, dy, 0.0)
    empty = ~np.isfinite(stamps).reshape(n, -1).any(axis=1)
    return np.where(empty, np.nan, x), np.where(empty, np.nan, y)


def _gaussian_correlation(data: np.ndarray, fwhm: float) -> np.ndarray:
    """Correlation with a circular Gaussian centred on each pixel: the Gaussian is
    separable, so it is two small matrix products per frame, ``G @ data @ G.T``."""
    sigma = fwhm * _FWHM_TO_SIGMA
    n, h, w = data.shape
    gy = np.exp(-0.5 * ((np.arange(h)[None, :] - np.arange(h)[:, None]) / sigma) ** 2)
    gx = np.exp(-0.5 * ((np.arange(w)[None, :] - np.arange(w)[:, None]) / sigma) ** 2)
    return np.matmul(np.matmul(gy, data), gx.T)


def _fft_correlation(data: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Correlation with a PSF image centred on each stamp pixel (zero-padded FFTs)."""
    n, h, w = data.shape
    size = max(h, w) | 1
    tmpl = _template_stamp(template, size)
    c = (size - 1) // 2
    shape = (h + size, w + size)
    corr = np.fft.irfft2(
        np.fft.rfft2(data, shape) * np.conj(np.fft.rfft2(tmpl, shape)), shape, axes=(-2, -1)
    )
    # corr[l] = sum_p data[p + l] tmpl[p]: the template centre c sits on pixel c + l.
    rows = (np.arange(h) - c) % shape[0]
    cols = (np.arange(w) - c) % shape[1]
    return corr[:, rows][:, :, cols]


def center_of_mass(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First moments ``sum(x I) / sum(I)`` of each stamp (NaN pixels count as 0).

    The stamps should be background-subtracted; like
    :func:`photutils.centroids.centroid_com`, negative pixels are kept. Returns NaN where
    the total is not positive.
    """
    data = np.nan_to_num(np.asarray(stamps, dtype=float), nan=0.0)
    total = data.sum(axis=(1, 2))
    h, w = data.shape[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (data.sum(axis=1) * np.arange(w)).sum(axis=1) / total
        y = (data.sum(axis=2) * np.arange(h)).sum(axis=1) / total
    bad = ~(total > 0)
    return np.where(bad, np.nan, x), np.where(bad, np.nan, y)


@dataclass
class GaussianFit:
    """Result of :func:`fit_gaussian_2d`, one entry per frame (stamp pixel coordinates).

    Errors are the square roots of the covariance diagonal. With per-pixel errors they
    are absolute (:func:`scipy.optimize.curve_fit` with ``absolute_sigma=True``): a
    Gaussian fitted to a non-Gaussian PSF has a large chi^2, but that mismatch is the same
    in every frame and does not scatter the centres, so scaling by it would overstate the
    jitter noise (on the demo, 4.5x). Without pixel errors the weights are arbitrary and
    the covariance is scaled by the reduced chi^2 (``absolute_sigma=False``). NaN where
    the fit failed.
    """

    x: np.ndarray
    y: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    theta: np.ndarray  #: radians, counter-clockwise from +x, in (-pi/4, pi/4]
    amplitude: np.ndarray
    offset: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    sigma_x_err: np.ndarray
    sigma_y_err: np.ndarray
    theta_err: np.ndarray
    amplitude_err: np.ndarray
    offset_err: np.ndarray
    reduced_chi2: np.ndarray
    niter: np.ndarray
    success: np.ndarray


#: exponents (i, j) of the monomials x^i y^j (degree <= 4) whose weighted sums the normal
#: equations need; the first six (degree <= 2) are the factors of the Jacobian rows
_POWERS = [(i, d - i) for d in range(5) for i in range(d, -1, -1)]
_RAW = np.array(_POWERS)
#: index in _RAW of the product of the k-th and l-th of the first six monomials
_PAIRS = np.array(
    [[_POWERS.index((i + k, j + m)) for k, m in _POWERS[:6]] for i, j in _POWERS[:6]]
)


@dataclass
class _Grid:
    """Pixel coordinates of a ``(h, w)`` stamp about its centre ``(cx, cy)``, and the
    monomials ``x^i y^j`` of :data:`_RAW` at each pixel (P, 15); about the centre, where
    the star is, the sums of the normal equations lose no digits to cancellation."""

    x: np.ndarray
    y: np.ndarray
    cx: float
    cy: float
    monomials: np.ndarray
    first6: np.ndarray  #: the first six monomials, contiguous for the matrix product

    @classmethod
    def of(cls, h: int, w: int) -> _Grid:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        x, y = np.arange(w) - cx, np.arange(h) - cy
        gx, gy = np.tile(x, h), np.repeat(y, w)  # row-major pixel order, as the stamps
        monomials = gx[:, None] ** _RAW[:, 0] * gy[:, None] ** _RAW[:, 1]
        return cls(x, y, cx, cy, monomials, np.ascontiguousarray(monomials[:, :6]))


@dataclass
class _Workspace:
    """Work arrays for up to ``n`` frames, reused by every iteration: fresh arrays of this
    size each step cost more in page faults than the arithmetic on them."""

    e: np.ndarray  #: (n, P) the unit-amplitude Gaussian
    resid: np.ndarray  #: (n, P) data - model
    wresid: np.ndarray  #: (n, P) weight * (data - model)
    cross: np.ndarray  #: (n, P) scratch for the exponent's cross term
    products: np.ndarray  #: (3, n, P) w e^2, w e, w e (data - model)
    sums2: np.ndarray  #: (n, 15) sums of w e^2 times the monomials of _RAW
    sums1: np.ndarray  #: (2, n, 6) sums of w e and w e r times the first six

    @classmethod
    def of(cls, n: int, npix: int) -> _Workspace:
        return cls(
            *(np.empty((n, npix)) for _ in range(4)),
            np.empty((3, n, npix)),
            np.empty((n, len(_RAW))),
            np.empty((2, n, 6)),
        )


def _gaussian(p: np.ndarray, grid: _Grid, out: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``exp(-(a dx^2 + 2 b dx dy + c dy^2))`` for each frame into ``out`` (n, P): the
    squares come from the short row and column offsets, only the cross term is 2-D."""
    n = p.shape[0]
    a, b, c = p[:, 3:4], p[:, 4:5], p[:, 5:6]
    dx = grid.x[None, :] - (p[:, 1:2] - grid.cx)  # (n, w)
    dy = grid.y[None, :] - (p[:, 2:3] - grid.cy)  # (n, h)
    out3 = out.reshape(n, dy.shape[1], dx.shape[1])
    np.add((-a * dx * dx)[:, None, :], (-c * dy * dy)[:, :, None], out=out3)
    np.multiply((-2.0 * b * dy)[:, :, None], dx[:, None, :], out=cross.reshape(out3.shape))
    out += cross
    return np.exp(out, out=out)


def _evaluate(p, data, weight, sum_w, grid: _Grid, work: _Workspace):
    """chi^2 (n,), normal matrix ``J W J^T`` (n, 7, 7) and gradient ``J W r`` (n, 7) at
    parameters ``p`` (n, 7).

    Each Jacobian row but the offset's is ``e`` times a polynomial of degree <= 2 in the
    pixel coordinates (:func:`_jacobian_factors`), so the normal equations need only the
    sums of ``w e^2``, ``w e`` and ``w e r`` times the monomials of degree <= 4 on the
    stamp's fixed grid: one small matrix product per frame instead of building and
    multiplying the (n, 7, P) Jacobian every step.
    """
    n = p.shape[0]
    e = _gaussian(p, grid, work.e[:n], work.cross[:n])
    resid = np.multiply(e, p[:, 0:1], out=work.resid[:n])
    resid += p[:, 6:7]
    np.subtract(data, resid, out=resid)
    wresid = np.multiply(weight, resid, out=work.wresid[:n])
    chi2 = np.einsum("np,np->n", wresid, resid)
    products = work.products[:, :n]
    np.multiply(weight, e, out=products[1])
    np.multiply(products[1], e, out=products[0])
    np.multiply(wresid, e, out=products[2])
    sums2, sums1 = _monomial_sums(products, grid, work.sums2[:n], work.sums1[:, :n])
    t = _jacobian_factors(p, grid)
    normal = np.empty((n, _NPAR, _NPAR))
    normal[:, :6, :6] = t @ sums2[:, _PAIRS] @ t.transpose(0, 2, 1)
    normal[:, :6, 6] = normal[:, 6, :6] = (t @ sums1[0, :, :, None])[:, :, 0]  # sum w J_k
    normal[:, 6, 6] = sum_w
    grad = np.empty((n, _NPAR))
    grad[:, :6] = (t @ sums1[1, :, :, None])[:, :, 0]
    grad[:, 6] = wresid.sum(axis=1)
    return chi2, normal, grad


#: frames per matrix product in :func:`_monomial_sums`: few enough that OpenBLAS keeps
#: each product on one thread (it splits only above m n k = 4 x 65536), enough to share
#: the call overhead (one call per frame costs twice the arithmetic)
_BLOCK = 32


def _monomial_sums(products, grid: _Grid, sums2, sums1):
    """``sums2 = w e^2 @ monomials`` (n, 15) and ``sums1 = [w e, w e r] @ first six``
    (2, n, 6) from ``products`` (3, n, P), ``_BLOCK`` frames per matrix product."""
    n = products.shape[1]
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        np.matmul(products[0, lo:hi], grid.monomials, out=sums2[lo:hi])
        np.matmul(products[1:, lo:hi], grid.first6, out=sums1[:, lo:hi])
    return sums2, sums1


def _jacobian_factors(p: np.ndarray, grid: _Grid) -> np.ndarray:
    """``T`` (n, 6, 6) with the Jacobian row ``k`` (amplitude, x0, y0, a, b, c) equal to
    ``e * sum_l T[k, l] m_l`` for the monomials ``m = 1, x, y, x^2, x y, y^2`` of the
    grid coordinates; with ``dx = x - x0``, ``dy = y - y0``:
    ``dG/dA = e``, ``dG/dx0 = 2 A e (a dx + b dy)``, ``dG/dy0 = 2 A e (b dx + c dy)``,
    ``dG/da = -A e dx^2``, ``dG/db = -2 A e dx dy``, ``dG/dc = -A e dy^2``, expanded."""
    amp, a, b, c = p[:, 0], p[:, 3], p[:, 4], p[:, 5]
    x0, y0 = p[:, 1] - grid.cx, p[:, 2] - grid.cy
    t = np.zeros((p.shape[0], 6, 6))
    t[:, 0, 0] = 1.0
    t[:, 1, 0], t[:, 1, 1], t[:, 1, 2] = -2 * amp * (a * x0 + b * y0), 2 * amp * a, 2 * amp * b
    t[:, 2, 0], t[:, 2, 1], t[:, 2, 2] = -2 * amp * (b * x0 + c * y0), 2 * amp * b, 2 * amp * c
    t[:, 3, 0], t[:, 3, 1], t[:, 3, 3] = -amp * x0 * x0, 2 * amp * x0, -amp
    t[:, 4, 0], t[:, 4, 1], t[:, 4, 2] = -2 * amp * x0 * y0, 2 * amp * y0, 2 * amp * x0
    t[:, 4, 4] = -2 * amp
    t[:, 5, 0], t[:, 5, 2], t[:, 5, 5] = -amp * y0 * y0, 2 * amp * y0, -amp
    return t


def _widths(a, b, c):
    """(sigma_x, sigma_y, theta) of the quadratic form, astropy's Gaussian2D convention."""
    d = np.sqrt((a - c) ** 2 + 4.0 * b * b)
    lam1 = 0.5 * (a + c + d)  # along theta0
    lam2 = 0.5 * (a + c - d)
    theta0 = 0.5 * np.arctan2(2.0 * b, a - c)
    swap = np.abs(theta0) > np.pi / 4
    theta = np.where(swap, theta0 - np.sign(theta0) * np.pi / 2, theta0)
    lx, ly = np.where(swap, lam2, lam1), np.where(swap, lam1, lam2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(2.0 * lx), 1.0 / np.sqrt(2.0 * ly), theta


def _width_errors(a, b, c, cov_abc):
    """Propagate the (a, b, c) covariance (n, 3, 3) to (sigma_x, sigma_y, theta) errors
    with a numerical Jacobian (central differences, vectorised over frames)."""
    base = np.stack([a, b, c], axis=1)
    step = 1e-6 * np.maximum(np.abs(base).max(axis=1, keepdims=True), 1e-12)
    jac = np.empty((len(a), 3, 3))
    for j in range(3):  # 3 parameters, not a loop over frames
        hi, lo = base.copy(), base.copy()
        hi[:, j] += step[:, 0]
        lo[:, j] -= step[:, 0]
        fh = np.stack(_widths(*hi.T), axis=1)
        fl = np.stack(_widths(*lo.T), axis=1)
        diff = fh - fl
        diff[:, 2] = (diff[:, 2] + np.pi / 2) % np.pi - np.pi / 2  # theta wraps at +-pi/2
        jac[:, :, j] = diff / (2.0 * step)
    cov = np.einsum("nij,njk,nlk->nil", jac, cov_abc, jac)
    return np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))


def fit_gaussian_2d(
    stamps: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    errors: np.ndarray | None = None,
    fwhm: float = 2.0,
    max_shift: float = 3.0,
    maxiter: int = 50,
    tol: float = 1e-6,
    chunk: int = 256,
) -> GaussianFit:
    """Fit an elliptical 2-D Gaussian plus a constant to each stamp (see the module docs).

    Parameters
    ----------
    stamps : ndarray, shape (n, h, w)
        Stamps; NaN pixels get zero weight.
    x0, y0 : array_like, shape (n,)
        Starting centres (stamp pixels), e.g. from :func:`cross_correlation_centroids`.
    errors : ndarray, shape (n, h, w), optional
        Per-pixel 1-sigma errors, for weights ``1/err^2``; uniform weights without.
    fwhm : float
        Starting FWHM in pixels (circular).
    max_shift : float
        A fit whose centre ends farther than this from ``(x0, y0)``, or outside the stamp,
        is marked failed.
    maxiter : int
        Maximum Levenberg-Marquardt iterations.
    tol : float
        Relative chi^2 decrease below which a frame has converged.
    chunk : int
        Frames solved together (their work arrays are allocated once and reused).

    Returns
    -------
    GaussianFit
    """
    stamps = np.asarray(stamps, dtype=float)
    n = stamps.shape[0]
    x0 = np.broadcast_to(np.asarray(x0, dtype=float), (n,))
    y0 = np.broadcast_to(np.asarray(y0, dtype=float), (n,))
    work = _Workspace.of(max(min(chunk, n), 1), stamps.shape[1] * stamps.shape[2])
    parts = []
    for lo in range(0, max(n, 1), chunk):  # chunks of frames, each fitted at once
        sl = slice(lo, lo + chunk)
        err = None if errors is None else errors[sl]
        # Empty or diverging frames overflow or give NaN: they end with success=False.
        with np.errstate(all="ignore"):
            fit = _fit_chunk(stamps[sl], x0[sl], y0[sl], err, fwhm, max_shift, maxiter, tol, work)
        parts.append(fit)
    return GaussianFit(
        **{
            f: np.concatenate([getattr(part, f) for part in parts])
            for f in GaussianFit.__dataclass_fields__
        }
    )


def _fit_chunk(stamps, x0, y0, errors, fwhm, max_shift, maxiter, tol, work) -> GaussianFit:
    """:func:`fit_gaussian_2d` on one chunk of frames."""
    n, h, w = stamps.shape
    grid = _Grid.of(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = xx.ravel().astype(float), yy.ravel().astype(float)
    data = stamps.reshape(n, h * w)
    weight = np.isfinite(data).astype(float)
    if errors is not None:
        err = np.asarray(errors, dtype=float).reshape(n, -1)
        good = np.isfinite(err) & (err > 0)
        weight = np.where(good, weight / np.where(good, err, 1.0) ** 2, 0.0)
    data = np.where(weight > 0, data, 0.0)
    p = _start(data, weight, x0, y0, fwhm, px, py, h, w)
    npix = (weight > 0).sum(axis=1)
    sum_w = weight.sum(axis=1)
    # kept for the current parameters of every frame
    chi2, normal, grad = _evaluate(p, data, weight, sum_w, grid, work)
    lam = np.full(n, 1e-3)
    active = np.isfinite(chi2) & (npix > _NPAR) & np.isfinite(p).all(axis=1)
    niter = np.zeros(n, dtype=int)
    eye = np.eye(_NPAR)
    for _ in range(maxiter):
        if not active.any():
            break
        # all frames active (the common case): slices, no copies of the work arrays
        ia = slice(None) if active.all() else np.flatnonzero(active)
        na = normal[ia]
        diag = np.diagonal(na, axis1=1, axis2=2)
        damp = lam[ia, None] * (diag + 1e-12 * diag.max(axis=1, keepdims=True))
        trial = p[ia] + _solve(na + damp[:, :, None] * eye, grad[ia])
        new, t_normal, t_grad = _evaluate(trial, data[ia], weight[ia], sum_w[ia], grid, work)
        a, b, c = trial[:, 3], trial[:, 4], trial[:, 5]
        valid = np.isfinite(new) & (a > 0) & (c > 0) & (a * c - b * b > 0)
        better = valid & (new <= chi2[ia])
        rel = np.where(better, (chi2[ia] - new) / np.maximum(new, 1e-300), 0.0)
        acc = np.flatnonzero(better) if isinstance(ia, slice) else ia[better]
        p[acc], normal[acc], grad[acc] = trial[better], t_normal[better], t_grad[better]
        chi2[acc] = new[better]
        lam[ia] = np.where(better, np.maximum(lam[ia] / 10.0, 1e-12), lam[ia] * 10.0)
        niter[ia] += 1
        done = (better & (rel < tol)) | (lam[ia] > 1e12)
        active[np.flatnonzero(done) if isinstance(ia, slice) else ia[done]] = False
    absolute = errors is not None
    return _finish(p, chi2, npix, normal, x0, y0, max_shift, h, w, niter, absolute)


def _start(data, weight, x0, y0, fwhm, px, py, h, w):
    """Starting parameters: amplitude from the pixel nearest the start, offset 0 (stamps
    are background-subtracted), a circular Gaussian of ``fwhm``."""
    n = data.shape[0]
    s2 = (fwhm * _FWHM_TO_SIGMA) ** 2
    ix = np.clip(np.rint(np.nan_to_num(x0)), 0, w - 1).astype(int)
    iy = np.clip(np.rint(np.nan_to_num(y0)), 0, h - 1).astype(int)
    near = data[np.arange(n), iy * w + ix]
    peak = np.max(np.where(weight > 0, data, -np.inf), axis=1)
    amp = np.where(near > 0, np.maximum(near, 0.5 * peak), peak)
    p = np.empty((n, _NPAR))
    p[:, 0] = amp
    p[:, 1], p[:, 2] = x0, y0
    p[:, 3] = p[:, 5] = 0.5 / s2
    p[:, 4] = 0.0
    p[:, 6] = 0.0
    return p


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched solve; singular systems (no usable pixels) give NaN steps, not an error."""
    try:
        return np.linalg.solve(matrix, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full(rhs.shape, np.nan)
        for k in np.flatnonzero(np.isfinite(matrix).all(axis=(1, 2))):  # rare fallback
            out[k] = np.linalg.lstsq(matrix[k], rhs[k], rcond=None)[0]
        return out


def _finish(p, chi2, npix, normal, x0, y0, max_shift, h, w, niter, absolute):
    n = p.shape[0]
    dof = np.maximum(npix - _NPAR, 1)
    red = chi2 / dof
    cov = np.full((n, _NPAR, _NPAR), np.nan)
    ok = np.isfinite(normal).all(axis=(1, 2)) & (npix > _NPAR)
    if ok.any():
        with np.errstate(invalid="ignore"):
            inv = np.linalg.pinv(normal[ok], hermitian=True)
        cov[ok] = inv if absolute else inv * red[ok, None, None]
    perr = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    a, b, c = p[:, 3], p[:, 4], p[:, 5]
    with np.errstate(invalid="ignore"):
        sx, sy, theta = _widths(a, b, c)
        werr = _width_errors(a, b, c, cov[:, 3:6, 3:6])
    shift = np.hypot(p[:, 1] - x0, p[:, 2] - y0)
    success = (
        ok
        & np.isfinite(p).all(axis=1)
        & (p[:, 0] > 0)
        & (shift <= max_shift)
        & (p[:, 1] >= -0.5)
        & (p[:, 1] <= w - 0.5)
        & (p[:, 2] >= -0.5)
        & (p[:, 2] <= h - 0.5)
        & (sx > 0.1)
        & (sy > 0.1)
        & (sx < max(h, w))
        & (sy < max(h, w))
    )

    def keep(v):
        return np.where(success, v, np.nan)

    return GaussianFit(
        x=keep(p[:, 1]),
        y=keep(p[:, 2]),
        sigma_x=keep(sx),
        sigma_y=keep(sy),
        theta=keep(theta),
        amplitude=keep(p[:, 0]),
        offset=keep(p[:, 6]),
        x_err=keep(perr[:, 1]),
        y_err=keep(perr[:, 2]),
        sigma_x_err=keep(werr[:, 0]),
        sigma_y_err=keep(werr[:, 1]),
        theta_err=keep(werr[:, 2]),
        amplitude_err=keep(perr[:, 0]),
        offset_err=keep(perr[:, 6]),
        reduced_chi2=keep(red),
        niter=niter,
        success=success,
    )
