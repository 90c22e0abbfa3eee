"""The built-in demo data: realistic, seeded simulated images with truth tables.

Four kinds, one per workflow mode, each written into its own folder of ``outdir``:

``field/``
    JWST NIRCam-like level-2 ``*_cal.fits`` (F200W on NRCB1, F444W on NRCBLONG), three
    dithers each, 400x400 (SUB400P): a star field with a power-law luminosity function,
    Moffat PSFs with the seed-000 FWHM per filter, a sky gradient, Poisson and read noise,
    cosmic rays (JUMP_DET), saturated cores (SATURATED), dead pixels (DO_NOT_USE + NaN)
    and a pixel-area map. Truth per file: ``<stem>_truth.ecsv``; CRDS-style aperture
    corrections of the simulated PSF: ``apcorr.ecsv``.
``standard/``
    NIRISS-like ``*_rate.fits`` of one standard star in four filters, SUB64 and SUB128, two
    dithers each, with DQ-flagged bad pixels near the star. Truth per file (position,
    total count rate, EE of the pixel-integrated noiseless star) and the PSF EE per filter.
``timeseries/``
    A NIRCam-like ``*_calints.fits`` time series in two segments with an ``INT_TIMES``
    table, pointing jitter and a transit of known depth. Truth: per-integration position,
    flux and transit model; the transit parameters in the metadata.
``forced/``
    HST ACS-like ``*_drc.fits`` in F606W and F814W (ELECTRONS/S, PHOTFLAM, PHOTPLAM, no
    ERR) with stars and an exponential-disk galaxy, a DS9 region file in sky coordinates
    (labelled circles and an ellipse), a CSV coordinate list, and truth tables.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
files, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from aperflow.images import DQ_BITS
from aperflow.psf import MoffatPSF
from aperflow.tables import write_fits, write_table, write_text

__all__ = [
    "DEMO_KINDS",
    "demo_files",
    "demo_outputs",
    "simulate_demo",
    "simulate_field",
    "simulate_forced",
    "simulate_standard",
    "simulate_timeseries",
]

DEMO_KINDS = ("field", "standard", "timeseries", "forced")
_JW = DQ_BITS["JWST"]

#: NIRCam PSF FWHM in pixels (seed 000, from JDox/WebbPSF).
NIRCAM_FWHM = {"F200W": 2.141, "F444W": 2.302}


@dataclass(frozen=True)
class _Band:
    filter: str
    detector: str
    pixscale: float  # arcsec / pixel
    photmjsr: float  # MJy/sr per DN/s
    fwhm: float  # pixels
    sky: float  # MJy/sr


_FIELD_BANDS = (
    _Band("F200W", "NRCB1", 0.0311, 0.4637, NIRCAM_FWHM["F200W"], 0.18),
    _Band("F444W", "NRCBLONG", 0.0630, 0.3925, NIRCAM_FWHM["F444W"], 0.35),
)
_FIELD_CENTER = (14.77, -72.17)  # deg, near NGC 346
_FIELD_SHAPE = (400, 400)
_FIELD_DITHERS = ((0.0, 0.0), (1.37, 0.83), (-0.91, 1.52))  # arcsec
_GAIN = 2.0  # e-/DN
_EXPTIME = 300.0
_FULL_WELL = 1.0e5  # electrons


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _tan_wcs(center, pixscale, shape, pa_deg=0.0, crpix=None) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(center)
    ny, nx = shape
    w.wcs.crpix = list(crpix) if crpix is not None else [(nx + 1) / 2.0, (ny + 1) / 2.0]
    pa = np.deg2rad(pa_deg)
    s = pixscale / 3600.0
    w.wcs.cd = [[-s * np.cos(pa), s * np.sin(pa)], [s * np.sin(pa), s * np.cos(pa)]]
    w.wcs.cunit = ["deg", "deg"]
    return w


def _time_keywords(mjd_start: float, exptime: float) -> dict:
    t0 = Time(mjd_start, format="mjd", scale="utc")
    return {
        "EXPSTART": (mjd_start, "exposure start [MJD UTC]"),
        "EXPMID": (mjd_start + exptime / 2 / 86400.0, "exposure mid [MJD UTC]"),
        "EXPEND": (mjd_start + exptime / 86400.0, "exposure end [MJD UTC]"),
        "DATE-OBS": (t0.isot[:10], "UTC date at start of exposure"),
        "TIME-OBS": (t0.isot[11:23], "UTC time at start of exposure"),
    }


def _jwst_primary(instrument, detector, filt, pupil, subarray, exptime, mjd, target, extra=None):
    h = fits.Header()
    h["TELESCOP"] = "JWST"
    h["INSTRUME"] = instrument
    h["DETECTOR"] = detector
    h["FILTER"] = filt
    h["PUPIL"] = pupil
    h["SUBARRAY"] = subarray
    h["EXPTYPE"] = "NRC_IMAGE" if instrument == "NIRCAM" else "NIS_IMAGE"
    h["EFFEXPTM"] = (exptime, "effective exposure time [s]")
    h["EXPTIME"] = (exptime, "exposure time [s]")
    h["NINTS"] = 1
    h["NGROUPS"] = 8
    h["TARG_RA"] = target[0]
    h["TARG_DEC"] = target[1]
    h["ORIGIN"] = "aperflow.simulate"
    for key, value in _time_keywords(mjd, exptime).items():
        h[key] = value
    for key, value in (extra or {}).items():
        h[key] = value
    return h


def _sci_header(wcs: WCS, bunit: str, photmjsr: float | None, pixar_sr: float) -> fits.Header:
    h = wcs.to_header()
    h["BUNIT"] = bunit
    if photmjsr is not None:
        h["PHOTMJSR"] = (photmjsr, "MJy/sr per DN/s")
        h["PHOTUJA2"] = (photmjsr * 1e12 / 4.25451702961522e10, "uJy/arcsec2 per DN/s")
    h["PIXAR_SR"] = (pixar_sr, "nominal pixel area [sr]")
    h["PIXAR_A2"] = (pixar_sr * 4.25451702961522e10, "nominal pixel area [arcsec2]")
    return h


def _image_hdus(primary, sci_header, planes: dict) -> fits.HDUList:
    hdus = [fits.PrimaryHDU(header=primary)]
    for name, array in planes.items():
        header = sci_header.copy() if name in ("SCI", "ERR") else fits.Header()
        if name not in ("SCI", "ERR"):
            header["BUNIT"] = "" if name in ("DQ", "AREA") else sci_header["BUNIT"]
        hdus.append(fits.ImageHDU(array, header=header, name=name))
    return fits.HDUList(hdus)


def _area_map(shape, amplitude=0.03, tilt=(0.2, -0.1)) -> np.ndarray:
    """Smooth relative pixel area: a quadratic bowl plus a tilt, about 1 +- 3 %."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    u_, v_ = (xx - nx / 2) / nx, (yy - ny / 2) / ny
    return (
        1.0 + amplitude * (u_**2 + v_**2) * 4 - amplitude * (tilt[0] * u_ + tilt[1] * v_)
    ).astype(np.float32)


def _observe(rate_e, rng, read_noise_e, exptime):
    """Electron rate image -> noisy electrons, Poisson and read variances (electrons^2)."""
    expected = np.clip(rate_e * exptime, 0, None)
    counts = rng.poisson(expected).astype(float) + rng.normal(0.0, read_noise_e, expected.shape)
    return counts, expected, np.full(expected.shape, read_noise_e**2)


# --------------------------------------------------------------------------- field


def _star_field(rng, n, radius_arcsec, fmin=2.0e-8, fmax=1.5e-4, slope=0.45):
    """Uniform stars in a disc with dN/dlogF ~ F^-slope (a power-law luminosity function)."""
    r = radius_arcsec * np.sqrt(rng.random(n))
    phi = 2 * np.pi * rng.random(n)
    dra = r * np.cos(phi) / 3600.0 / np.cos(np.deg2rad(_FIELD_CENTER[1]))
    ddec = r * np.sin(phi) / 3600.0
    u_ = rng.random(n)
    a, b = fmin**-slope, fmax**-slope
    flux = (a + u_ * (b - a)) ** (-1.0 / slope)
    return _FIELD_CENTER[0] + dra, _FIELD_CENTER[1] + ddec, flux


def simulate_field(outdir: str | Path, seed: int = 20260101, nstars: int = 600) -> list[Path]:
    """Write the NIRCam-like dithered field (see module docstring); return the image paths."""
    outdir = Path(outdir)
    rng = _rng(seed, 1)
    ra, dec, flux_jy = _star_field(rng, nstars, radius_arcsec=20.0)
    sky = SkyCoord(ra * u.deg, dec * u.deg)
    paths = []
    for b, band in enumerate(_FIELD_BANDS):
        psf = MoffatPSF(band.fwhm, beta=2.8, radius=25.0)
        pixar_sr = (band.pixscale / 206264.80624709636) ** 2
        for d, (dx, dy) in enumerate(_FIELD_DITHERS):
            nrng = _rng(seed, 2, b, d)
            center = (
                _FIELD_CENTER[0] + dx / 3600 / np.cos(np.deg2rad(_FIELD_CENTER[1])),
                _FIELD_CENTER[1] + dy / 3600,
            )
            wcs = _tan_wcs(center, band.pixscale, _FIELD_SHAPE, pa_deg=12.0 + 0.01 * d)
            stem = f"jw01234001001_0{b + 1}101_0000{d + 1}_{band.detector.lower()}_cal"
            path = outdir / "field" / f"{stem}.fits"
            truth = _field_image(path, band, psf, wcs, sky, flux_jy, pixar_sr, nrng, b, d)
            write_table(truth, outdir / "field" / f"{stem}_truth.ecsv")
            paths.append(path)
    write_table(_field_apcorr(), outdir / "field" / "apcorr.ecsv")
    return paths


def _field_image(path, band, psf, wcs, sky, flux_jy, pixar_sr, rng, b, d) -> Table:
    shape = _FIELD_SHAPE
    x, y = wcs.world_to_pixel(sky)
    pad = psf.radius + 2
    near = (x > -pad) & (x < shape[1] + pad) & (y > -pad) & (y < shape[0] + pad)
    area = _area_map(shape)
    # Jy per pixel -> DN/s: rate = f / (PIXAR_SR 1e6 PHOTMJSR)
    jy_to_dns = 1.0 / (pixar_sr * 1e6 * band.photmjsr)
    stars_dns = psf.render(shape, x[near], y[near], flux_jy[near] * jy_to_dns)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky_sb = band.sky * (1.0 + 0.25 * xx / nx - 0.15 * yy / ny)  # MJy/sr gradient
    # A flat-fielded pixel of larger area collects proportionally more sky counts.
    rate_dns = stars_dns + sky_sb * area / band.photmjsr
    rate_e = rate_dns * _GAIN
    counts, expected, var_read = _observe(rate_e, rng, read_noise_e=12.0, exptime=_EXPTIME)
    dq = np.zeros(shape, dtype=np.uint32)
    saturated = expected > _FULL_WELL
    counts = np.where(saturated, _FULL_WELL, counts)  # the ramp stops at full well
    dq[saturated] |= _JW["SATURATED"]
    # Cosmic rays: values fixed by the ramp fit, so only flagged.
    hits = rng.random(shape) < 1.5e-3
    dq[hits] |= _JW["JUMP_DET"]
    dead = rng.random(shape) < 5e-4
    dq[dead] |= _JW["DO_NOT_USE"] | _JW["DEAD"]
    # electrons -> MJy/sr: SCI = e / (gain t) * PHOTMJSR / AREA
    to_sb = band.photmjsr / (_GAIN * _EXPTIME * area)
    sci = (counts * to_sb).astype(np.float32)
    var_p = (expected * to_sb**2).astype(np.float32)
    var_r = (var_read * to_sb**2).astype(np.float32)
    err = np.sqrt(var_p + var_r).astype(np.float32)
    sci[dead] = np.nan
    err[dead] = np.nan
    mjd = 60400.0 + 0.01 * b + 0.004 * d
    primary = _jwst_primary(
        "NIRCAM", band.detector, band.filter, "CLEAR", "SUB400P", _EXPTIME, mjd, _FIELD_CENTER
    )
    primary["GAIN"] = (_GAIN, "e-/DN used by the simulator")
    hdus = _image_hdus(
        primary,
        _sci_header(wcs, "MJy/sr", band.photmjsr, pixar_sr),
        {
            "SCI": sci,
            "ERR": err,
            "DQ": dq,
            "AREA": area,
            "VAR_POISSON": var_p,
            "VAR_RNOISE": var_r,
        },
    )
    write_fits(hdus, path)
    idx = np.flatnonzero(near)
    xs, ys = x[near], y[near]
    inside = (xs >= 0) & (xs <= shape[1] - 1) & (ys >= 0) & (ys <= shape[0] - 1)
    sat_star = np.array([_any_saturated(saturated, xi, yi) for xi, yi in zip(xs, ys, strict=True)])
    return Table(
        {
            "id": idx + 1,
            "x": xs,
            "y": ys,
            "ra": sky.ra.deg[near],
            "dec": sky.dec.deg[near],
            "flux": flux_jy[near],
            "flux_dns": flux_jy[near] * jy_to_dns,
            "on_image": inside,
            "saturated": sat_star,
        },
        meta={
            "comment": "truth of the simulated field; x, y are 0-based pixel positions",
            "flux_unit": "Jy",
            "filter": band.filter,
            "fwhm_px": band.fwhm,
            "psf": f"Moffat beta=2.8 truncated at r={psf.radius} px, pixel-integrated",
        },
    )


def _any_saturated(saturated, x, y, r=3) -> bool:
    iy, ix = int(round(y)), int(round(x))
    ny, nx = saturated.shape
    return bool(
        saturated[max(iy - r, 0) : min(iy + r + 1, ny), max(ix - r, 0) : min(ix + r + 1, nx)].any()
    )


def _field_apcorr() -> Table:
    """CRDS-style aperture corrections (filter, pupil, eefraction, radius, apcorr, skyin,
    skyout) of the simulated PSFs, with the sky annulus' share of the wings included as in
    the CRDS reference files: apcorr = 1 / (EE(r) - area(r) * mean PSF in the annulus)."""
    rows = []
    for band in _FIELD_BANDS:
        psf = MoffatPSF(band.fwhm, beta=2.8, radius=25.0)
        skyin, skyout = 10.0, 15.0
        ee_sky = psf.encircled_energy([skyin, skyout])
        sky_per_pix = (ee_sky[1] - ee_sky[0]) / (np.pi * (skyout**2 - skyin**2))
        radii = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0])
        ee = psf.encircled_energy(radii)
        corr = 1.0 / (ee - np.pi * radii**2 * sky_per_pix)
        for r, e, c in zip(radii, ee, corr, strict=True):
            rows.append((band.filter, "CLEAR", round(float(e), 4), r, float(c), skyin, skyout))
    return Table(
        rows=rows,
        names=("filter", "pupil", "eefraction", "radius", "apcorr", "skyin", "skyout"),
        meta={"comment": "aperture corrections of the simulated Moffat PSFs (centred star)"},
    )


# ------------------------------------------------------------------------ standard

_NIRISS = {  # filter: (pupil-wheel?, FWHM px, total count rate DN/s)
    "F115W": (True, 1.25, 5200.0),
    "F200W": (True, 1.45, 3100.0),
    "F277W": (False, 1.85, 2200.0),
    "F444W": (False, 2.45, 900.0),
}
_NIRISS_SCALE = 0.0656
_NIRISS_PIXAR_SR = (_NIRISS_SCALE / 206264.80624709636) ** 2
_NIRISS_PHOTMJSR = {"F115W": 0.52, "F200W": 0.27, "F277W": 0.31, "F444W": 0.55}
_STANDARD_TARGET = (165.2246, 71.6339)  # WD 1057+719, ICRS deg


def simulate_standard(outdir: str | Path, seed: int = 20260101) -> list[Path]:
    """Write the NIRISS-like standard-star rate files (see module docstring)."""
    outdir = Path(outdir) / "standard"
    paths = []
    for f, (filt, (pupil_wheel, fwhm, rate)) in enumerate(_NIRISS.items()):
        psf = MoffatPSF(fwhm, beta=3.0, radius=30.0)
        radii = np.arange(0.5, 30.01, 0.5)
        ee = psf.encircled_energy(radii)
        write_table(
            Table(
                {"radius": radii, "radius_arcsec": radii * _NIRISS_SCALE, "ee": ee},
                meta={"filter": filt, "comment": "EE of the centred, pixel-integrated model"},
            ),
            outdir / f"psf_ee_{filt}.ecsv",
        )
        for s, (sub, n) in enumerate((("SUB64", 64), ("SUB128", 128))):
            for d in range(2):
                rng = _rng(seed, 3, f, s, d)
                x = n / 2 - 0.5 + (-1.7 if d == 0 else 2.3) + rng.uniform(-0.5, 0.5)
                y = n / 2 - 0.5 + (1.1 if d == 0 else -2.6) + rng.uniform(-0.5, 0.5)
                stem = f"jw01090{'01' if s == 0 else '02'}{f + 1:03d}_0{d + 1}101_00001_nis_rate"
                path = outdir / f"{stem}.fits"
                truth = _standard_image(
                    path, filt, pupil_wheel, sub, n, psf, x, y, rate, rng, f, s, d
                )
                write_table(truth, outdir / f"{stem}_truth.ecsv")
                paths.append(path)
    return paths


def _standard_image(path, filt, pupil_wheel, sub, n, psf, x, y, rate, rng, f, s, d) -> Table:
    shape = (n, n)
    # Long enough that read noise does not dominate the outer EE (0.5 % at 15 px).
    exptime = 80.0 if sub == "SUB64" else 160.0
    star = psf.render(shape, x, y, rate)
    sky_dns = 0.8
    counts, expected, var_read = _observe((star + sky_dns) * _GAIN, rng, 15.0, exptime)
    rate_img = (counts / (_GAIN * exptime)).astype(np.float32)
    var_p = (expected / (_GAIN * exptime) ** 2).astype(np.float32)
    var_r = (var_read / (_GAIN * exptime) ** 2).astype(np.float32)
    dq = np.zeros(shape, dtype=np.uint32)
    # Bad pixels between r=5 and r=14 px: hot or dead, with garbage values.
    for k in range(4):
        r = rng.uniform(6.0, 13.0)
        phi = rng.uniform(0, 2 * np.pi)
        ix, iy = int(round(x + r * np.cos(phi))), int(round(y + r * np.sin(phi)))
        dq[iy, ix] |= _JW["DO_NOT_USE"] | (_JW["HOT"] if k % 2 else _JW["DEAD"])
        rate_img[iy, ix] = 250.0 if k % 2 else 0.0
    ee_radii = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20], dtype=float)
    ee_true = _model_ee(star, x, y, ee_radii)
    wcs = _tan_wcs(_STANDARD_TARGET, _NIRISS_SCALE, shape, pa_deg=37.0, crpix=(x + 1, y + 1))
    mjd = 60300.0 + 0.02 * f + 0.005 * s + 0.001 * d
    primary = _jwst_primary(
        "NIRISS",
        "NIS",
        "CLEAR" if pupil_wheel else filt,
        filt if pupil_wheel else "CLEARP",
        sub,
        exptime,
        mjd,
        _STANDARD_TARGET,
    )
    primary["GAIN"] = (_GAIN, "e-/DN used by the simulator")
    sci_header = _sci_header(wcs, "DN/s", _NIRISS_PHOTMJSR[filt], _NIRISS_PIXAR_SR)
    err = np.sqrt(var_p + var_r).astype(np.float32)
    hdus = _image_hdus(
        primary,
        sci_header,
        {"SCI": rate_img, "ERR": err, "DQ": dq, "VAR_POISSON": var_p, "VAR_RNOISE": var_r},
    )
    write_fits(hdus, path)
    return Table(
        {"radius": ee_radii, "ee_countrate": ee_true, "ee_fraction": ee_true / rate},
        meta={
            "x": float(x),
            "y": float(y),
            "ra": _STANDARD_TARGET[0],
            "dec": _STANDARD_TARGET[1],
            "total_countrate": rate,
            "countrate_unit": "DN/s",
            "sky_dns": sky_dns,
            "filter": filt,
            "subarray": sub,
            "fwhm_px": psf.fwhm,
            "comment": "EE of the pixel-integrated noiseless star, exact apertures, 0-based x, y",
        },
    )


def _model_ee(image, x, y, radii):
    from photutils.aperture import CircularAperture, aperture_photometry

    tab = aperture_photometry(
        image, [CircularAperture((x, y), r=r) for r in radii], method="exact"
    )
    return np.array([float(tab[f"aperture_sum_{i}"][0]) for i in range(len(radii))])


# ---------------------------------------------------------------------- timeseries

_TS_TARGET = (218.2767, 21.8946)  # deg (HAT-P-14-like position)
_TS_TRANSIT = {"t0_offset_days": 0.0, "duration_days": 0.06, "depth": 0.004}


def simulate_timeseries(
    outdir: str | Path, seed: int = 20260101, nints: int = 400, nseg: int = 2
) -> list[Path]:
    """Write the NIRCam-like time series in ``nseg`` segments (see module docstring)."""
    outdir = Path(outdir) / "timeseries"
    rng = _rng(seed, 4)
    shape = (64, 64)
    band = _FIELD_BANDS[1]
    psf = MoffatPSF(band.fwhm, beta=2.8, radius=25.0)
    pixar_sr = (band.pixscale / 206264.80624709636) ** 2
    tint = 20.0  # s per integration
    mjd0 = 60500.2
    start = mjd0 + np.arange(nints) * tint / 86400.0
    mid = start + tint / 2 / 86400.0
    # Jitter: a slow drift plus white pointing noise, in pixels.
    phase = np.arange(nints) / nints
    xs = 31.3 + 0.15 * np.sin(2 * np.pi * 1.7 * phase) + rng.normal(0, 0.03, nints)
    ys = 32.6 + 0.10 * phase + rng.normal(0, 0.03, nints)
    tmid = mid[nints // 2] + _TS_TRANSIT["t0_offset_days"]
    in_transit = np.abs(mid - tmid) < _TS_TRANSIT["duration_days"] / 2
    model = 1.0 - _TS_TRANSIT["depth"] * in_transit
    flux_dns = 6000.0 * model
    bjd = _bjd_tdb(mid, _TS_TARGET)
    bounds = np.linspace(0, nints, nseg + 1).astype(int)
    paths = []
    for k in range(nseg):
        sl = slice(bounds[k], bounds[k + 1])
        path = outdir / f"jw01366002001_04101_00001-seg{k + 1:03d}_nrcalong_calints.fits"
        _timeseries_file(
            path,
            psf,
            band,
            pixar_sr,
            shape,
            tint,
            xs[sl],
            ys[sl],
            flux_dns[sl],
            start[sl],
            mid[sl],
            bjd[sl],
            k,
            nseg,
            bounds[k],
            _rng(seed, 5, k),
        )
        paths.append(path)
    truth = Table(
        {
            "integration": np.arange(1, nints + 1),
            "mjd_mid": mid,
            "bjd_tdb_mid": bjd,
            "x": xs,
            "y": ys,
            "flux_dns": flux_dns,
            "model": model,
        },
        meta={
            "depth": _TS_TRANSIT["depth"],
            "t_mid_mjd": float(tmid),
            "duration_days": _TS_TRANSIT["duration_days"],
            "comment": "0-based x, y; flux_dns is the total star count rate in DN/s",
        },
    )
    write_table(truth, outdir / "truth.ecsv")
    return paths


def _bjd_tdb(mjd_utc, radec):
    from astropy.coordinates import EarthLocation

    t = Time(
        mjd_utc, format="mjd", scale="utc", location=EarthLocation.from_geocentric(0, 0, 0, u.m)
    )
    ltt = t.light_travel_time(SkyCoord(radec[0] * u.deg, radec[1] * u.deg))
    return (t.tdb + ltt).mjd


def _timeseries_file(
    path, psf, band, pixar_sr, shape, tint, xs, ys, flux_dns, start, mid, bjd, k, nseg, first, rng
):
    n = len(xs)
    sky_dns = 0.4
    sci = np.empty((n, *shape), np.float32)
    var_p = np.empty_like(sci)
    read = 14.0
    for i in range(n):
        star = psf.render(shape, xs[i], ys[i], flux_dns[i])
        counts, expected, _ = _observe((star + sky_dns) * _GAIN, rng, read, tint)
        sci[i] = counts / (_GAIN * tint) * band.photmjsr
        var_p[i] = expected / (_GAIN * tint) ** 2 * band.photmjsr**2
    var_r = np.full_like(sci, (read / (_GAIN * tint) * band.photmjsr) ** 2)
    err = np.sqrt(var_p + var_r)
    dq = np.zeros(sci.shape, dtype=np.uint32)
    wcs = _tan_wcs(_TS_TARGET, band.pixscale, shape, crpix=(32.3, 33.6))
    primary = _jwst_primary(
        "NIRCAM",
        "NRCALONG",
        "F444W",
        "CLEAR",
        "SUB64P",
        tint * n,
        start[0],
        _TS_TARGET,
        {
            "NINTS": n,
            "EXPTYPE": "NRC_TSIMAGE",
            "TSOVISIT": True,
            "EXSEGNUM": k + 1,
            "EXSEGTOT": nseg,
            "INTSTART": first + 1,
            "INTEND": first + n,
        },
    )
    primary["EXPEND"] = start[-1] + tint / 86400.0
    primary["GAIN"] = (_GAIN, "e-/DN used by the simulator")
    hdus = _image_hdus(
        primary,
        _sci_header(wcs, "MJy/sr", band.photmjsr, pixar_sr),
        {
            "SCI": sci,
            "ERR": err.astype(np.float32),
            "DQ": dq,
            "VAR_POISSON": var_p,
            "VAR_RNOISE": var_r,
        },
    )
    end = start + tint / 86400.0
    bjd_half = tint / 2 / 86400.0
    hdus.append(
        fits.BinTableHDU(
            Table(
                {
                    "integration_number": np.arange(first + 1, first + n + 1, dtype=np.int32),
                    "int_start_MJD_UTC": start,
                    "int_mid_MJD_UTC": mid,
                    "int_end_MJD_UTC": end,
                    "int_start_BJD_TDB": bjd - bjd_half,
                    "int_mid_BJD_TDB": bjd,
                    "int_end_BJD_TDB": bjd + bjd_half,
                }
            ),
            name="INT_TIMES",
        )
    )
    write_fits(hdus, path)


# -------------------------------------------------------------------------- forced

_ACS = {"F606W": (7.86e-20, 5921.1, 0.12, 1.0), "F814W": (7.03e-20, 8045.5, 0.09, 1.25)}
_FORCED_CENTER = (150.1163, 2.2011)  # COSMOS-like
_ACS_SCALE = 0.05


def simulate_forced(outdir: str | Path, seed: int = 20260101, nstars: int = 25) -> list[Path]:
    """Write the HST-like drc images, a DS9 region file and a coordinate list."""
    outdir = Path(outdir) / "forced"
    rng = _rng(seed, 6)
    shape = (360, 360)
    half = shape[0] * _ACS_SCALE / 2 - 1.5  # arcsec, keep stars off the edges
    dra = rng.uniform(-half, half, nstars) / 3600 / np.cos(np.deg2rad(_FORCED_CENTER[1]))
    ddec = rng.uniform(-half, half, nstars) / 3600
    ra, dec = _FORCED_CENTER[0] + dra, _FORCED_CENTER[1] + ddec
    mag = rng.uniform(21.0, 25.5, nstars)  # AB, in F606W
    colour = rng.uniform(0.0, 1.0, nstars)  # F606W - F814W
    gal = {
        "ra": _FORCED_CENTER[0] - 2.0 / 3600,
        "dec": _FORCED_CENTER[1] + 1.5 / 3600,
        "mag606": 20.5,
        "colour": 0.6,
        "re": 0.5,
        "q": 0.55,
        "pa": 30.0,
    }
    sky = SkyCoord(ra * u.deg, dec * u.deg)
    paths = []
    for b, (filt, (photflam, photplam, skyrate, fwhm_scale)) in enumerate(_ACS.items()):
        nrng = _rng(seed, 7, b)
        wcs = _tan_wcs(_FORCED_CENTER, _ACS_SCALE, shape, pa_deg=-20.0)
        x, y = wcs.world_to_pixel(sky)
        zp = -2.5 * np.log10(photflam) - 5 * np.log10(photplam) - 2.408
        star_mag = mag - (colour if filt == "F814W" else 0.0)
        rate = 10 ** (-0.4 * (star_mag - zp))
        psf = MoffatPSF(2.0 * fwhm_scale, beta=2.5, radius=20.0)
        scene = psf.render(shape, x, y, rate)
        gmag = gal["mag606"] - (gal["colour"] if filt == "F814W" else 0.0)
        grate = 10 ** (-0.4 * (gmag - zp))
        gx, gy = wcs.world_to_pixel(SkyCoord(gal["ra"] * u.deg, gal["dec"] * u.deg))
        scene += _exponential_disk(
            shape,
            float(gx),
            float(gy),
            gal["re"] / _ACS_SCALE,
            gal["q"],
            gal["pa"] - (-20.0),
            grate,
        )
        exptime = 1200.0
        counts, _, _ = _observe(scene + skyrate, nrng, 5.0, exptime)
        sci = (counts / exptime - skyrate).astype(np.float32)  # drizzle subtracts the sky
        wht = np.full(shape, exptime, np.float32)  # EXP weighting
        primary = fits.Header()
        for key, value in {
            "TELESCOP": "HST",
            "INSTRUME": "ACS",
            "DETECTOR": "WFC",
            "FILTER1": filt,
            "FILTER2": "CLEAR2L",
            "EXPTIME": exptime,
            "ORIGIN": "aperflow.simulate",
        }.items():
            primary[key] = value
        for key, value in _time_keywords(59000.0 + b * 0.1, exptime).items():
            primary[key] = value
        sci_header = wcs.to_header()
        sci_header["BUNIT"] = "ELECTRONS/S"
        sci_header["PHOTFLAM"] = (photflam, "inverse sensitivity, erg/cm2/A/e-")
        sci_header["PHOTPLAM"] = (photplam, "pivot wavelength [A]")
        sci_header["PHOTZPT"] = -21.1
        hdus = fits.HDUList(
            [
                fits.PrimaryHDU(header=primary),
                fits.ImageHDU(sci, header=sci_header, name="SCI"),
                fits.ImageHDU(wht, header=wcs.to_header(), name="WHT"),
                fits.ImageHDU(np.ones(shape, np.int32), header=wcs.to_header(), name="CTX"),
            ]
        )
        stem = f"hst_demo_acs_wfc_{filt.lower()}_drc"
        path = outdir / f"{stem}.fits"
        write_fits(hdus, path)
        ids = [f"star{i + 1:02d}" for i in range(nstars)] + ["galaxy"]
        truth = Table(
            {
                "id": ids,
                "ra": np.append(ra, gal["ra"]),
                "dec": np.append(dec, gal["dec"]),
                "x": np.append(x, gx),
                "y": np.append(y, gy),
                "flux": np.append(rate, grate),
                "mag_ab": np.append(star_mag, gmag),
            },
            meta={
                "filter": filt,
                "flux_unit": "electron/s",
                "sky_rate": skyrate,
                "zeropoint_ab": float(zp),
                "comment": "0-based x, y",
            },
        )
        write_table(truth, outdir / f"{stem}_truth.ecsv")
        paths.append(path)
    _write_regions(outdir, ra, dec, gal)
    return paths


def _exponential_disk(shape, x, y, re_px, q, pa_deg, flux, oversample=4, rmax_re=4.0):
    """Exponential disk (Sersic n=1) of total ``flux``, cut at ``rmax_re`` effective radii."""
    ny, nx = shape
    half = int(np.ceil(rmax_re * re_px)) + 2
    x0, y0 = int(round(x)) - half, int(round(y)) - half
    n = 2 * half + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - 0.5
    dx = (x0 + sub)[None, :] - x
    dy = (y0 + sub)[:, None] - y
    t = np.deg2rad(pa_deg)
    a = dx * np.cos(t) + dy * np.sin(t)
    b = -dx * np.sin(t) + dy * np.cos(t)
    r = np.sqrt(a**2 + (b / q) ** 2)
    fine = np.where(r <= rmax_re * re_px, np.exp(-1.678 * r / re_px), 0.0)
    stamp = fine.reshape(n, oversample, n, oversample).sum(axis=(1, 3))
    image = np.zeros(shape)
    image[y0 : y0 + n, x0 : x0 + n] = flux * stamp / stamp.sum()
    return image


def _write_regions(outdir: Path, ra, dec, gal) -> None:
    # The images' WCS is ICRS; the region file says fk5, so its positions are converted
    # (the FK5-ICRS frame bias is ~30 mas, half an ACS pixel).
    fk5 = SkyCoord(np.append(ra, gal["ra"]) * u.deg, np.append(dec, gal["dec"]) * u.deg).fk5
    fra, fdec = fk5.ra.deg, fk5.dec.deg
    lines = ["# Region file format: DS9 version 4.1", "global color=green", "fk5"]
    for i in range(min(12, len(ra))):
        lines.append(f'circle({fra[i]:.7f},{fdec[i]:.7f},0.25") # text={{star{i + 1:02d}}}')
    a = 5.0 * gal["re"]
    lines.append(
        f'ellipse({fra[-1]:.7f},{fdec[-1]:.7f},{a:.3f}",{a * gal["q"]:.3f}",'
        f"{gal['pa']:.2f}) # text={{galaxy}}"
    )
    write_text("\n".join(lines) + "\n", outdir / "regions.reg")
    rows = ["id,ra,dec"] + [
        f"star{i + 1:02d},{ra[i]:.7f},{dec[i]:.7f}" for i in range(12, len(ra))
    ]
    write_text("\n".join(rows) + "\n", outdir / "targets.csv")


# --------------------------------------------------------------------------- demo


def demo_files(outdir: str | Path) -> dict[str, list[Path]]:
    """The images :func:`simulate_demo` writes, by kind, without writing anything.

    The workflow uses this to know the demo inputs before they exist.
    """
    outdir = Path(outdir)
    field = [
        outdir
        / "field"
        / f"jw01234001001_0{b + 1}101_0000{d + 1}_{band.detector.lower()}_cal.fits"
        for b, band in enumerate(_FIELD_BANDS)
        for d in range(len(_FIELD_DITHERS))
    ]
    standard = [
        outdir
        / "standard"
        / f"jw01090{'01' if s == 0 else '02'}{f + 1:03d}_0{d + 1}101_00001_nis_rate.fits"
        for f in range(len(_NIRISS))
        for s in range(2)
        for d in range(2)
    ]
    ts = [
        outdir / "timeseries" / f"jw01366002001_04101_00001-seg{k:03d}_nrcalong_calints.fits"
        for k in (1, 2)
    ]
    forced = [outdir / "forced" / f"hst_demo_acs_wfc_{f.lower()}_drc.fits" for f in _ACS]
    return {"field": field, "standard": standard, "timeseries": ts, "forced": forced}


def demo_outputs(outdir: str | Path) -> list[Path]:
    """Every file :func:`simulate_demo` writes (images, truth tables, regions, references)."""
    outdir = Path(outdir)
    images = demo_files(outdir)
    out = [p for paths in images.values() for p in paths]
    out += [
        p.with_name(p.name.replace(".fits", "_truth.ecsv"))
        for kind in ("field", "standard", "forced")
        for p in images[kind]
    ]
    out += [
        outdir / "field" / "apcorr.ecsv",
        outdir / "timeseries" / "truth.ecsv",
        outdir / "forced" / "regions.reg",
        outdir / "forced" / "targets.csv",
    ]
    out += [outdir / "standard" / f"psf_ee_{f}.ecsv" for f in _NIRISS]
    return sorted(out)


def simulate_demo(
    outdir: str | Path, seed: int = 20260101, kinds=DEMO_KINDS
) -> dict[str, list[Path]]:
    """Write every demo data set into ``outdir``; return the image paths by kind."""
    makers = {
        "field": simulate_field,
        "standard": simulate_standard,
        "timeseries": simulate_timeseries,
        "forced": simulate_forced,
    }
    unknown = set(kinds) - set(makers)
    if unknown:
        raise ValueError(f"unknown demo kind(s) {sorted(unknown)}; choose from {DEMO_KINDS}")
    return {kind: makers[kind](outdir, seed=seed) for kind in kinds}
