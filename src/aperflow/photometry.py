"""Aperture photometry: apertures, local sky, errors and flags.

Error model (DESIGN.md, one formula for every mode)
---------------------------------------------------
With an ERR array (which already holds source Poisson, sky and read noise)::

    sigma_F^2 = sum_i (w_i ERR_i)^2  +  A^2 sigma_sky^2 / n_sky

where ``w_i`` is the aperture's overlap fraction of pixel ``i`` over unmasked pixels,
``A = sum_i w_i`` the unmasked area, ``sigma_sky`` the sky scatter per pixel and
``n_sky`` the number of unmasked sky pixels used. Without ERR, the DAOPHOT/IRAF form::

    sigma_F^2 = F / g  +  A sigma_sky^2  +  A^2 sigma_sky^2 / n_sky

with ``g`` the factor from pixel units to detected counts
(:meth:`aperflow.images.Image.poisson_gain`). ``A sigma_sky^2`` is never added on top of
ERR: the sky noise would count twice and errors come out ~25 % too large.
"""

from __future__ import annotations

import numpy as np

__all__ = ["flux_error"]


def flux_error(area, sky_std, n_sky, var_sum=None, flux=None, gain=None):
    """One-sigma error of a sky-subtracted aperture flux (see the module docstring).

    Parameters
    ----------
    area : array_like
        Unmasked aperture area in pixels (sum of overlap fractions).
    sky_std : array_like
        Sky scatter per pixel (same unit as the pixels).
    n_sky : array_like
        Number of unmasked sky pixels the sky level was estimated from.
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
