"""Combining measurements: inverse-variance weighted means with honest errors.

Every mode that averages (dithers of a field, EE curves of a standard star, forced fluxes
over images) uses :func:`weighted_mean`: one home for that sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WeightedMean", "weighted_mean"]


@dataclass
class WeightedMean:
    """Result of :func:`weighted_mean` (arrays reduced over ``axis``).

    Attributes
    ----------
    mean, error : ndarray
        ``sum(w x) / sum(w)`` with ``w = 1/sigma^2``, and ``1/sqrt(sum(w))``.
    n : ndarray of int
        Number of finite, positive-error measurements used.
    chi2 : ndarray
        ``sum(w (x - mean)^2)``; with ``n - 1`` degrees of freedom.
    reduced_chi2 : ndarray
        ``chi2 / (n - 1)``, NaN where ``n < 2``: ~1 when the errors explain the scatter.
    """

    mean: np.ndarray
    error: np.ndarray
    n: np.ndarray
    chi2: np.ndarray
    reduced_chi2: np.ndarray


def weighted_mean(values, errors, axis: int = 0, mask=None) -> WeightedMean:
    """Inverse-variance weighted mean of ``values`` with 1-sigma ``errors`` along ``axis``.

    Measurements with a non-finite value, a non-finite or non-positive error, or True in
    ``mask`` are left out. Where none is left the mean and error are NaN and ``n`` is 0.

    .. math::
        \\bar x = \\frac{\\sum_i x_i/\\sigma_i^2}{\\sum_i 1/\\sigma_i^2},\\qquad
        \\sigma_{\\bar x} = \\Big(\\sum_i 1/\\sigma_i^2\\Big)^{-1/2},\\qquad
        \\chi^2 = \\sum_i (x_i-\\bar x)^2/\\sigma_i^2
    """
    x = np.asarray(values, dtype=float)
    s = np.asarray(errors, dtype=float)
    good = np.isfinite(x) & np.isfinite(s) & (s > 0)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    w = np.where(good, 1.0 / np.where(good, s, 1.0) ** 2, 0.0)
    xw = np.where(good, x, 0.0)
    wsum = w.sum(axis=axis)
    n = good.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (w * xw).sum(axis=axis) / wsum, np.nan)
        error = np.where(n > 0, 1.0 / np.sqrt(wsum), np.nan)
        resid = xw - np.expand_dims(mean, axis)
        chi2 = np.where(n > 0, (w * np.where(good, resid, 0.0) ** 2).sum(axis=axis), np.nan)
        reduced = np.where(n > 1, chi2 / np.maximum(n - 1, 1), np.nan)
    return WeightedMean(mean, error, n, chi2, reduced)
