"""Open a FITS image into one :class:`Image`: pixels, errors, pixel flags, area map, WCS and
normalised metadata.

Supported layouts
-----------------
* JWST level-2/3 products (``_cal``, ``_rate``, ``_i2d``, ``_calints``): ``SCI``, ``ERR``,
  ``DQ``, ``AREA`` extensions; keywords in the primary and SCI headers.
* HST products (``_drc``, ``_drz``, ``_flt``, ``_flc``, ``_ima``): the first ``SCI``
  extension (for ``ima`` that is the final read), ``ERR`` and ``DQ`` when present.
* Plain ground images: the first HDU holding a 2-D image (gzip-compressed files too).

Pixel flags are normalised to aperflow's own bits (:data:`PIXEL_BAD`,
:data:`PIXEL_SATURATED`, :data:`PIXEL_COSMIC_RAY`) so that photometry does not need to
know the telescope's DQ convention. A pixel is *bad* (left out of every sum) when its DQ
has a bad bit, when its value or error is not finite, or when it is NaN. Saturated and
cosmic-ray pixels stay in the sums and only raise flags, as in seed 000.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

__all__ = [
    "DQ_BITS",
    "PIXEL_BAD",
    "PIXEL_COSMIC_RAY",
    "PIXEL_SATURATED",
    "Image",
    "ImageError",
    "ImageMeta",
    "dq_bitmask",
    "effective_filter",
    "normalise_detector",
    "open_image",
    "read_meta",
]

#: aperflow pixel flag: excluded from every sum (DQ bad bit, NaN, non-finite).
PIXEL_BAD = np.uint8(1)
#: aperflow pixel flag: saturated (kept in sums, flagged).
PIXEL_SATURATED = np.uint8(2)
#: aperflow pixel flag: cosmic ray / jump detected (kept in sums, flagged).
PIXEL_COSMIC_RAY = np.uint8(4)

#: DQ bit names per telescope. JWST from the jwst pipeline's ``dqflags``; HST from the
#: WFC3/ACS data handbooks.
DQ_BITS: dict[str, dict[str, int]] = {
    "JWST": {
        "DO_NOT_USE": 1,
        "SATURATED": 2,
        "JUMP_DET": 4,
        "DROPOUT": 8,
        "OUTLIER": 16,
        "PERSISTENCE": 32,
        "AD_FLOOR": 64,
        "CHARGELOSS": 128,
        "UNRELIABLE_ERROR": 256,
        "NON_SCIENCE": 512,
        "DEAD": 1024,
        "HOT": 2048,
        "WARM": 4096,
        "LOW_QE": 8192,
        "RC": 16384,
        "TELEGRAPH": 32768,
        "NONLINEAR": 65536,
        "BAD_REF_PIXEL": 131072,
        "NO_FLAT_FIELD": 262144,
        "NO_GAIN_VALUE": 524288,
        "NO_LIN_CORR": 1048576,
        "NO_SAT_CHECK": 2097152,
        "UNRELIABLE_BIAS": 4194304,
        "UNRELIABLE_DARK": 8388608,
        "UNRELIABLE_SLOPE": 16777216,
        "UNRELIABLE_FLAT": 33554432,
        "OPEN": 67108864,
        "ADJ_OPEN": 134217728,
        "FLUX_ESTIMATED": 268435456,
        "MSA_FAILED_OPEN": 536870912,
        "OTHER_BAD_PIXEL": 1073741824,
        "REFERENCE_PIXEL": 2147483648,
    },
    "HST": {
        "REED_SOLOMON": 1,
        "DATA_LOST": 2,
        "BAD_DETECTOR": 4,
        "DATA_MASKED": 8,
        "HOT": 16,
        "UNSTABLE": 32,
        "WARM": 64,
        "BAD_REFERENCE": 128,
        "SATURATED": 256,
        "BAD_FLAT": 512,
        "ZERO_READ_SIGNAL": 2048,
        "CR_DRIZZLE": 4096,
        "CR_CALWF3": 8192,
        "GHOST": 16384,
    },
}

#: Default DQ bits that make a pixel bad, and the bits that only flag it.
DEFAULT_DQ = {
    "JWST": {
        "bad": ["DO_NOT_USE", "NON_SCIENCE", "DEAD", "HOT", "REFERENCE_PIXEL", "OTHER_BAD_PIXEL"],
        "saturated": ["SATURATED"],
        "cosmic_ray": ["JUMP_DET"],
    },
    "HST": {
        "bad": ["REED_SOLOMON", "DATA_LOST", "BAD_DETECTOR", "DATA_MASKED", "HOT"],
        "saturated": ["SATURATED"],
        "cosmic_ray": ["CR_DRIZZLE", "CR_CALWF3"],
    },
}

_SCI_UNITS_SURFACE_BRIGHTNESS = {"mjy/sr", "mjy / sr", "ujy/arcsec2", "ujy/arcsec^2"}
_FILTER_RE = re.compile(r"^F\d{3,4}[A-Z0-9]*$")
_NOT_FILTERS = {"", "CLEAR", "CLEARP", "NONE", "N/A", "OPAQUE", "NA"}


class ImageError(ValueError):
    """A file cannot be used as an image; the message names the file and the problem."""


@dataclass
class ImageMeta:
    """Normalised metadata of one image.

    Every field is a plain Python value (``None`` when the header does not say), so the
    object converts to one inventory row with :meth:`as_row`.
    """

    telescope: str = ""
    instrument: str = ""
    detector: str = ""
    filter: str = ""
    pupil: str = ""
    subarray: str = ""
    exptime: float | None = None
    mjd_start: float | None = None
    mjd_end: float | None = None
    bunit: str = ""
    photmjsr: float | None = None
    pixar_sr: float | None = None
    pixar_a2: float | None = None
    photflam: float | None = None
    photplam: float | None = None
    zeropoint: float | None = None
    gain: float | None = None
    saturation: float | None = None
    nints: int = 1
    ngroups: int | None = None
    target_ra: float | None = None
    target_dec: float | None = None
    date_obs: str = ""
    product: str = ""

    @property
    def group(self) -> str:
        """Aggregation key ``instrument-detector-filter-pupil-subarray``."""
        parts = [self.instrument, self.detector, self.filter, self.pupil, self.subarray]
        return "-".join(p if p else "NONE" for p in parts).replace(" ", "_")

    def as_row(self) -> dict:
        """Return the metadata as an inventory row (``None`` becomes NaN or '')."""
        row = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                value = np.nan if f.type.startswith(("float", "int")) else ""
            row[f.name] = value
        row["group"] = self.group
        return row


@dataclass
class Image:
    """One 2-D image with everything photometry needs.

    Attributes
    ----------
    path : str
        The file the image was read from.
    data : ndarray
        Pixel values in ``meta.bunit`` (float32 or float64 as stored; NaN where bad).
    error : ndarray or None
        One-sigma per-pixel error in the same unit (the ``ERR`` extension), or None.
    flags : ndarray of uint8
        aperflow pixel flags (:data:`PIXEL_BAD`, :data:`PIXEL_SATURATED`,
        :data:`PIXEL_COSMIC_RAY`).
    area : ndarray or None
        Relative pixel area (the JWST ``AREA`` extension), or None.
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the image, None when the header has none.
    meta : ImageMeta
        Normalised metadata.
    header : astropy.io.fits.Header
        Primary and science headers merged (science keywords win).
    """

    path: str
    data: np.ndarray
    error: np.ndarray | None
    flags: np.ndarray
    area: np.ndarray | None
    wcs: WCS | None
    meta: ImageMeta
    header: fits.Header = field(repr=False)

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask, True where a pixel is left out of every sum."""
        return (self.flags & PIXEL_BAD) != 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def is_surface_brightness(self) -> bool:
        """True when the pixels are a surface brightness (e.g. MJy/sr)."""
        return self.meta.bunit.strip().lower() in _SCI_UNITS_SURFACE_BRIGHTNESS

    def flux_calibration(self, zeropoint: float | None = None):
        """How pixel sums become fluxes and magnitudes (see :mod:`aperflow.calibration`)."""
        from aperflow.calibration import flux_calibration

        return flux_calibration(self.meta, self.is_surface_brightness, zeropoint, self.path)

    def poisson_gain(self, default_gain: float | None = None) -> float | None:
        """Pixel unit -> detected counts, for DAOPHOT errors when there is no ERR."""
        from aperflow.calibration import poisson_gain

        return poisson_gain(self.meta, self.is_surface_brightness, default_gain)

    def pixel_scale(self) -> float | None:
        """Mean pixel scale in arcsec/pixel from the WCS (or PIXAR_A2), None if unknown."""
        if self.wcs is not None and self.wcs.has_celestial:
            from astropy.wcs.utils import proj_plane_pixel_scales

            scales = proj_plane_pixel_scales(self.wcs.celestial) * 3600.0
            return float(np.sqrt(scales[0] * scales[1]))
        if self.meta.pixar_a2:
            return float(np.sqrt(self.meta.pixar_a2))
        return None


def dq_bitmask(names: Iterable[str | int], telescope: str) -> int:
    """Combine DQ bit names (or integers) of ``telescope`` into one integer mask.

    Raises
    ------
    ValueError
        If a name is not a DQ bit of that telescope.
    """
    table = DQ_BITS.get(telescope.upper(), DQ_BITS["JWST"])
    mask = 0
    for name in names:
        if isinstance(name, int | np.integer):
            mask |= int(name)
            continue
        key = str(name).upper()
        if key not in table:
            raise ValueError(
                f"unknown DQ flag {name!r} for {telescope or 'this telescope'}; "
                f"known: {', '.join(table)}"
            )
        mask |= table[key]
    return mask


def normalise_detector(detector: str) -> str:
    """NIRCam long-wave detector names as the seeds use them (NRCALONG -> NRCA5)."""
    detector = (detector or "").strip().upper()
    return {"NRCALONG": "NRCA5", "NRCBLONG": "NRCB5"}.get(detector, detector)


def effective_filter(filter_name: str, pupil: str) -> str:
    """The filter that defines the bandpass: the pupil when it holds a filter.

    NIRCam puts narrow filters (F162M, F164N, ...) in the pupil wheel with a wide filter
    in the filter wheel; NIRISS puts F090W..F200W in the pupil wheel with FILTER=CLEAR.
    """
    f = (filter_name or "").strip().upper()
    p = (pupil or "").strip().upper()
    if _FILTER_RE.match(p) and (f in _NOT_FILTERS or _FILTER_RE.match(f)):
        return p
    return f


def _first(header: fits.Header, *keys: str, default=None):
    for key in keys:
        if key in header and header[key] not in (None, ""):
            return header[key]
    return default


def _float(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _find_science_hdu(hdul: fits.HDUList, path: str) -> int:
    """Index of the science image: the first SCI extension, else the first 2-D+ image."""
    for i, hdu in enumerate(hdul):
        if hdu.name == "SCI" and hdu.is_image:
            return i
    for i, hdu in enumerate(hdul):
        if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
            return i
    raise ImageError(f"{path}: no SCI extension and no HDU with image data")


def _merged_header(hdul: fits.HDUList, sci: int) -> fits.Header:
    header = hdul[0].header.copy()
    if sci != 0:
        for card in hdul[sci].header.cards:
            if card.keyword not in ("", "COMMENT", "HISTORY"):
                header[card.keyword] = card.value
    return header


def _telescope(header: fits.Header) -> str:
    tel = str(_first(header, "TELESCOP", default="")).strip().upper()
    return tel


def _product(path: str) -> str:
    """Product type from the file name: cal, rate, i2d, calints, drc, flt, ima, ..."""
    name = Path(path).name.lower()
    for ext in (".gz", ".fz", ".bz2"):
        name = name.removesuffix(ext)
    stem = re.sub(r"\.(fits?|fts)$", "", name)
    return stem.rsplit("_", 1)[-1] if "_" in stem else ""


def read_meta(header: fits.Header, path: str = "", data_shape: tuple = ()) -> ImageMeta:
    """Normalise a merged FITS header into :class:`ImageMeta`.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Primary and science headers merged.
    path : str
        File name, for the product type.
    data_shape : tuple
        Shape of the science array (for NINTS/NGROUPS when the header lacks them).
    """
    telescope = _telescope(header)
    filt = str(_first(header, "FILTER", "FILTER1", "FILTNAM1", default="")).strip().upper()
    if telescope == "HST" and filt.startswith("CLEAR") and "FILTER2" in header:
        filt = str(header["FILTER2"]).strip().upper()
    pupil = str(_first(header, "PUPIL", default="")).strip().upper()
    subarray = _first(header, "SUBARRAY", default="")
    if isinstance(subarray, bool):
        subarray = "SUBARRAY" if subarray else "FULL"
    exptime = _float(_first(header, "EFFEXPTM", "EXPTIME", "EXPOSURE", "TEXPTIME"))
    mjd_start = _float(_first(header, "EXPSTART", "MJD-BEG", "MJD-OBS"))
    mjd_end = _float(_first(header, "EXPEND", "MJD-END"))
    if mjd_start is None and "DATE-OBS" in header:
        mjd_start = _mjd_from_date(header)
    if mjd_end is None and mjd_start is not None and exptime is not None:
        mjd_end = mjd_start + exptime / 86400.0
    nints = int(_first(header, "NINTS", default=data_shape[0] if len(data_shape) >= 3 else 1))
    ngroups = _first(header, "NGROUPS", default=data_shape[1] if len(data_shape) == 4 else None)
    return ImageMeta(
        telescope=telescope,
        instrument=str(_first(header, "INSTRUME", default="")).strip().upper(),
        detector=normalise_detector(str(_first(header, "DETECTOR", default=""))),
        filter=effective_filter(filt, pupil),
        pupil=pupil,
        subarray=str(subarray).strip().upper(),
        exptime=exptime,
        mjd_start=mjd_start,
        mjd_end=mjd_end,
        bunit=str(_first(header, "BUNIT", default="")).strip(),
        photmjsr=_float(_first(header, "PHOTMJSR")),
        pixar_sr=_float(_first(header, "PIXAR_SR")),
        pixar_a2=_float(_first(header, "PIXAR_A2")),
        photflam=_float(_first(header, "PHOTFLAM")),
        photplam=_float(_first(header, "PHOTPLAM")),
        zeropoint=_float(_first(header, "MAGZPT", "MAGZERO", "ZP", "ZEROPNT")),
        gain=_float(_first(header, "GAIN", "EGAIN", "CCDGAIN", "ATODGAIN")),
        saturation=_float(_first(header, "SATURATE", "SATLEVEL")),
        nints=nints,
        ngroups=int(ngroups) if ngroups is not None else None,
        target_ra=_float(_first(header, "TARG_RA", "RA_TARG")),
        target_dec=_float(_first(header, "TARG_DEC", "DEC_TARG")),
        date_obs=str(_first(header, "DATE-OBS", default="")),
        product=_product(path),
    )


def _mjd_from_date(header: fits.Header) -> float | None:
    from astropy.time import Time

    date = str(header["DATE-OBS"]).strip()
    if "T" not in date and "TIME-OBS" in header:
        date = f"{date}T{header['TIME-OBS']}"
    try:
        return float(Time(date, format="isot", scale="utc").mjd)
    except ValueError:
        return None


def _celestial_wcs(header: fits.Header) -> WCS | None:
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2, relax=True)
        except Exception:  # a broken WCS is reported as "no WCS", not as a crash
            return None
    return wcs if wcs.has_celestial else None


def _scaled(hdu, pick=lambda a: a) -> np.ndarray:
    """The (picked part of the) data of an HDU opened with ``do_not_scale_image_data``,
    with BSCALE/BZERO applied, in native byte order: one copy of the picked part only."""
    raw = pick(hdu.data)
    bscale, bzero = hdu.header.get("BSCALE", 1), hdu.header.get("BZERO", 0)
    if bscale == 1 and raw.dtype.kind == "i" and bzero == 2 ** (8 * raw.dtype.itemsize - 1):
        # Unsigned integers stored as signed + BZERO (DQ uint32, uint16 ADC frames).
        unsigned = np.dtype(f"u{raw.dtype.itemsize}")
        flipped = raw.view(unsigned.newbyteorder(raw.dtype.byteorder)) ^ unsigned.type(bzero)
        return flipped.astype(unsigned, copy=False)
    if bscale != 1 or bzero != 0:
        return raw.astype(np.float64) * bscale + bzero
    return raw.astype(raw.dtype.newbyteorder("="))


def _ext(hdul: fits.HDUList, name: str, sci: int, shape: tuple):
    """Extension HDU ``name`` with the same EXTVER as the science HDU and the same shape."""
    ver = hdul[sci].header.get("EXTVER", 1)
    for hdu in hdul:
        if hdu.name == name and hdu.header.get("EXTVER", 1) == ver and hdu.is_image:
            if tuple(hdu.shape) == tuple(shape):
                return hdu
    return None


def open_image(
    path: str | Path,
    dq_bad: Iterable[str | int] | None = None,
    dq_saturated: Iterable[str | int] | None = None,
    dq_cosmic_ray: Iterable[str | int] | None = None,
    saturation: float | None = None,
    integration: int | None = None,
) -> Image:
    """Open one FITS image.

    Parameters
    ----------
    path : str or Path
        FITS file (gzip is recognised from its bytes, whatever its name).
    dq_bad, dq_saturated, dq_cosmic_ray : iterable of str or int, optional
        DQ bits (names of :data:`DQ_BITS` for the file's telescope, or integers) that make
        a pixel bad, saturated or a cosmic ray. Defaults: :data:`DEFAULT_DQ`.
    saturation : float, optional
        Level at or above which a pixel is flagged saturated (ground images without DQ);
        defaults to the header's SATURATE keyword.
    integration : int, optional
        For a cube (``calints``), the integration to read; required for 3-D data.

    Returns
    -------
    Image

    Raises
    ------
    ImageError
        When the file is not FITS, has no image data, or its data are not 2-D.
    """
    path = str(path)
    try:
        # Memory-mapped and unscaled: each plane used is copied once into memory (scaling by
        # hand in _scaled), the others are never read.
        hdul = fits.open(path, memmap=True, do_not_scale_image_data=True)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except Exception as exc:
        raise ImageError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        try:
            sci = _find_science_hdu(hdul, path)
            shape = hdul[sci].shape
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{path}: cannot read the image data ({exc})") from None
        if not shape:
            raise ImageError(f"{path}: the SCI extension holds no data")
        header = _merged_header(hdul, sci)
        meta = read_meta(header, path, shape)
        try:
            data, err, dq, area = _planes(hdul, sci, integration, path)
        except ImageError:
            raise
        except Exception as exc:  # truncated data, bad BITPIX, ...
            raise ImageError(f"{path}: cannot read the image data ({exc})") from None
        if saturation is None and meta.saturation is None and data.dtype.kind == "u":
            saturation = float(np.iinfo(data.dtype).max)  # an unsigned ADC saturates at its top
        if data.dtype.kind != "f":
            data = data.astype(np.float32)
        flags = _pixel_flags(data, err, dq, meta, dq_bad, dq_saturated, dq_cosmic_ray, saturation)
        _flag_reference_border(flags, meta)
        bad = (flags & PIXEL_BAD) != 0
        if bad.any():
            data[bad] = np.nan  # in place: data is our own copy
        wcs = _celestial_wcs(hdul[sci].header) or _celestial_wcs(header)
    return Image(path, data, err, flags, area, wcs, meta, header)


def _planes(hdul, sci, integration, path):
    """Science (as stored: may be unsigned int), error, DQ and area planes of one 2-D
    image, in memory."""
    shape = hdul[sci].shape
    if len(shape) == 3 or (len(shape) == 4 and integration is not None):
        if integration is None:
            raise ImageError(
                f"{path}: SCI is a cube of shape {shape}; pass integration= "
                "or use the time-series mode"
            )
        if not 0 <= integration < shape[0]:
            raise ImageError(f"{path}: integration {integration} outside 0..{shape[0] - 1}")
        pick = (lambda a: a[integration]) if len(shape) == 3 else (lambda a: a[integration, -1])
    elif len(shape) == 2:
        pick = lambda a: a  # noqa: E731
    else:
        raise ImageError(f"{path}: SCI has {len(shape)} dimensions {shape}; expected a 2-D image")
    data = _scaled(hdul[sci], pick)
    if data.shape[0] < 2 or data.shape[1] < 2:
        raise ImageError(f"{path}: image of shape {data.shape} is too small")
    float_type = data.dtype if data.dtype.kind == "f" else np.dtype(np.float32)
    err, dq, area = (_ext(hdul, name, sci, shape) for name in ("ERR", "DQ", "AREA"))
    if area is None:
        area = _ext(hdul, "AREA", sci, shape[-2:])
    err = None if err is None else _scaled(err, pick).astype(float_type, copy=False)
    dq = None if dq is None else _scaled(dq, pick).astype(np.uint32, copy=False)
    area = None if area is None else _scaled(area).astype(np.float32, copy=False)
    return data, err, dq, area


#: Reference-pixel border kept in some products (flt/drz trim it): WFC3/IR ima and raw.
_REFERENCE_BORDER = {("WFC3", "IR", "ima"): 5, ("WFC3", "IR", "raw"): 5}


def _flag_reference_border(flags: np.ndarray, meta: ImageMeta) -> None:
    """Mark a product's reference-pixel border bad: no sky there, only bias."""
    width = _REFERENCE_BORDER.get((meta.instrument, meta.detector, meta.product), 0)
    if width:
        for edge in (np.s_[:width, :], np.s_[-width:, :], np.s_[:, :width], np.s_[:, -width:]):
            flags[edge] |= PIXEL_BAD


def _pixel_flags(data, err, dq, meta, dq_bad, dq_saturated, dq_cosmic_ray, saturation):
    tel = meta.telescope if meta.telescope in DEFAULT_DQ else "JWST"
    flags = np.zeros(data.shape, dtype=np.uint8)
    bad = ~np.isfinite(data)
    if err is not None:
        bad |= ~np.isfinite(err)
    if dq is not None:
        defaults = DEFAULT_DQ[tel]
        bad_bits = dq_bitmask(defaults["bad"] if dq_bad is None else dq_bad, tel)
        sat_bits = dq_bitmask(defaults["saturated"] if dq_saturated is None else dq_saturated, tel)
        cr_bits = dq_bitmask(
            defaults["cosmic_ray"] if dq_cosmic_ray is None else dq_cosmic_ray, tel
        )
        bad |= (dq & bad_bits) != 0
        flags[(dq & sat_bits) != 0] |= PIXEL_SATURATED
        flags[(dq & cr_bits) != 0] |= PIXEL_COSMIC_RAY
    level = saturation if saturation is not None else meta.saturation
    if level is not None:
        with np.errstate(invalid="ignore"):
            flags[data >= level] |= PIXEL_SATURATED
    flags[bad] |= PIXEL_BAD
    return flags
