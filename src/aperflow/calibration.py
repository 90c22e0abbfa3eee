"""Unit conversions, flux calibration and magnitudes.

Conventions
-----------
* JWST level-2/3 pixels are surface brightnesses in MJy/sr. The flux density of a pixel is
  ``SCI * AREA * PIXAR_SR * 1e6`` Jy, where ``AREA`` is the relative pixel area (the pixel
  area map, only for distorted level-2 images) and ``PIXAR_SR`` the nominal pixel solid
  angle. ``PHOTMJSR`` converts DN/s to MJy/sr.
* HST count rates (electrons/s) calibrate with ``PHOTFLAM`` (erg/s/cm2/A per e-/s) and
  ``PHOTPLAM`` (A): ``ZP_AB = -2.5 log10(PHOTFLAM) - 5 log10(PHOTPLAM) - 2.408``.
* AB magnitudes: ``m_AB = -2.5 log10(f_nu / Jy) + 8.90``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AB_ZEROPOINT_JY",
    "FluxCalibration",
    "KNOWN_PIXEL_UNITS",
    "ab_zeropoint_photflam",
    "bunit_problem",
    "dns_to_mjysr",
    "flux_calibration",
    "jy_per_pixel",
    "magnitude",
    "magnitude_error",
    "mjysr_to_dns",
    "photflam_to_jy",
    "poisson_gain",
    "upper_limit_magnitude",
]

log = logging.getLogger("aperflow.calibration")

#: AB zero point for flux densities in Jy: m = -2.5 log10(f/Jy) + 8.90.
AB_ZEROPOINT_JY = 8.90
_C_ANGSTROM_PER_S = 2.99792458e18


@dataclass(frozen=True)
class FluxCalibration:
    """How summed pixel values become fluxes and magnitudes.

    ``flux = factor * sum(data * area)`` in ``unit``; ``mag = -2.5 log10(flux) + zeropoint``
    in the magnitude ``system`` ('AB' or 'instrumental'); ``note`` says where the numbers
    came from (or why calibration fell back to instrumental).
    """

    factor: float
    unit: str
    zeropoint: float
    system: str
    note: str


def jy_per_pixel(pixar_sr: float) -> float:
    """Jy per pixel of 1 MJy/sr for a pixel of solid angle ``pixar_sr`` steradians."""
    return 1.0e6 * float(pixar_sr)


def mjysr_to_dns(value, photmjsr: float):
    """Convert MJy/sr to DN/s with the header's PHOTMJSR (MJy/sr per DN/s)."""
    return np.asarray(value) / float(photmjsr)


def dns_to_mjysr(value, photmjsr: float):
    """Convert DN/s to MJy/sr with the header's PHOTMJSR (MJy/sr per DN/s)."""
    return np.asarray(value) * float(photmjsr)


def ab_zeropoint_photflam(photflam: float, photplam: float) -> float:
    """AB zero point of count rates from HST's PHOTFLAM (erg/s/cm2/A) and PHOTPLAM (A)."""
    return -2.5 * np.log10(photflam) - 5.0 * np.log10(photplam) - 2.408


def photflam_to_jy(rate, photflam: float, photplam: float):
    """Flux density in Jy of a count rate, from PHOTFLAM and PHOTPLAM."""
    f_lambda = np.asarray(rate) * photflam
    return f_lambda * photplam**2 / _C_ANGSTROM_PER_S * 1.0e23


#: Pixel units aperflow understands beyond what astropy parses (lower case; HST, JWST,
#: ground conventions). :func:`poisson_gain` knows how to turn each into counts.
KNOWN_PIXEL_UNITS = frozenset(
    {"mjy/sr", "mjy / sr", "ujy/arcsec2", "ujy/arcsec^2", "dn", "dn/s", "adu", "adu/s"}
    | {"counts", "count", "counts/s", "count/s", "e", "e-", "e/s", "e-/s"}
    | {"electron", "electrons", "electron/s", "electrons/s"}
)


def bunit_problem(bunit: str | None) -> str | None:
    """Why a pixel unit cannot be trusted: ``"BUNIT is missing"``, ``"BUNIT 'FOO' is not a
    known unit"``; None when it is one of :data:`KNOWN_PIXEL_UNITS` or astropy parses it."""
    from astropy import units as u

    text = (bunit or "").strip()
    if not text:
        return "BUNIT is missing"
    if text.lower() in KNOWN_PIXEL_UNITS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        unit = u.Unit(text, parse_strict="silent")
    if isinstance(unit, u.UnrecognizedUnit):
        return f"BUNIT {text!r} is not a known unit"
    return None


def _positive(meta, key: str) -> float | None:
    value = getattr(meta, key)
    if value is None:
        return None
    if value <= 0:
        warnings.warn(f"{key.upper()}={value} is not positive; ignored", stacklevel=3)
        return None
    return value


def flux_calibration(
    meta,
    is_surface_brightness: bool,
    zeropoint: float | None = None,
    path: str = "",
) -> FluxCalibration:
    """Choose how to turn pixel sums into fluxes and magnitudes for one image.

    Parameters
    ----------
    meta : ImageMeta
        Normalised image metadata.
    is_surface_brightness : bool
        True when the pixel unit is MJy/sr.
    zeropoint : float, optional
        A zero point from the config; wins over the header when given.
    path : str
        File name for messages.

    Returns
    -------
    FluxCalibration
        In order of preference: MJy/sr with PIXAR_SR -> Jy and AB; DN/s with PHOTMJSR and
        PIXAR_SR -> Jy and AB; PHOTFLAM/PHOTPLAM -> AB
        on the count rate; a zero point from config or header (system 'AB' assumed);
        else instrumental magnitudes (zero point 0) on the native unit.
        A missing or unknown BUNIT (:func:`bunit_problem`) is logged as a warning and said
        in ``note``: fluxes stay sums of pixel values in ``unit`` ``"unknown"`` (missing)
        or the header's string, magnitudes instrumental unless a zero point calibrates
        them.
    """
    cal = _choose_calibration(meta, is_surface_brightness, zeropoint, path)
    problem = bunit_problem(meta.bunit)
    if problem is None:
        return cal
    label = f"{path}: " if path else ""
    if cal.system == "instrumental":
        note = (
            f"{label}{problem}: the pixel unit is unknown, so fluxes are uncalibrated sums "
            "of pixel values and magnitudes instrumental (zero point 0)"
        )
    else:
        note = f"{cal.note}; {problem}: assumed to be the unit this calibration expects"
    log.warning("%s", note if note.startswith(label) else f"{label}{note}")
    unit = cal.unit if meta.bunit else "unknown"
    return FluxCalibration(cal.factor, unit, cal.zeropoint, cal.system, note)


def _choose_calibration(meta, is_surface_brightness, zeropoint, path) -> FluxCalibration:
    unit = meta.bunit or "adu"
    label = f"{path}: " if path else ""
    pixar = _positive(meta, "pixar_sr")
    if is_surface_brightness and pixar is not None and zeropoint is None:
        return FluxCalibration(
            jy_per_pixel(pixar), "Jy", AB_ZEROPOINT_JY, "AB", f"MJy/sr x PIXAR_SR={pixar:.6g}"
        )
    if is_surface_brightness and pixar is None:
        unit = f"{unit} pix"
    photmjsr = _positive(meta, "photmjsr")
    if unit.lower() == "dn/s" and pixar is not None and photmjsr is not None and zeropoint is None:
        factor = photmjsr * jy_per_pixel(pixar)
        note = f"DN/s x PHOTMJSR={photmjsr:.6g} x PIXAR_SR={pixar:.6g}"
        return FluxCalibration(factor, "Jy", AB_ZEROPOINT_JY, "AB", note)
    photflam, photplam = _positive(meta, "photflam"), _positive(meta, "photplam")
    if zeropoint is None and photflam is not None and photplam is not None:
        zp = ab_zeropoint_photflam(photflam, photplam)
        return FluxCalibration(
            1.0, unit, float(zp), "AB", f"PHOTFLAM={photflam:.6g}, PHOTPLAM={photplam:.6g}"
        )
    if zeropoint is not None:
        return FluxCalibration(1.0, unit, float(zeropoint), "AB", "zero point from config")
    if meta.zeropoint is not None:
        return FluxCalibration(1.0, unit, meta.zeropoint, "AB", "zero point from header")
    why = "no PIXAR_SR, PHOTFLAM/PHOTPLAM or zero point"
    return FluxCalibration(1.0, unit, 0.0, "instrumental", f"{label}{why}: instrumental")


def magnitude(flux, zeropoint: float = 0.0):
    """``-2.5 log10(flux) + zeropoint``; NaN (never -99) where the flux is not positive."""
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = -2.5 * np.log10(np.where(flux > 0, flux, np.nan)) + zeropoint
    return mag


def magnitude_error(flux, flux_err):
    """``2.5/ln(10) * err/flux`` (1.0857 err/flux); NaN where the flux is not positive."""
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 2.5 / np.log(10.0) * np.asarray(flux_err) / flux, np.nan)


def upper_limit_magnitude(flux_err, nsigma: float, zeropoint: float = 0.0):
    """Magnitude of ``nsigma`` times the flux error: the n-sigma upper limit."""
    return magnitude(nsigma * np.asarray(flux_err, dtype=float), zeropoint)


def poisson_gain(meta, is_surface_brightness: bool, default_gain: float | None = None):
    """Factor turning one pixel unit into detected counts, for Poisson errors without ERR.

    Count rates (e-/s, DN/s) multiply by the exposure time (and the gain for DN); DN or
    adu multiply by the gain; MJy/sr first divide by PHOTMJSR. Returns None when the
    header (and ``default_gain``) cannot say.
    """
    unit = (meta.bunit or "").strip().lower()
    gain = meta.gain if meta.gain and meta.gain > 0 else default_gain
    exptime = meta.exptime if meta.exptime and meta.exptime > 0 else None
    if unit.startswith("electron") or unit in {"e/s", "e-/s", "e", "e-"}:
        return exptime if unit.endswith("/s") else 1.0
    if is_surface_brightness:
        if not (meta.photmjsr and meta.photmjsr > 0 and gain and exptime):
            return None
        return gain * exptime / meta.photmjsr
    if unit in {"dn/s", "adu/s", "counts/s", "count/s"}:
        return gain * exptime if gain and exptime else None
    if unit in {"dn", "adu", "counts", "count", ""}:
        return gain
    return None
