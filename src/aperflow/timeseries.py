"""Time-series photometry of one star: per-integration centroids, background and aperture
fluxes, then the light curve of a data set and its precision (seed 002, NIRCam TSO).

Inputs
------
Any FITS file with a science image of one of these shapes (:func:`open_series`):

* a cube ``(nints, ny, nx)``: JWST ``*_calints.fits`` (``SCI``, ``ERR``, ``DQ``, an
  ``INT_TIMES`` table) or a plain ground cube;
* a level-1b ramp ``(nints, ngroups, ny, nx)`` (``*_uncal.fits``): each integration is the
  difference of two groups, last minus first by default (``ramp_groups``), as seed 002's
  ``data[2] - data[0]``; saturation is judged on the raw group values;
* a single 2-D frame (``*_cal.fits``, ``*_rate.fits``, a ground image): one integration;
  a stack of such files makes one light curve.

Integrations are read in batches of at most ``batch_size`` through a memory map of the
science array (only the window around the star when the background is an annulus), so
memory stays bounded whatever the number of integrations. Gzip-compressed files cannot be
memory-mapped and are read whole by astropy. With ``workers > 1`` the batches are shared
between the calling process and forked worker processes (each holding one batch at a
time); every integration is measured on its own, so the table is the same.

Per integration (:func:`measure_series`)
---------------------------------------
1. Time: mid-time from ``INT_TIMES`` (MJD UTC and BJD_TDB); else the exposure's start and
   end (``EXPSTART``/``EXPEND``, ``DATE-BEG``/``DATE-END``, ``DATE-OBS``/``TIME-OBS`` with
   ``DATE-END``/``TIME-END`` or ``+EXPTIME``) split evenly over its ``NINTS`` integrations
   (:func:`integration_times`). BJD_TDB, when ``INT_TIMES`` lacks it, is computed with
   astropy from the target's coordinates (:func:`barycentric_times`).
2. Background: the sigma-clipped median (or mean) of an annulus around the star, with its
   error, or the frame median (:func:`annulus_background`, :func:`frame_background`).
3. Centroids (:mod:`aperflow.centroids`): cross-correlation with a Gaussian or a PSF image,
   then a 2-D Gaussian fit from there (centre, widths, amplitude, rotation and errors), and
   the centre of mass. The apertures follow the Gaussian centre (or the CC or COM centre, or
   stay fixed at the target position): ``centroid.follow``.
4. Fluxes in circular apertures with exact pixel overlap at every radius
   (:func:`circular_overlap_weights`), errors from :func:`aperflow.photometry.flux_error`
   (ERR form when the file has ERR, DAOPHOT form with the Poisson gain otherwise) and the
   flags of :mod:`aperflow.flags`. JWST surface brightnesses are multiplied by the pixel
   area map first, and sums become fluxes with :func:`aperflow.calibration.flux_calibration`.

Per data set (:func:`light_curve`, :func:`precision`)
----------------------------------------------------
All integrations sorted by time (duplicates kept, marked ``duplicate_time`` and left out of
the statistics), fluxes normalised by their median, and per radius the measured scatter
(point-to-point and standard deviation, ppm) beside the expected noise from the error
model (photon + read + sky), with the best aperture (lowest point-to-point scatter).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing as mp
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from aperflow import flags as F
from aperflow.calibration import flux_calibration, poisson_gain
from aperflow.centroids import (
    center_of_mass,
    cross_correlation_centroids,
    extract_stamps,
    fit_gaussian_2d,
)
from aperflow.datasets import deep_merge, image_id
from aperflow.images import (
    DEFAULT_DQ,
    PIXEL_BAD,
    PIXEL_COSMIC_RAY,
    PIXEL_SATURATED,
    ImageError,
    _celestial_wcs,
    _ext,
    _find_science_hdu,
    _merged_header,
    _pixel_flags,
    _scaled,
    dq_bitmask,
    read_meta,
)
from aperflow.photometry import (
    SKY_VARIANCE_FACTOR,
    aperture_weights,
    clipped_stats_sorted,
    clipped_std_correction,
    flux_error,
    radius_label,
)
from aperflow.tables import provenance

__all__ = [
    "Background",
    "IntegrationBatch",
    "IntegrationSeries",
    "IntegrationTimes",
    "TimeseriesOptions",
    "annulus_background",
    "aperture_sums",
    "barycentric_times",
    "estimate_fwhm",
    "failed_series",
    "frame_background",
    "integration_times",
    "light_curve",
    "measure_series",
    "open_series",
    "precision",
    "summarise_series",
    "table_radii",
]

log = logging.getLogger("aperflow.timeseries")

#: stamp pixels outside the frame (internal to this module, beside the PIXEL_* bits)
_PIXEL_OUTSIDE = np.uint8(128)
_SECONDS_PER_DAY = 86400.0
_C_KM_S = 299792.458


# ----------------------------------------------------------------------------- options


@dataclass
class TimeseriesOptions:
    """Options of the time-series mode (the ``timeseries:`` config block, documented in
    config/README.md); every field has the default a config without the block gets."""

    radii: list[float] = field(default_factory=lambda: [3.0, 4.0, 5.0, 6.0, 8.0])
    batch_size: int = 256
    ramp_groups: tuple[int, int] = (0, -1)
    gain: float | None = None
    zeropoint: float | None = None
    background_method: str = "annulus"
    annulus: tuple[float, float] = (12.0, 20.0)
    statistic: str = "median"
    sigma: float = 3.0
    maxiters: int = 5
    min_sky_pixels: int = 20
    box: int = 10
    fwhm: float | None = None  #: None = "auto": estimated from the data per file
    template: str | None = None
    follow: str = "gaussian"
    max_shift: float = 3.0
    maxiter: int = 50
    exclude_saturated: bool = False
    plot_bin: int = 10
    plot_max_points: int = 2000
    target_x: float | None = None
    target_y: float | None = None
    target_ra: float | None = None
    target_dec: float | None = None

    @classmethod
    def from_mapping(cls, options: Mapping | None) -> TimeseriesOptions:
        """Build from the merged options dict of a data set (missing keys: defaults).

        Raises
        ------
        ValueError
            When a value is out of range, naming the key.
        """
        o = dict(options or {})
        bg = dict(o.get("background") or {})
        cen = dict(o.get("centroid") or {})
        target = dict(o.get("target") or {})
        plots = dict(o.get("plots") or {})
        d = cls()
        out = cls(
            radii=sorted(float(r) for r in o.get("radii", d.radii)),
            batch_size=int(o.get("batch_size", d.batch_size)),
            ramp_groups=tuple(int(g) for g in o.get("ramp_groups", d.ramp_groups)),
            gain=_opt_float(o.get("gain")),
            zeropoint=_opt_float(o.get("zeropoint")),
            background_method=str(bg.get("method", d.background_method)),
            annulus=tuple(float(r) for r in bg.get("annulus", d.annulus)),
            statistic=str(bg.get("statistic", d.statistic)),
            sigma=float(bg.get("sigma", d.sigma)),
            maxiters=int(bg.get("maxiters", d.maxiters)),
            min_sky_pixels=int(bg.get("min_pixels", d.min_sky_pixels)),
            box=int(cen.get("box", d.box)),
            fwhm=_fwhm_option(cen.get("fwhm", "auto")),
            template=cen.get("template", d.template),
            follow=str(cen.get("follow", d.follow)),
            max_shift=float(cen.get("max_shift", d.max_shift)),
            maxiter=int(cen.get("maxiter", d.maxiter)),
            exclude_saturated=bool(cen.get("exclude_saturated", d.exclude_saturated)),
            plot_bin=int(plots.get("bin", d.plot_bin)),
            plot_max_points=int(plots.get("max_points", d.plot_max_points)),
            target_x=_opt_float(target.get("x")),
            target_y=_opt_float(target.get("y")),
            target_ra=_opt_float(target.get("ra")),
            target_dec=_opt_float(target.get("dec")),
        )
        out.validate()
        return out

    def validate(self) -> None:
        """Raise ValueError naming the first option that is out of range."""
        checks = [
            (len(self.radii) > 0 and min(self.radii) > 0, "timeseries.radii must be > 0"),
            (self.batch_size >= 1, "timeseries.batch_size must be >= 1"),
            (len(self.ramp_groups) == 2, "timeseries.ramp_groups needs two group indices"),
            (
                self.background_method in ("annulus", "median"),
                "timeseries.background.method must be 'annulus' or 'median'",
            ),
            (
                len(self.annulus) == 2 and 0 <= self.annulus[0] < self.annulus[1],
                "timeseries.background.annulus must be [inner, outer] with inner < outer",
            ),
            (
                self.statistic in ("median", "mean"),
                "timeseries.background.statistic must be 'median' or 'mean'",
            ),
            (self.sigma > 0, "timeseries.background.sigma must be > 0"),
            (self.box >= 2, "timeseries.centroid.box must be >= 2"),
            (self.fwhm is None or self.fwhm > 0, "timeseries.centroid.fwhm must be > 0"),
            (
                self.follow in ("gaussian", "cc", "com", "fixed"),
                "timeseries.centroid.follow must be gaussian, cc, com or fixed",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def _opt_float(value) -> float | None:
    return None if value is None else float(value)


def _fwhm_option(value) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"timeseries.centroid.fwhm must be a number of pixels or 'auto', not {value!r}"
        ) from None


# ------------------------------------------------------------------------------ times


@dataclass
class IntegrationTimes:
    """Mid-times of the integrations of one file.

    ``bjd_tdb`` is in MJD form (BJD_TDB - 2400000.5), like JWST's ``INT_TIMES``; NaN when
    unknown. ``source`` says where ``mjd_utc`` came from, ``bjd_source`` how BJD was had.
    """

    mjd_utc: np.ndarray
    bjd_tdb: np.ndarray
    integration: np.ndarray
    source: str
    bjd_source: str
    exposure: float | None  #: seconds per integration, when known


def integration_times(
    hdul: fits.HDUList,
    header: fits.Header,
    nints: int,
    target: tuple[float, float] | None = None,
) -> IntegrationTimes:
    """Mid-times of the ``nints`` integrations of a file (see the module docstring).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The open file (for the ``INT_TIMES`` table).
    header : astropy.io.fits.Header
        Primary and science headers merged.
    nints : int
        Integrations in this file (a segment may hold part of an exposure: ``INTSTART``).
    target : (ra, dec) in degrees, optional
        For the barycentric correction when ``INT_TIMES`` has no BJD_TDB.
    """
    first = int(header.get("INTSTART", 1) or 1)
    number = first + np.arange(nints)
    mjd, bjd = _int_times_table(hdul, number)
    source = "INT_TIMES"
    if mjd is None:
        mjd, source = _split_exposure(header, number, nints)
    exposure = _integration_exposure(header, nints)
    bjd_source = "INT_TIMES"
    if bjd is None:
        bjd = np.full(nints, np.nan)
        bjd_source = "none (no target coordinates)"
        if target is not None and np.isfinite(mjd).any():
            bjd, bjd_source = barycentric_times(mjd, target[0], target[1], header)
    return IntegrationTimes(mjd, bjd, number, source, bjd_source, exposure)


def _int_times_table(hdul, number):
    """MJD UTC and BJD TDB mid-times from ``INT_TIMES`` matched by integration number."""
    if "INT_TIMES" not in hdul:
        return None, None
    tab = hdul["INT_TIMES"].data
    if tab is None or len(tab) == 0 or "int_mid_MJD_UTC" not in tab.names:
        return None, None
    nums = np.asarray(tab["integration_number"]) if "integration_number" in tab.names else None
    if nums is not None and np.isin(number, nums).all():
        order = {int(n): i for i, n in enumerate(nums)}
        rows = np.array([order[int(n)] for n in number])
    elif len(tab) == len(number):
        rows = np.arange(len(number))
    else:
        return None, None
    mjd = np.asarray(tab["int_mid_MJD_UTC"], dtype=float)[rows]
    bjd = None
    if "int_mid_BJD_TDB" in tab.names:
        bjd = np.asarray(tab["int_mid_BJD_TDB"], dtype=float)[rows]
        if not (np.isfinite(bjd) & (bjd > 0)).all():
            bjd = None
    return mjd, bjd


def _isot_mjd(date: str, time: str | None = None) -> float | None:
    from astropy.time import Time

    text = str(date).strip()
    if "T" not in text and time:
        text = f"{text}T{str(time).strip()}"
    try:
        return float(Time(text, format="isot", scale="utc").mjd)
    except ValueError:
        return None


def _exposure_bounds(header) -> tuple[float | None, float | None, str]:
    """Start and end of the exposure in MJD UTC, and which keywords gave them."""
    start, end = _header_number(header, "EXPSTART"), _header_number(header, "EXPEND")
    if start is not None and end is not None and end > start:
        return start, end, "EXPSTART/EXPEND"
    if "DATE-BEG" in header and "DATE-END" in header:
        s, e = _isot_mjd(header["DATE-BEG"]), _isot_mjd(header["DATE-END"])
        if s is not None and e is not None and e > s:
            return s, e, "DATE-BEG/DATE-END"
    source = next((k for k in ("EXPSTART", "MJD-BEG", "MJD-OBS") if _header_number(header, k)), "")
    start = _header_number(header, source) if source else None
    if start is None and "DATE-OBS" in header:
        start = _isot_mjd(header["DATE-OBS"], header.get("TIME-OBS"))
        source = "DATE-OBS/TIME-OBS"
    if start is None:
        return None, None, "none"
    end = _header_number(header, "EXPEND", "MJD-END")
    if end is None and "TIME-END" in header:
        end = _isot_mjd(header.get("DATE-END", header.get("DATE-OBS", "")), header["TIME-END"])
        if end is not None and end < start:  # TIME-END after midnight
            end += 1.0
    if end is None:
        exptime = _header_number(header, "EXPTIME", "EFFEXPTM", "DURATION")
        if exptime is not None:
            end = start + exptime / _SECONDS_PER_DAY
            source += " + EXPTIME"
    return start, end, source


def _split_exposure(header, number, nints):
    """Integration mid-times from the exposure bounds split evenly over its integrations.

    A segment of a JWST exposure has ``NINTS`` > its own integrations and ``INTSTART``:
    then the bounds are those of the whole exposure; otherwise they are the file's.
    """
    start, end, source = _exposure_bounds(header)
    if start is None:
        log.warning("no time keywords (INT_TIMES, EXPSTART, DATE-OBS): times are NaN")
        return np.full(nints, np.nan), "none"
    total = int(header.get("NINTS", nints) or nints)
    if total > nints and "INTSTART" in header:
        index = number - 1.0  # position of each integration in the exposure
    else:
        total, index = nints, np.arange(nints, dtype=float)
    if end is None:
        log.warning("exposure end unknown: all integrations get the start time")
        return np.full(nints, start), f"{source} (no end)"
    return start + (index + 0.5) * (end - start) / total, f"{source} split over NINTS"


def _integration_exposure(header, nints: int) -> float | None:
    """Seconds of exposure per integration: EFFINTTM, else the exposure time over NINTS."""
    per_int = _header_number(header, "EFFINTTM", "INTTIME")
    if per_int is not None:
        return per_int
    total = _header_number(header, "EFFEXPTM", "EXPTIME")
    return None if total is None else total / int(header.get("NINTS", nints) or nints)


def _header_number(header, *keys: str) -> float | None:
    """The first of ``keys`` holding a finite, positive number."""
    for key in keys:
        try:
            value = float(header[key])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return None


def barycentric_times(mjd_utc, ra: float, dec: float, header: Mapping | None = None):
    """BJD_TDB (MJD form) of UTC mid-times for a target at ``ra``, ``dec`` (degrees).

    The observer's position: JWST's barycentric ``JWST_X/Y/Z`` (km, with the velocities
    ``JWST_DX/DY/DZ`` at ``EPH_TIME``) when the header has them; else a ground observatory's
    ``OBSGEO-X/Y/Z`` (m, ITRS); else the geocentre (error up to ~5 s at L2, ~0.02 s on
    the ground). The delay is the Roemer term ``r . n / c`` (astropy's
    ``Time.light_travel_time``).

    Returns
    -------
    bjd : ndarray
        BJD_TDB - 2400000.5.
    source : str
        Which observer position was used.
    """
    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    header = header or {}
    mjd = np.asarray(mjd_utc, dtype=float)
    coord = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    ok = np.isfinite(mjd)
    bjd = np.full(mjd.shape, np.nan)
    if not ok.any():
        return bjd, "none (no times)"
    if all(f"JWST_{a}" in header for a in "XYZ"):
        r = np.array([float(header[f"JWST_{a}"]) for a in "XYZ"])  # km, barycentric
        v = np.array([float(header.get(f"JWST_D{a}", 0.0) or 0.0) for a in "XYZ"])  # km/s
        t_eph = float(header.get("EPH_TIME", np.nanmean(mjd[ok])) or np.nanmean(mjd[ok]))
        pos = r[None, :] + v[None, :] * ((mjd[ok] - t_eph) * _SECONDS_PER_DAY)[:, None]
        n_hat = coord.cartesian.xyz.value
        ltt = pos @ n_hat / _C_KM_S  # seconds
        t = Time(mjd[ok], format="mjd", scale="utc")
        bjd[ok] = t.tdb.mjd + ltt / _SECONDS_PER_DAY
        return bjd, "JWST_X/Y/Z barycentric position"
    if all(f"OBSGEO-{a}" in header for a in "XYZ"):
        loc = EarthLocation.from_geocentric(*(float(header[f"OBSGEO-{a}"]) for a in "XYZ"), u.m)
        source = "OBSGEO-X/Y/Z observatory"
    else:
        loc = EarthLocation.from_geocentric(0.0, 0.0, 0.0, u.m)
        source = "geocentre"
    t = Time(mjd[ok], format="mjd", scale="utc", location=loc)
    bjd[ok] = (t.tdb + t.light_travel_time(coord)).mjd
    return bjd, source


# ----------------------------------------------------------------------------- reading


@dataclass
class IntegrationBatch:
    """Up to ``batch_size`` consecutive integrations of one file (a window of the frame).

    ``data`` and ``error`` are float64 ``(n, ny, nx)`` (NaN where a pixel is bad; error
    None without ERR); ``flags`` are the aperflow pixel flags; ``start`` is the index of
    the first integration in the file, ``x0``/``y0`` the window's origin in the frame.
    """

    start: int
    data: np.ndarray
    error: np.ndarray | None
    flags: np.ndarray
    x0: int = 0
    y0: int = 0


class IntegrationSeries:
    """One file as a sequence of integrations, read lazily (use :func:`open_series`).

    Attributes
    ----------
    path : str
    header : astropy.io.fits.Header
        Primary and science headers merged.
    meta : aperflow.images.ImageMeta
    wcs : astropy.wcs.WCS or None
    nints : int
        Integrations in the file.
    shape : (ny, nx)
    layout : str
        ``'cube'``, ``'ramp'`` or ``'image'``.
    is_surface_brightness : bool
    area : ndarray or None
        Pixel area map (applied to data and error of surface-brightness data).
    """

    def __init__(
        self,
        path: str | Path,
        dq_bad=None,
        dq_saturated=None,
        dq_cosmic_ray=None,
        saturation: float | None = None,
        ramp_groups: Sequence[int] = (0, -1),
    ):
        self.path = str(path)
        self._dq_opts = (dq_bad, dq_saturated, dq_cosmic_ray)
        try:
            self._hdul = fits.open(
                self.path, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True
            )
        except FileNotFoundError:
            raise ImageError(f"{self.path}: file not found") from None
        except Exception as exc:
            raise ImageError(f"{self.path}: not a readable FITS file ({exc})") from None
        try:
            self._setup(saturation, ramp_groups)
        except ImageError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ImageError(f"{self.path}: cannot read the science data ({exc})") from None

    def _setup(self, saturation, ramp_groups):
        hdul = self._hdul
        sci = _find_science_hdu(hdul, self.path)
        self._sci = hdul[sci]
        shape = tuple(self._sci.shape)
        if not shape:
            raise ImageError(f"{self.path}: the science extension holds no data")
        self.header = _merged_header(hdul, sci)
        self.meta = read_meta(self.header, self.path, shape)
        self.wcs = _celestial_wcs(self._sci.header) or _celestial_wcs(self.header)
        self.layout, self.nints = {2: "image", 3: "cube", 4: "ramp"}.get(len(shape), ""), 1
        if not self.layout:
            raise ImageError(f"{self.path}: science data of shape {shape}; expected 2-D to 4-D")
        if self.layout != "image":
            self.nints = shape[0]
        if self.layout == "ramp":
            ng = shape[1]
            g = [int(k) % ng if -ng <= int(k) < ng else None for k in ramp_groups]
            if None in g or g[0] == g[1]:
                raise ImageError(
                    f"{self.path}: ramp_groups {list(ramp_groups)} are not two different "
                    f"groups of the {ng} in each integration"
                )
            self._groups = (g[0], g[1])
        self.shape = shape[-2:]
        if min(self.shape) < 2:
            raise ImageError(f"{self.path}: frames of shape {self.shape} are too small")
        ext = lambda name, sh: _ext(hdul, name, sci, sh)  # noqa: E731
        self._err = ext("ERR", shape) if self.layout != "ramp" else None
        self._dq = ext("DQ", shape) if self.layout != "ramp" else ext("PIXELDQ", self.shape)
        self._groupdq = ext("GROUPDQ", shape) if self.layout == "ramp" else None
        self.is_surface_brightness = self.meta.bunit.strip().lower() in {"mjy/sr", "mjy / sr"}
        area = ext("AREA", self.shape)
        self.area = None
        if area is not None and self.is_surface_brightness:
            self.area = _scaled(area).astype(np.float64)
        if saturation is None and self.meta.saturation is None:
            stored = _scaled(self._sci, lambda a: a[(0,) * (len(shape) - 2)][:1, :1])
            if stored.dtype.kind == "u":  # an unsigned ADC saturates at its top
                saturation = float(np.iinfo(stored.dtype).max)
        self.saturation = saturation if saturation is not None else self.meta.saturation

    @property
    def has_error(self) -> bool:
        return self._err is not None and self.layout != "ramp"

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self) -> IntegrationSeries:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def batches(
        self,
        size: int,
        window: tuple[int, int, int, int] | None = None,
        first: int = 0,
        stop: int | None = None,
    ) -> Iterator[IntegrationBatch]:
        """Yield the integrations ``size`` at a time.

        Parameters
        ----------
        size : int
            Integrations per batch (the memory bound).
        window : (y0, y1, x0, x1), optional
            Read only these rows and columns of each frame (clipped to the frame).
        first, stop : int, optional
            Only integrations ``first`` to ``stop - 1`` (default: all).
        """
        ny, nx = self.shape
        y0, y1, x0, x1 = window if window is not None else (0, ny, 0, nx)
        y0, x0 = max(int(y0), 0), max(int(x0), 0)
        y1, x1 = min(int(y1), ny), min(int(x1), nx)
        rows, cols = slice(y0, y1), slice(x0, x1)
        last = self.nints if stop is None else min(stop, self.nints)
        for start in range(first, last, size):
            yield self._read(start, min(start + size, last), rows, cols)

    @staticmethod
    def _plane(hdu, start, stop, rows, cols, group=None) -> np.ndarray:
        """Rows/columns of integrations start..stop of a (memory-mapped) HDU, scaled:
        only that part is copied into memory."""
        ndim = len(hdu.shape)
        if ndim == 2:
            return _scaled(hdu, lambda a: a[rows, cols])[None]
        if ndim == 4:
            return _scaled(hdu, lambda a: a[start:stop, group, rows, cols])
        return _scaled(hdu, lambda a: a[start:stop, rows, cols])

    def _read(self, start, stop, rows, cols) -> IntegrationBatch:
        err = None
        if self.layout == "ramp":
            g0, g1 = self._groups
            first = self._plane(self._sci, start, stop, rows, cols, g0).astype(np.float64)
            last = self._plane(self._sci, start, stop, rows, cols, g1).astype(np.float64)
            data = last - first
        else:  # _plane gives a fresh array already: no second copy when its type fits
            data = self._plane(self._sci, start, stop, rows, cols).astype(np.float64, copy=False)
            if self._err is not None:
                err = self._plane(self._err, start, stop, rows, cols)
                err = err.astype(np.float64, copy=False)
        dq = None
        if self._dq is not None:
            dq = self._plane(self._dq, start, stop, rows, cols).astype(np.uint32, copy=False)
            if dq.shape != data.shape:  # a 2-D PIXELDQ applies to every integration
                dq = np.broadcast_to(dq, data.shape)
        meta = self.meta
        level = self.saturation
        if self.layout == "ramp":
            meta = dataclasses.replace(meta, saturation=None)
            level = None  # judged on the raw groups below, not on the difference
        dq_bad, dq_sat, dq_cr = self._dq_opts
        pix = _pixel_flags(data, err, dq, meta, dq_bad, dq_sat, dq_cr, level)
        if self.layout == "ramp":
            pix |= self._ramp_flags(start, stop, rows, cols, last, meta)
        if self.area is not None:
            area = self.area[rows, cols]
            data *= area
            if err is not None:
                err *= area
        bad = (pix & PIXEL_BAD) != 0
        if bad.any():
            data[bad] = np.nan
        return IntegrationBatch(start, data, err, pix, cols.start, rows.start)

    def _ramp_flags(self, start, stop, rows, cols, last, meta):
        """Saturation of a ramp from the raw value of its last used group (and GROUPDQ)."""
        flags = np.zeros(last.shape, dtype=np.uint8)
        if self.saturation is not None:
            flags[last >= self.saturation] |= PIXEL_SATURATED
        if self._groupdq is not None:
            tel = meta.telescope if meta.telescope in DEFAULT_DQ else "JWST"
            sat = dq_bitmask(self._dq_opts[1] or DEFAULT_DQ[tel]["saturated"], tel)
            cr = dq_bitmask(self._dq_opts[2] or DEFAULT_DQ[tel]["cosmic_ray"], tel)
            gdq = np.zeros(last.shape, dtype=np.uint32)
            for g in self._groups:  # two groups, not a loop over pixels or frames
                plane = self._plane(self._groupdq, start, stop, rows, cols, g)
                gdq |= plane.astype(np.uint32)
            flags[(gdq & sat) != 0] |= PIXEL_SATURATED
            flags[(gdq & cr) != 0] |= PIXEL_COSMIC_RAY
        return flags


def open_series(path: str | Path, **kwargs) -> IntegrationSeries:
    """Open a FITS file as a sequence of integrations (see :class:`IntegrationSeries`).

    Keyword arguments: ``dq_bad``, ``dq_saturated``, ``dq_cosmic_ray``, ``saturation`` (as
    :func:`aperflow.images.open_image`) and ``ramp_groups`` (the two groups differenced in
    a level-1b ramp, default ``(0, -1)``).

    Raises
    ------
    ImageError
        When the file cannot be read or holds no usable science data.
    """
    return IntegrationSeries(path, **kwargs)


# -------------------------------------------------------------------------- background


@dataclass
class Background:
    """Background per integration.

    ``level`` per pixel; ``std`` the scatter of the pixels used (clipped); ``noise`` the
    per-pixel noise for the errors (``std`` de-biased for the clipping, as the field
    engine does: :func:`aperflow.photometry.clipped_std_correction`); ``n`` the pixels
    used and ``n_eff = n / f`` their effective number for the level's error, with the
    statistic's variance factor ``f`` (1 mean, pi/2 median); ``error = noise / sqrt(n_eff)``.
    """

    level: np.ndarray
    error: np.ndarray
    std: np.ndarray
    noise: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray


def _background(level, std, n, statistic: str, correction: float = 1.0) -> Background:
    noise = std / correction
    n_eff = n / SKY_VARIANCE_FACTOR[statistic]
    with np.errstate(divide="ignore", invalid="ignore"):
        error = noise / np.sqrt(n_eff)
    return Background(level, error, std, noise, n, n_eff)


def _clipped_rows(values: np.ndarray, use: np.ndarray, sigma: float, maxiters: int):
    """Sigma-clipped statistics of the finite ``values`` where ``use`` in each row, through
    the field engine's sort-based :func:`aperflow.photometry.clipped_stats_sorted`
    (astropy's rule)."""
    use = use & np.isfinite(values)
    count = use.sum(axis=1)
    ordered = np.sort(np.where(use, values, np.inf), axis=1)
    # Only the first `count` of a row are read or can pass the clip: the +inf tail past
    # the longest row is dropped, and with it work in every clipping iteration.
    ordered = ordered[:, : max(int(count.max(initial=0)), 1)]
    return clipped_stats_sorted(ordered, count, sigma, maxiters)


def annulus_background(
    frames: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    r_in: float,
    r_out: float,
    statistic: str = "median",
    sigma: float = 3.0,
    maxiters: int = 5,
) -> Background:
    """Sigma-clipped background of each frame in an annulus around ``(x[k], y[k])``.

    A pixel belongs to the annulus when its centre lies at ``r_in <= d < r_out`` (as the
    field engine's local sky); NaN pixels are left out. ``statistic`` is ``'median'`` or
    ``'mean'`` of the clipped values.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc, yc = np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)
    # Only the pixels that can be in the annulus for a centre within half a pixel of the
    # nearest pixel are gathered: a ring of offsets, about half the pixels of a square.
    oy, ox = _ring_offsets(r_in, r_out)
    values, inside = _ring_values(frames, xc, yc, oy, ox)
    # Squared distances from the few distinct column and row offsets, then gathered.
    h = int(max(np.abs(ox).max(), np.abs(oy).max()))
    span = np.arange(-h, h + 1)
    dx2 = ((xc[:, None] + span) - x[:, None]) ** 2
    dy2 = ((yc[:, None] + span) - y[:, None]) ** 2
    d2 = dx2[:, ox + h] + dy2[:, oy + h]
    use = (d2 >= r_in * r_in) & (d2 < r_out * r_out)
    if inside is not None:
        use &= inside
    mean, median, std, count = _clipped_rows(values, use, sigma, maxiters)
    level = median if statistic == "median" else mean
    return _background(level, std, count, statistic, clipped_std_correction(sigma))


def _ring_values(frames, xc, yc, oy, ox) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels ``(yc + oy, xc + ox)`` of each frame (n, m) and which lie on the frame (None
    when all do: then one gather through flat indices, several times faster)."""
    n, ny, nx = frames.shape
    if (
        n
        and yc.min() + oy.min() >= 0
        and yc.max() + oy.max() < ny
        and xc.min() + ox.min() >= 0
        and xc.max() + ox.max() < nx
    ):
        flat = ((np.arange(n) * ny + yc) * nx + xc)[:, None] + (oy * nx + ox)[None, :]
        return np.ravel(frames)[flat], None
    rows, cols = yc[:, None] + oy[None, :], xc[:, None] + ox[None, :]
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    values = frames[np.arange(n)[:, None], np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)]
    return values, inside


def _ring_offsets(r_in: float, r_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets whose centre can fall in the annulus when the centre moves by up to
    half a pixel in x and y (sqrt(0.5) in distance)."""
    h = int(math.ceil(r_out)) + 1
    oy, ox = np.mgrid[-h : h + 1, -h : h + 1]
    d = np.hypot(ox, oy)
    keep = (d >= r_in - 0.7072) & (d < r_out + 0.7072)
    return oy[keep], ox[keep]


def frame_background(frames: np.ndarray) -> Background:
    """The median of each whole frame (seed 002), with the MAD-based scatter (x1.4826)."""
    flat = np.asarray(frames, dtype=float).reshape(len(frames), -1)
    with np.errstate(all="ignore"), _quiet_nan():
        level = np.nanmedian(flat, axis=1)
        std = 1.4826 * np.nanmedian(np.abs(flat - level[:, None]), axis=1)
    n = np.isfinite(flat).sum(axis=1)
    return _background(level, std, n, "median")


@contextlib.contextmanager
def _quiet_nan():
    """Silence numpy's all-NaN-slice warnings: an empty frame is flagged, not warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# -------------------------------------------------------------------------- photometry


def aperture_sums(
    frames: np.ndarray,
    errors: np.ndarray | None,
    pixel_flags: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    radii: Sequence[float],
) -> dict[str, np.ndarray]:
    """Exact-overlap sums in circles of ``radii`` around ``(x[k], y[k])`` of each frame.

    Bad (NaN) pixels are left out of the sums and raise ``MASKED``; saturated and
    cosmic-ray pixels stay in and raise ``SATURATED``/``COSMIC_RAY``; apertures reaching
    past the frame raise ``EDGE``.

    Returns
    -------
    dict
        ``sum`` (n, R) of the pixels (already background-subtracted), ``var_sum``
        ``sum (w err)^2`` (NaN without errors), ``w2_sum`` ``sum w^2 data`` (the source
        photon variance over the gain), ``area`` (unmasked overlap area) and ``flags``
        (n, R) of :mod:`aperflow.flags`.
    """
    radii = np.asarray(radii, dtype=float)
    n = len(frames)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    off = ~(np.isfinite(x) & np.isfinite(y))
    x, y = np.where(off, 0.0, x), np.where(off, 0.0, y)
    half = int(math.ceil(radii.max()))
    data, sx0, sy0 = extract_stamps(frames, x, y, half)
    pix, _, _ = extract_stamps(pixel_flags, x, y, half, fill=_PIXEL_OUTSIDE)
    # Exact overlaps from the field engine, one radius at a time (a handful), each
    # centred in the stamp of the largest radius.
    fx, fy = x - (sx0 + half), y - (sy0 + half)
    size = 2 * half + 1
    weights = np.zeros((n, len(radii), size, size))
    for k, radius in enumerate(radii):
        h = int(math.ceil(radius))
        weights[:, k, half - h : half + h + 1, half - h : half + h + 1] = aperture_weights(
            fx, fy, radius, method="exact"
        )
    touched = weights > 0
    outside = (pix & _PIXEL_OUTSIDE) != 0
    usable = np.isfinite(data) & ~outside
    if usable.all():  # the usual case: the weights and data as they are
        w, d = weights.reshape(n, len(radii), -1), data.reshape(n, -1, 1)
    else:
        w = np.where(usable[:, None], weights, 0.0).reshape(n, len(radii), -1)
        d = np.where(usable, data, 0.0).reshape(n, -1, 1)
    total = np.matmul(w, d)[:, :, 0]
    w2 = w * w
    w2_sum = np.matmul(w2, d)[:, :, 0]
    area = w.sum(axis=2)
    var = np.full(total.shape, np.nan)
    if errors is not None:
        e, _, _ = extract_stamps(errors, x, y, half)
        e = np.where(usable, e, 0.0).reshape(n, -1, 1)
        var = np.matmul(w2, e * e)[:, :, 0]
    fl = np.zeros(total.shape, dtype=np.int64)

    def any_in(mask):
        if not mask.any():  # the usual case: no such pixel near the star in any frame
            return np.zeros(total.shape, dtype=bool)
        return (touched & mask[:, None]).any(axis=(2, 3))

    fl |= np.where(any_in(~usable & ~outside), F.MASKED, 0)
    fl |= np.where(any_in(outside), F.EDGE, 0)
    fl |= np.where(any_in(((pix & PIXEL_SATURATED) != 0) & ~outside), F.SATURATED, 0)
    fl |= np.where(any_in(((pix & PIXEL_COSMIC_RAY) != 0) & ~outside), F.COSMIC_RAY, 0)
    fl[off] |= F.OFF_IMAGE
    for arr in (total, var, w2_sum, area):
        arr[off] = np.nan
    return {"sum": total, "var_sum": var, "w2_sum": w2_sum, "area": area, "flags": fl}


# ------------------------------------------------------------------- one file, measured


def _target_position(series: IntegrationSeries, opts: TimeseriesOptions):
    """The star's expected position: config x/y, else config or header RA/Dec through
    the WCS; None when neither gives a position on the frame."""
    ny, nx = series.shape
    if opts.target_x is not None and opts.target_y is not None:
        return opts.target_x, opts.target_y, "config target x/y"
    for ra, dec, what in (
        (opts.target_ra, opts.target_dec, "config target ra/dec"),
        (series.meta.target_ra, series.meta.target_dec, "header TARG_RA/TARG_DEC"),
    ):
        if ra is None or dec is None or series.wcs is None:
            continue
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        px, py = series.wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
        if -0.5 <= px <= nx - 0.5 and -0.5 <= py <= ny - 0.5:
            return float(px), float(py), what
    return None


def _first_median(series: IntegrationSeries, nmax: int, window=None):
    """Median of the first ``nmax`` integrations (of the window around a known target, or
    of whole frames to find the star): a clean picture of it, and the window's origin."""
    batch = next(series.batches(nmax, window))
    with _quiet_nan():
        return np.nanmedian(batch.data, axis=0), batch.x0, batch.y0


def _brightest_position(median: np.ndarray, fwhm: float):
    """The peak of the smoothed median frame (when no target position is given)."""
    from scipy.ndimage import gaussian_filter

    with _quiet_nan():
        med = np.nan_to_num(median - np.nanmedian(median), nan=0.0)
    smooth = gaussian_filter(med, fwhm / 2.3548)
    iy, ix = np.unravel_index(np.argmax(smooth), smooth.shape)
    return float(ix), float(iy)


def estimate_fwhm(median: np.ndarray, x: float, y: float, box: int) -> float:
    """Effective FWHM (pixels) of the star near ``(x, y)`` in a clean (median) frame.

    The area ``N`` of the region at or above half the peak (above the stamp's border
    level), holes filled, taken as the 8-connected part containing the peak, gives
    ``FWHM = 2 sqrt(N / pi)`` (exact for a well-sampled Gaussian). Filling holes makes a
    saturated star whose core reads as a ring count as the broad star it is, so the
    cross-correlation template and the fit start match its size. Clipped to 1..box px.
    """
    from scipy import ndimage

    stamp, _, _ = extract_stamps(median[None], np.array([x]), np.array([y]), box)
    stamp = stamp[0]
    border = np.concatenate([stamp[0], stamp[-1], stamp[1:-1, 0], stamp[1:-1, -1]])
    with _quiet_nan():
        stamp = np.nan_to_num(stamp - np.nanmedian(border), nan=0.0)
    peak = stamp.max()
    if not peak > 0:
        return 2.0
    mask = ndimage.binary_fill_holes(stamp >= 0.5 * peak)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    iy, ix = np.unravel_index(np.argmax(stamp), stamp.shape)
    npix = int((labels == labels[iy, ix]).sum())
    return float(np.clip(2.0 * np.sqrt(npix / np.pi), 1.0, box))


def _read_template(path: str | None) -> np.ndarray | None:
    """A PSF image for the cross-correlation: the DET_SAMP HDU (WebbPSF) or the first
    2-D image of the file."""
    if not path:
        return None
    with fits.open(path) as hdul:
        if "DET_SAMP" in hdul:
            return np.asarray(hdul["DET_SAMP"].data, dtype=float)
        for hdu in hdul:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
                return np.asarray(hdu.data, dtype=float)
    raise ValueError(f"timeseries.centroid.template: {path} holds no 2-D image")


def _window(series, opts, x, y, local: bool = False):
    """Rows and columns needed around the target: the whole frame for a frame median
    (unless ``local``: only the star's surroundings are wanted)."""
    if opts.background_method == "median" and not local:
        return None
    reach = max(opts.annulus[1], max(opts.radii)) + 2 * opts.box + 3
    return (int(y - reach), int(y + reach) + 1, int(x - reach), int(x + reach) + 1)


def _log_progress(path, done: int, total: int, reported: int) -> int:
    """Log 'k of n integrations done' at each further tenth: at most ten lines a file."""
    tenth = done * 10 // max(total, 1)
    if tenth > reported:
        log.info("%s: %d of %d integrations done", path, done, total)
    return max(tenth, reported)


def measure_series(
    path: str | Path,
    options: Mapping | TimeseriesOptions | None = None,
    image_options: Mapping | None = None,
    workers: int = 1,
) -> Table:
    """Measure every integration of one file: times, background, centroids, fluxes.

    Parameters
    ----------
    path : str or Path
        A cube, a ramp or a single frame (see the module docstring).
    options : mapping or TimeseriesOptions, optional
        The data set's merged ``timeseries`` options (``target`` included).
    image_options : mapping, optional
        How the file is opened (the ``images`` config block: DQ bits, saturation); a
        data set's own ``images`` block in ``options`` overrides it.
    workers : int
        Processes measuring batches of integrations at once (e.g. a Snakemake job's
        ``threads``); 1 measures in this process. Every integration is measured on its
        own, so the table is the same whatever the number.

    Returns
    -------
    astropy.table.Table
        One row per integration, in file order; columns are described in config/README.md
        (``## timeseries``) and carry units; metadata holds the provenance.

    Raises
    ------
    ImageError
        When the file cannot be used at all.
    """
    opts = (
        options
        if isinstance(options, TimeseriesOptions)
        else TimeseriesOptions.from_mapping(options)
    )
    img = dict(image_options or {})
    if isinstance(options, Mapping) and options.get("images"):
        img = deep_merge(img, options["images"])  # the data set's own images block wins
    open_kwargs = {
        "dq_bad": img.get("dq_bad"),
        "dq_saturated": img.get("dq_saturated"),
        "dq_cosmic_ray": img.get("dq_cosmic_ray"),
        "saturation": img.get("saturation"),
        "ramp_groups": opts.ramp_groups,
    }
    template = _read_template(opts.template)
    with open_series(path, **open_kwargs) as series:
        plan = _plan_series(series, opts)
        job = _SeriesJob(
            str(path),
            open_kwargs,
            plan.opts,
            plan.gx,
            plan.gy,
            template,
            _window(series, plan.opts, plan.gx, plan.gy),
        )
        columns = _measure_integrations(series, job, workers)
    table = _frame_table(columns, series, plan.times, plan.opts, plan.cal, plan.gain)
    table.meta.update(_series_provenance(path, series, plan, opts.fwhm))
    return table


@dataclass
class _SeriesPlan:
    """What is settled for a file before its integrations are measured."""

    opts: TimeseriesOptions  #: with the FWHM (estimated when the options say 'auto')
    gx: float  #: the star's expected position (frame pixels)
    gy: float
    guess_source: str
    radec: tuple[float, float] | None
    times: IntegrationTimes
    cal: object  #: aperflow.calibration.FluxCalibration
    gain: float | None


def _plan_series(series: IntegrationSeries, opts: TimeseriesOptions) -> _SeriesPlan:
    """Star position, FWHM, times, flux calibration and gain of one file."""
    target = _target_position(series, opts)
    near = None if target is None else _window(series, opts, target[0], target[1], True)
    median, mx0, my0 = _first_median(series, min(32, opts.batch_size), near)
    if target is None:
        bx, by = _brightest_position(median, opts.fwhm or 2.0)
        target = (bx + mx0, by + my0, "brightest smoothed pixel")
    gx, gy, guess_source = target
    fwhm = opts.fwhm or estimate_fwhm(median, gx - mx0, gy - my0, opts.box)
    opts = dataclasses.replace(opts, fwhm=fwhm)
    radec = _target_radec(series, opts, gx, gy)
    times = integration_times(series._hdul, series.header, series.nints, radec)
    cal = flux_calibration(series.meta, series.is_surface_brightness, opts.zeropoint)
    gain = _integration_gain(series, times, opts)
    return _SeriesPlan(opts, gx, gy, guess_source, radec, times, cal, gain)


def _series_provenance(path, series, plan: _SeriesPlan, options_fwhm) -> dict:
    """The table metadata of one file (deterministic: nothing about how it was run)."""
    radec, gain = plan.radec, plan.gain
    return provenance(
        input=str(path),
        layout=series.layout,
        unit=plan.cal.unit,
        calibration=plan.cal.note,
        pixel_unit=series.meta.bunit,
        time_source=plan.times.source,
        bjd_source=plan.times.bjd_source,
        target_guess={"x": float(plan.gx), "y": float(plan.gy), "source": plan.guess_source},
        fwhm=float(plan.opts.fwhm),
        fwhm_source="config" if options_fwhm is not None else "estimated (half-maximum area)",
        target_radec=None if radec is None else [float(radec[0]), float(radec[1])],
        radii=[float(r) for r in plan.opts.radii],
        poisson_gain=None if gain is None else float(gain),
        options=dataclasses.asdict(plan.opts),
        comment="0-based pixel coordinates; bjd_tdb is BJD_TDB - 2400000.5",
    )


@dataclass
class _SeriesJob:
    """Everything a process needs to measure any range of a file's integrations."""

    path: str
    open_kwargs: dict
    opts: TimeseriesOptions
    gx: float
    gy: float
    template: np.ndarray | None
    window: tuple[int, int, int, int] | None


def _measure_integrations(series: IntegrationSeries, job: _SeriesJob, workers: int) -> dict:
    """Columns of every integration, in file order: batch by batch in this process, or
    the batches shared between this process and ``workers - 1`` forked ones."""
    size = job.opts.batch_size
    ranges = [(s, min(s + size, series.nints)) for s in range(0, series.nints, size)]
    workers = min(int(workers), len(ranges))
    if workers > 1 and "fork" in mp.get_all_start_methods():
        parts = _measure_in_processes(series, job, ranges, workers)
    else:
        parts, reported = [], 0
        for first, stop in ranges:
            parts.append(_measure_range(series, job, first, stop))
            reported = _log_progress(job.path, stop, series.nints, reported)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _measure_range(series: IntegrationSeries, job: _SeriesJob, first: int, stop: int) -> dict:
    """Columns of integrations ``first`` to ``stop - 1``, read ``batch_size`` at a time."""
    parts = [
        _measure_batch(batch, series, job.opts, job.gx, job.gy, job.template)
        for batch in series.batches(job.opts.batch_size, job.window, first, stop)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


#: the open file and job of a worker process (set by _start_worker)
_WORKER: dict = {}


def _measure_in_processes(series, job: _SeriesJob, ranges, workers: int) -> list[dict]:
    """Measure the ranges in this process and ``workers - 1`` forked ones, in file order.

    The workers take the ranges from the first on, this process from the last back (each
    one no worker has been handed yet: its pending task is cancelled) until they meet, so
    this process does not sit idle while the workers start or work. Each worker opens the
    file itself (a file handle shared across processes would share its read position) and
    holds one batch at a time; only the per-integration columns come back. Forked
    workers start in milliseconds, with everything already imported.
    """
    context = mp.get_context("fork")
    with ProcessPoolExecutor(workers - 1, context, _start_worker, (job,)) as pool:
        tasks = [pool.submit(_measure_in_worker, bounds) for bounds in ranges]
        own: dict[int, dict] = {}
        reported = 0
        for k in range(len(ranges) - 1, -1, -1):
            if not tasks[k].cancel():  # a worker has it: the rest are theirs too
                break
            own[k] = _measure_range(series, job, *ranges[k])
            done = sum(
                stop - first
                for j, (first, stop) in enumerate(ranges)
                if j in own or (tasks[j].done() and not tasks[j].cancelled())
            )
            reported = _log_progress(job.path, done, series.nints, reported)
        return [own[k] if k in own else task.result() for k, task in enumerate(tasks)]


def _start_worker(job: _SeriesJob) -> None:
    _WORKER["series"] = open_series(job.path, **job.open_kwargs)
    _WORKER["job"] = job


def _measure_in_worker(bounds: tuple[int, int]) -> dict:
    return _measure_range(_WORKER["series"], _WORKER["job"], *bounds)


def _target_radec(series, opts, gx, gy):
    """Target coordinates for BJD: config, header TARG_RA/DEC, else the WCS at the star."""
    if opts.target_ra is not None and opts.target_dec is not None:
        return opts.target_ra, opts.target_dec
    if series.meta.target_ra is not None and series.meta.target_dec is not None:
        return series.meta.target_ra, series.meta.target_dec
    if series.wcs is not None:
        sky = series.wcs.pixel_to_world(gx, gy)
        return float(sky.ra.deg), float(sky.dec.deg)
    return None


def _integration_gain(series, times, opts) -> float | None:
    """Detected counts per pixel unit in one integration (for the photon noise)."""
    meta = series.meta
    if times.exposure is not None:
        meta = dataclasses.replace(meta, exptime=times.exposure)
    if series.layout == "ramp" and meta.bunit.strip().lower() in {"dn", "adu", ""}:
        meta = dataclasses.replace(meta, bunit="DN")
    gain = poisson_gain(meta, series.is_surface_brightness, opts.gain)
    return float(gain) if gain else None


def _measure_batch(batch, series, opts, gx, gy, template) -> dict[str, np.ndarray]:
    """Background, centroids and fluxes of one batch (frame coordinates in the output)."""
    frames = batch.data
    lx, ly = gx - batch.x0, gy - batch.y0  # target in window coordinates
    x_cc, y_cc, cc_ok = _cc_centres(frames, lx, ly, opts, template)
    if opts.background_method == "median":
        bkg = frame_background(frames)
    else:
        bkg = annulus_background(
            frames, x_cc, y_cc, *opts.annulus, opts.statistic, opts.sigma, opts.maxiters
        )
    sub = frames - np.nan_to_num(bkg.level, nan=0.0)[:, None, None]
    cen = _fitted_centres(sub, batch, x_cc, y_cc, opts)
    ax, ay, flags = _aperture_centres(cen, x_cc, y_cc, cc_ok, lx, ly, opts.follow)
    sums = aperture_sums(sub, batch.error, batch.flags, ax, ay, opts.radii)
    flags[bkg.n < opts.min_sky_pixels] |= F.SKY_FEW_PIXELS
    flags[~np.isfinite(bkg.level)] |= F.NO_SKY
    ox, oy = batch.x0, batch.y0
    ny, nx = series.shape
    off = ~((ax + ox >= -0.5) & (ax + ox <= nx - 0.5) & (ay + oy >= -0.5) & (ay + oy <= ny - 0.5))
    flags[off] |= F.OFF_IMAGE
    out = {
        "background": bkg.level,
        "background_err": bkg.error,
        "background_std": bkg.std,
        "sky_noise": bkg.noise,
        "n_sky_eff": bkg.n_eff,
        "n_sky": bkg.n,
        "x_cc": x_cc + ox,
        "y_cc": y_cc + oy,
        "x_ap": ax + ox,
        "y_ap": ay + oy,
        "sum": sums["sum"],
        "var_sum": sums["var_sum"],
        "w2_sum": sums["w2_sum"],
        "area": sums["area"],
        "ap_flags": sums["flags"] | flags[:, None],
    }
    out.update(cen)
    for name in ("x_gauss", "x_com"):  # window -> frame coordinates
        out[name] = cen[name] + ox
    for name in ("y_gauss", "y_com"):
        out[name] = cen[name] + oy
    return out


def _cc_centres(frames, lx, ly, opts, template):
    """Cross-correlation centres in a subframe around the target (its border level
    removed first); the target position where a subframe has no data."""
    n = len(frames)
    stamps, sx0, sy0 = extract_stamps(frames, np.full(n, lx), np.full(n, ly), opts.box)
    border = np.concatenate(
        [stamps[:, 0], stamps[:, -1], stamps[:, 1:-1, 0], stamps[:, 1:-1, -1]], axis=1
    )
    if np.isfinite(border).all():  # the usual case; nanmedian is twice as slow
        rough = np.median(border, axis=1)
    else:
        with _quiet_nan():
            rough = np.nan_to_num(np.nanmedian(border, axis=1), nan=0.0)
    cx, cy = cross_correlation_centroids(stamps - rough[:, None, None], template, opts.fwhm)
    ok = np.isfinite(cx)
    return np.where(ok, cx + sx0, lx), np.where(ok, cy + sy0, ly), ok


def _fitted_centres(sub, batch, x_cc, y_cc, opts) -> dict[str, np.ndarray]:
    """2-D Gaussian fit (weighted by ERR when there is one) and centre of mass on the
    background-subtracted subframe centred on the CC position (window coordinates)."""
    stamps, sx0, sy0 = extract_stamps(sub, x_cc, y_cc, opts.box)
    err = None
    if batch.error is not None:
        err, _, _ = extract_stamps(batch.error, x_cc, y_cc, opts.box)
    if opts.exclude_saturated:
        pix, _, _ = extract_stamps(batch.flags, x_cc, y_cc, opts.box, fill=0)
        saturated = (pix & PIXEL_SATURATED) != 0
        if saturated.any():
            stamps = np.where(saturated, np.nan, stamps)
    fit = fit_gaussian_2d(
        stamps, x_cc - sx0, y_cc - sy0, err, opts.fwhm, opts.max_shift, opts.maxiter
    )
    comx, comy = center_of_mass(stamps)
    return {
        "x_gauss": fit.x + sx0,
        "y_gauss": fit.y + sy0,
        "x_gauss_err": fit.x_err,
        "y_gauss_err": fit.y_err,
        "sigma_x": fit.sigma_x,
        "sigma_y": fit.sigma_y,
        "sigma_x_err": fit.sigma_x_err,
        "sigma_y_err": fit.sigma_y_err,
        "theta": np.degrees(fit.theta),
        "theta_err": np.degrees(fit.theta_err),
        "amplitude": fit.amplitude,
        "amplitude_err": fit.amplitude_err,
        "gauss_offset": fit.offset,
        "gauss_chi2": fit.reduced_chi2,
        "x_com": comx + sx0,
        "y_com": comy + sy0,
    }


def _aperture_centres(cen, x_cc, y_cc, cc_ok, lx, ly, follow):
    """The centre the apertures follow, and CENTROID flags where it failed (then the CC
    centre is used, or the target position when the CC failed too)."""
    n = len(x_cc)
    flags = np.where(cc_ok, 0, F.CENTROID).astype(np.int64)
    if follow == "fixed":
        return np.full(n, lx), np.full(n, ly), flags
    x, y = {
        "gaussian": (cen["x_gauss"], cen["y_gauss"]),
        "cc": (np.where(cc_ok, x_cc, np.nan), np.where(cc_ok, y_cc, np.nan)),
        "com": (cen["x_com"], cen["y_com"]),
    }[follow]
    ok = np.isfinite(x) & np.isfinite(y)
    flags[~ok] |= F.CENTROID
    return np.where(ok, x, x_cc), np.where(ok, y, y_cc), flags


def _frame_table(c, series, times, opts, cal, gain) -> Table:
    """Assemble the per-integration table (fluxes calibrated, errors from flux_error)."""
    n = len(c["background"])
    unit = cal.unit
    bunit = series.meta.bunit or None
    t = Table()
    t["image"] = np.full(n, image_id(series.path))
    t["plane"] = np.arange(n)
    t["integration"] = times.integration
    t["mjd_utc"] = times.mjd_utc
    t["mjd_utc"].unit = "d"
    t["bjd_tdb"] = times.bjd_tdb
    t["bjd_tdb"].unit = "d"
    for name in ("background", "background_err", "background_std"):
        t[name] = c[name]
        t[name].unit = _unit_or_none(bunit)
    t["n_sky"] = c["n_sky"].astype(np.int64)
    pix = (
        "x_cc y_cc x_gauss y_gauss x_gauss_err y_gauss_err sigma_x sigma_y sigma_x_err sigma_y_err"
    ).split()
    for name in pix:
        t[name] = c[name]
        t[name].unit = "pix"
    t["theta"], t["theta_err"] = c["theta"], c["theta_err"]
    t["theta"].unit = t["theta_err"].unit = "deg"
    for name in ("amplitude", "amplitude_err", "gauss_offset"):
        t[name] = c[name]
        t[name].unit = _unit_or_none(bunit)
    t["gauss_chi2"] = c["gauss_chi2"]
    for name in ("x_com", "y_com", "x_ap", "y_ap"):
        t[name] = c[name]
        t[name].unit = "pix"
    flags_all = np.zeros(n, dtype=np.int64)
    for k, radius in enumerate(opts.radii):
        lab = radius_label(radius)
        total = c["sum"][:, k]
        var = c["var_sum"][:, k] if series.has_error else None
        err = flux_error(
            c["area"][:, k], c["sky_noise"], c["n_sky_eff"], var_sum=var, flux=total, gain=gain
        )
        photon = np.full(n, np.nan)
        if gain:  # the source's own photon noise: sum w^2 S / g (in quadrature in err)
            photon = np.sqrt(np.clip(c["w2_sum"][:, k], 0.0, None) / gain)
        fl = c["ap_flags"][:, k].copy()
        fl[~(total > 0)] |= F.NONPOSITIVE
        t[f"flux_{lab}"] = total * cal.factor
        t[f"flux_err_{lab}"] = err * cal.factor
        t[f"photon_err_{lab}"] = photon * cal.factor
        for col in ("flux", "flux_err", "photon_err"):
            t[f"{col}_{lab}"].unit = _unit_or_none(unit)
        t[f"area_{lab}"] = c["area"][:, k]
        t[f"area_{lab}"].unit = "pix2"
        t[f"flags_{lab}"] = fl
        flags_all |= fl
    t["flags"] = flags_all
    return t


def _unit_or_none(unit):
    """An astropy unit for a column, or None when the header's unit is not parseable."""
    if not unit:
        return None
    import astropy.units as u

    try:
        return u.Unit(unit, parse_strict="silent") if not isinstance(unit, u.UnitBase) else unit
    except ValueError:
        return None


def failed_series(path: str | Path, error: str) -> Table:
    """The table of a file that could not be measured: no rows, ``meta['error']`` says why."""
    table = Table(names=("image", "plane", "integration"), dtype=(str, np.int64, np.int64))
    table.meta.update(provenance(input=str(path), image=image_id(path), error=error))
    return table


def summarise_series(table: Table) -> list[tuple[int, str]]:
    """Log lines (level, message) for a per-integration table: what was measured, from
    which times, and what went wrong (failed centroids, flagged integrations)."""
    m = table.meta
    n = len(table)
    lines = [
        (
            logging.INFO,
            f"{n} integrations ({m.get('layout')}); times from {m.get('time_source')}, "
            f"BJD from {m.get('bjd_source')}; star guess ({m['target_guess']['x']:.2f}, "
            f"{m['target_guess']['y']:.2f}) from {m['target_guess']['source']}, "
            f"FWHM {m.get('fwhm', float('nan')):.2f} px",
        )
    ]
    if n:
        with _quiet_nan():
            lines.append(
                (
                    logging.INFO,
                    f"median centre ({np.nanmedian(table['x_ap']):.3f}, "
                    f"{np.nanmedian(table['y_ap']):.3f}), median background "
                    f"{np.nanmedian(table['background']):.4g} {m.get('pixel_unit', '')}",
                )
            )
    failed = int((~np.isfinite(np.asarray(table["x_gauss"], dtype=float))).sum()) if n else 0
    if failed:
        lines.append((logging.WARNING, f"Gaussian fit failed in {failed} of {n} integrations"))
    flagged = int(((np.asarray(table["flags"]) & PRECISION_EXCLUDE) != 0).sum()) if n else 0
    if flagged:
        bits = sorted({b for v in np.unique(table["flags"]) for b in F.decode(v)})
        lines.append((logging.WARNING, f"{flagged} integrations flagged ({', '.join(bits)})"))
    return lines


# ------------------------------------------------------------------------ light curves

#: flags that keep an integration out of the precision figures (still in the table)
PRECISION_EXCLUDE = F.MASKED | F.EDGE | F.OFF_IMAGE | F.NO_SKY | F.CENTROID | F.NONPOSITIVE
#: two integrations closer than this (days, ~0.9 ms) have the same time
DUPLICATE_TOLERANCE = 1e-8


def table_radii(table: Table) -> list[float]:
    """Aperture radii of a per-integration or light-curve table, from its flux columns."""
    radii = []
    for name in table.colnames:
        if name.startswith("flux_r"):
            try:
                radii.append(float(name[len("flux_r") :]))
            except ValueError:
                continue
    return sorted(radii)


def light_curve(tables: Sequence[Table]) -> Table:
    """Join the per-integration tables of a data set into its light curve.

    Rows are sorted by time (``bjd_tdb`` when every integration has it, else
    ``mjd_utc``; then file and plane), so unsorted inputs give a sorted curve. Integrations
    with the same time as an earlier one are kept and marked ``duplicate_time``. Per
    radius, ``norm_flux_<r>`` and ``norm_flux_err_<r>`` are the flux and its error over the
    median flux of the usable (finite, positive, not duplicate) integrations.

    Raises
    ------
    ValueError
        When the tables are empty or were measured with different radii.
    """
    tables = [t for t in tables if len(t) > 0]
    if not tables:
        raise ValueError("no integrations to make a light curve from")
    radii = table_radii(tables[0])
    for t in tables[1:]:
        if table_radii(t) != radii:
            raise ValueError(
                f"{t.meta.get('input', '?')}: radii {table_radii(t)} differ from "
                f"{radii} of {tables[0].meta.get('input', '?')}"
            )
    lc = vstack(tables, metadata_conflicts="silent")
    lc.meta = {k: v for k, v in tables[0].meta.items() if k not in ("input", "target_guess")}
    lc.meta["inputs"] = [str(t.meta.get("input", "")) for t in tables]
    bjd = np.asarray(lc["bjd_tdb"], dtype=float)
    time_col = "bjd_tdb" if np.isfinite(bjd).all() else "mjd_utc"
    time = np.asarray(lc[time_col], dtype=float)
    order = np.lexsort((np.asarray(lc["plane"]), np.asarray(lc["image"]), time))
    lc = lc[order]
    time = time[order]
    dup = np.zeros(len(lc), dtype=bool)
    dup[1:] = np.abs(np.diff(time)) < DUPLICATE_TOLERANCE
    lc["duplicate_time"] = dup
    if dup.any():
        log.warning("%d integrations share the time of an earlier one", int(dup.sum()))
    for radius in radii:
        lab = radius_label(radius)
        flux = np.asarray(lc[f"flux_{lab}"], dtype=float)
        good = np.isfinite(flux) & (flux > 0) & ~dup
        ref = float(np.median(flux[good])) if good.any() else np.nan
        lc[f"norm_flux_{lab}"] = flux / ref
        lc[f"norm_flux_err_{lab}"] = np.asarray(lc[f"flux_err_{lab}"], dtype=float) / ref
        lc.meta[f"median_flux_{lab}"] = ref
    lc.meta.update(
        time_column=time_col,
        n_duplicate_times=int(dup.sum()),
        sorted_by=time_col,
    )
    return lc


def precision(lc: Table) -> Table:
    """Measured and expected precision of a light curve, one row per aperture radius.

    Columns
    -------
    radius [pix], n (integrations used: finite, not duplicate, no flag of
    :data:`PRECISION_EXCLUDE`), median_flux, std_ppm (standard deviation of the normalised
    flux), ptp_ppm (point-to-point scatter: the standard deviation of successive
    differences / sqrt(2), insensitive to slow trends and transits), expected_ppm (median relative error
    of the error model: photon + read + sky + sky-level error), photon_ppm (source photon
    noise alone, ``sqrt(sum w^2 S / gain)``, when the gain is known), sky_read_ppm (the rest, in quadrature),
    ptp_over_expected, best (True for the lowest ptp_ppm). ``meta['best_radius']`` names
    the best aperture.
    """
    radii = table_radii(lc)
    rows = []
    dup = np.asarray(lc["duplicate_time"], dtype=bool)
    for radius in radii:
        lab = radius_label(radius)
        norm = np.asarray(lc[f"norm_flux_{lab}"], dtype=float)
        err = np.asarray(lc[f"norm_flux_err_{lab}"], dtype=float)
        flux = np.asarray(lc[f"flux_{lab}"], dtype=float)
        photon = np.asarray(lc[f"photon_err_{lab}"], dtype=float)
        flags = np.asarray(lc[f"flags_{lab}"], dtype=np.int64)
        use = np.isfinite(norm) & ~dup & ((flags & PRECISION_EXCLUDE) == 0)
        if use.sum() < 2:  # everything flagged: report on what there is
            use = np.isfinite(norm) & ~dup
        rows.append(_precision_row(radius, norm[use], err[use], flux[use], photon[use]))
    tab = Table(rows=rows, names=_PRECISION_COLUMNS)
    ptp = np.asarray(tab["ptp_ppm"], dtype=float)
    best = np.zeros(len(tab), dtype=bool)
    if np.isfinite(ptp).any():
        best[int(np.nanargmin(ptp))] = True
    tab["best"] = best
    tab["radius"].unit = "pix"
    tab.meta["best_radius"] = float(tab["radius"][best][0]) if best.any() else None
    tab.meta["comment"] = (
        "ppm of the normalised flux; ptp = std(diff)/sqrt(2); expected from the "
        "error model (photon + read + sky)"
    )
    return tab


_PRECISION_COLUMNS = (
    "radius", "n", "median_flux", "std_ppm", "ptp_ppm", "expected_ppm", "photon_ppm",
    "sky_read_ppm", "ptp_over_expected",
)  # fmt: skip


def _precision_row(radius, norm, err, flux, photon_err):
    n = len(norm)
    std = float(np.std(norm, ddof=1)) * 1e6 if n > 1 else np.nan
    if n > 2:
        ptp = float(np.std(np.diff(norm), ddof=1)) / np.sqrt(2.0) * 1e6
    else:
        ptp = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = float(np.nanmedian(err / norm)) * 1e6 if n else np.nan
        photon_all = photon_err / flux
    photon_ok = np.isfinite(photon_all)
    photon = float(np.median(photon_all[photon_ok])) * 1e6 if photon_ok.any() else np.nan
    sky_read = float(np.sqrt(max(expected**2 - photon**2, 0.0))) if np.isfinite(photon) else np.nan
    ratio = ptp / expected if expected and np.isfinite(expected) else np.nan
    median_flux = float(np.median(flux)) if n else np.nan
    return (float(radius), n, median_flux, std, ptp, expected, photon, sky_read, ratio)
