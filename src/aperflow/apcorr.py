"""Reference encircled energy and aperture corrections.

Two kinds of reference table come in here, both interpolated in radius (pixels):

:class:`ApcorrTable`
    A CRDS-style aperture-correction table (JWST ``apcorr`` reference files and their
    ECSV excerpts: columns ``filter``, ``pupil``, ``eefraction``, ``radius`` [px],
    ``apcorr``, ``skyin``, ``skyout``), one row per radius for a filter/pupil. A flux
    measured in an aperture of radius ``r`` with the sky taken in the annulus
    ``skyin..skyout`` becomes a total flux as ``flux * apcorr(r)``.
:class:`EECurve`
    An encircled-energy curve (fraction of the total flux inside radius ``r``): WebbPSF
    ``*_psf.radtab`` tables (seed 001), the simulator's ``psf_ee_<FILTER>.ecsv``, the HST
    EE tables (grizli's FITS table with columns such as ``wfc3,ir,f160w`` vs arcsec, the
    published WFC3 IR/UVIS CSVs with ``APER#<arcsec>`` columns), or the ``eefraction``
    column of an :class:`ApcorrTable`. The total flux is ``flux(r) / EE(r)``.

Interpolation and its uncertainty
---------------------------------
Both tables are interpolated with a shape-preserving piecewise-cubic Hermite
interpolant (PCHIP, :class:`scipy.interpolate.PchipInterpolator`): it passes through
every tabulated point and keeps a monotonic EE curve monotonic. The uncertainty returned
with an interpolated value is the interpolation uncertainty, estimated as the difference
between the PCHIP and the linear interpolant, ``|pchip(r) - linear(r)|`` (0 at the
tabulated radii, largest between widely spaced or strongly curved points), added in
quadrature to a tabulation term ``tabulation_error * value`` (relative; default 0: the
reference files carry no uncertainty of their own. Set it to e.g. 0.005 to express the
model-versus-real-PSF uncertainty). Outside the tabulated radius range nothing is
extrapolated: those elements are NaN and a :class:`ReferenceRangeWarning` names the table
and its range (``strict=True`` raises a :class:`ValueError` instead).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy.interpolate import PchipInterpolator

__all__ = [
    "ApcorrTable",
    "apcorr_of_file",
    "EECurve",
    "ReferenceError",
    "ReferenceRangeWarning",
    "load_apcorr_table",
    "load_reference_ee",
    "read_hst_ee_csv",
    "read_hst_ee_fits",
    "read_psf_ee_ecsv",
    "read_radtab",
    "group_apcorr",
    "reference_spec",
    "throughput_factor",
    "total_from_ee",
    "totals_table",
]


class ReferenceError(ValueError):
    """A reference table is missing, unreadable or has no row for the requested band."""


class ReferenceRangeWarning(UserWarning):
    """An interpolation was asked for outside a reference table's radius range."""


def _interpolate(radius_table, values, radius, tabulation_error, name, strict):
    """PCHIP interpolation of ``values`` at ``radius`` with its uncertainty (module doc)."""
    r = np.asarray(radius, dtype=float)
    rt = np.asarray(radius_table, dtype=float)
    vt = np.asarray(values, dtype=float)
    lo, hi = rt[0], rt[-1]
    inside = (r >= lo) & (r <= hi)
    bad = ~inside & ~np.isnan(r)
    if np.any(bad):
        message = (
            f"{name}: radius {np.unique(r[bad]).tolist()} px outside the table's range "
            f"{lo:g}-{hi:g} px; no extrapolation, NaN returned"
        )
        if strict:
            raise ValueError(message)
        warnings.warn(message, ReferenceRangeWarning, stacklevel=3)
    rc = np.clip(np.nan_to_num(r, nan=lo), lo, hi)
    if rt.size == 1:
        smooth = np.full(r.shape, vt[0])
        linear = smooth
    else:
        smooth = PchipInterpolator(rt, vt, extrapolate=False)(rc)
        linear = np.interp(rc, rt, vt)
    err = np.hypot(np.abs(smooth - linear), tabulation_error * np.abs(smooth))
    value = np.where(inside, smooth, np.nan)
    err = np.where(inside, err, np.nan)
    if value.ndim == 0:
        return float(value), float(err)
    return value, err


def _sorted_unique(radius, *columns, name=""):
    order = np.argsort(radius, kind="stable")
    radius = np.asarray(radius, dtype=float)[order]
    if radius.size == 0:
        raise ReferenceError(f"{name}: no rows")
    if np.any(np.diff(radius) <= 0):
        raise ReferenceError(f"{name}: repeated radii {radius.tolist()}")
    return (radius, *[np.asarray(c, dtype=float)[order] for c in columns])


@dataclass
class ApcorrTable:
    """CRDS-style aperture corrections for one filter/pupil (see the module docstring).

    Attributes
    ----------
    filter, pupil : str
        The band the rows belong to (pupil ``""`` when the table has no pupil column).
    radius : ndarray
        Aperture radii in pixels, increasing.
    apcorr : ndarray
        Multiplicative aperture corrections at ``radius`` (sky from ``skyin..skyout``).
    eefraction : ndarray
        Encircled-energy fraction at ``radius``.
    skyin, skyout : float
        Inner and outer radius (pixels) of the sky annulus the corrections assume.
    source : str
        File the rows came from (for messages and provenance).
    tabulation_error : float
        Relative uncertainty of the tabulated values (default 0).
    """

    filter: str
    pupil: str
    radius: np.ndarray
    apcorr: np.ndarray
    eefraction: np.ndarray
    skyin: float
    skyout: float
    source: str = ""
    tabulation_error: float = 0.0

    @property
    def name(self) -> str:
        band = f"{self.filter}/{self.pupil}" if self.pupil else self.filter
        return f"apcorr table {self.source or '<memory>'} [{band}]"

    def correction(self, radius, *, strict: bool = False):
        """Aperture correction and its uncertainty at ``radius`` (pixels).

        Parameters
        ----------
        radius : float or array_like
            Aperture radii in pixels.
        strict : bool
            Raise :class:`ValueError` instead of returning NaN outside the table's range.

        Returns
        -------
        apcorr, apcorr_err : float or ndarray
            PCHIP-interpolated correction, and ``|pchip - linear|`` (+ the tabulation
            term) as its 1-sigma uncertainty; NaN outside ``radius[0]..radius[-1]``.
        """
        return _interpolate(
            self.radius, self.apcorr, radius, self.tabulation_error, self.name, strict
        )

    def ee_curve(self) -> EECurve:
        """The table's ``eefraction`` column as an :class:`EECurve`."""
        return EECurve(
            radius=self.radius,
            ee=self.eefraction,
            source=f"{self.source} [{self.filter}/{self.pupil}] eefraction",
            tabulation_error=self.tabulation_error,
        )


def _text(column) -> np.ndarray:
    return np.array([str(v).strip().upper() for v in column])


def load_apcorr_table(
    path, filter: str, pupil: str | None = None, *, subarray: str | None = None
) -> ApcorrTable:
    """Read the rows of a CRDS-style aperture-correction table for one band.

    Parameters
    ----------
    path : str or Path
        ECSV (or any format astropy reads, e.g. the CRDS FITS file) with columns
        ``filter``, ``radius``, ``apcorr``, ``skyin``, ``skyout`` and optionally
        ``pupil``, ``eefraction`` and ``subarray`` (MIRI).
    filter : str
        Filter name (case-insensitive).
    pupil : str, optional
        Pupil name; when omitted the table must hold a single pupil for ``filter``
        (``CLEAR``/``CLEARP`` are preferred when there are several).
    subarray : str, optional
        For tables with a ``subarray`` column; default: the ``FULL`` rows if present.

    Returns
    -------
    ApcorrTable

    Raises
    ------
    ReferenceError
        Unreadable file, missing columns, or no (or ambiguous) rows for the band.
    """
    path = Path(path)
    try:
        table = Table.read(path, format="ascii.ecsv" if path.suffix == ".ecsv" else None)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise ReferenceError(f"{path}: cannot read the apcorr table ({exc})") from exc
    cols = {c.lower(): c for c in table.colnames}
    missing = {"filter", "radius", "apcorr", "skyin", "skyout"} - set(cols)
    if missing:
        raise ReferenceError(f"{path}: apcorr table lacks column(s) {sorted(missing)}")
    rows = _text(table[cols["filter"]]) == filter.strip().upper()
    if not rows.any():
        raise ReferenceError(
            f"{path}: no rows for filter {filter!r} "
            f"(filters present: {sorted(set(_text(table[cols['filter']])))})"
        )
    if "subarray" in cols:
        subs = _text(table[cols["subarray"]])
        want = (subarray or ("FULL" if "FULL" in subs[rows] else subs[rows][0])).upper()
        rows &= subs == want
    chosen = ""
    if "pupil" in cols:
        pupils = _text(table[cols["pupil"]])
        present = sorted(set(pupils[rows]))
        if pupil is not None:
            chosen = pupil.strip().upper()
        elif len(present) == 1:
            chosen = present[0]
        else:
            clear = [p for p in ("CLEAR", "CLEARP") if p in present]
            if not clear:
                raise ReferenceError(
                    f"{path}: filter {filter!r} has several pupils {present}; give pupil="
                )
            chosen = clear[0]
        if chosen not in present:
            raise ReferenceError(
                f"{path}: no rows for {filter}/{chosen} (pupils for {filter}: {present})"
            )
        rows &= pupils == chosen
    sub = table[rows]
    ee = sub[cols["eefraction"]] if "eefraction" in cols else np.full(len(sub), np.nan)
    radius, apcorr, eefraction = _sorted_unique(
        sub[cols["radius"]], sub[cols["apcorr"]], ee, name=str(path)
    )
    return ApcorrTable(
        filter=filter.strip().upper(),
        pupil=chosen,
        radius=radius,
        apcorr=apcorr,
        eefraction=eefraction,
        skyin=float(sub[cols["skyin"]][0]),
        skyout=float(sub[cols["skyout"]][0]),
        source=str(path),
    )


# --------------------------------------------------------------------- EE curves


@dataclass
class EECurve:
    """Reference encircled energy vs radius (fraction of the total flux).

    Attributes
    ----------
    radius : ndarray
        Radii in pixels, increasing.
    ee : ndarray
        Encircled-energy fraction at ``radius``.
    source : str
        Where the curve came from (file and column), for messages and provenance.
    radius_arcsec : ndarray, optional
        The same radii in arcsec when the table gives them.
    tabulation_error : float
        Relative uncertainty of the tabulated EE (default 0).
    """

    radius: np.ndarray
    ee: np.ndarray
    source: str = ""
    radius_arcsec: np.ndarray | None = None
    tabulation_error: float = 0.0
    meta: dict = field(default_factory=dict)

    def __call__(self, radius, *, strict: bool = False):
        """EE fraction and its interpolation uncertainty at ``radius`` (pixels)."""
        return _interpolate(
            self.radius, self.ee, radius, self.tabulation_error, self.source, strict
        )

    def apcorr(self, radius, *, strict: bool = False):
        """Aperture correction ``1 / EE(r)`` and its uncertainty at ``radius`` (pixels)."""
        ee, err = self(radius, strict=strict)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / ee, np.asarray(err) / np.asarray(ee) ** 2


def read_radtab(path, tabulation_error: float = 0.0) -> EECurve:
    """Read a WebbPSF ``*_psf.radtab`` EE table (seed 001 format).

    Whitespace columns ``Radius`` [px], ``Rad_arcsec``, ``Flux`` (EE fraction) and
    ``errFlux``. ``errFlux`` is ``sqrt(Flux)`` in these files (a counting-statistics
    column of a noiseless model, not an uncertainty of the EE), so it is not used.
    """
    path = Path(path)
    try:
        t = Table.read(path, format="ascii.basic")
    except Exception as exc:  # noqa: BLE001
        raise ReferenceError(f"{path}: cannot read the radtab EE table ({exc})") from exc
    names = [c.lower() for c in t.colnames]
    if len(names) < 3:
        raise ReferenceError(f"{path}: expected Radius, Rad_arcsec, Flux columns, got {names}")
    radius, arcsec, ee = _sorted_unique(t.columns[0], t.columns[1], t.columns[2], name=str(path))
    return EECurve(radius, ee, f"{path}", arcsec, tabulation_error)


def read_psf_ee_ecsv(path, tabulation_error: float = 0.0) -> EECurve:
    """Read the simulator's ``psf_ee_<FILTER>.ecsv`` (radius [px], radius_arcsec, ee)."""
    path = Path(path)
    try:
        t = Table.read(path, format="ascii.ecsv")
        radius, arcsec, ee = _sorted_unique(
            t["radius"], t["radius_arcsec"], t["ee"], name=str(path)
        )
    except ReferenceError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ReferenceError(f"{path}: cannot read the EE table ({exc})") from exc
    return EECurve(radius, ee, str(path), arcsec, tabulation_error, dict(t.meta))


def _hst_column(names, instrument: str, filter: str) -> str | None:
    want = [instrument.lower().replace("/", ",").replace(" ", ""), filter.lower()]
    for name in names:
        parts = name.lower().split(",")
        if parts[-1] == want[1] and ",".join(parts[:-1]).startswith(want[0]):
            return name
    return None


def read_hst_ee_fits(
    path, instrument: str, filter: str, pixel_scale: float, tabulation_error: float = 0.0
) -> EECurve:
    """Read one band of the HST EE FITS table (``radius`` [arcsec] + ``inst,det,filter``).

    Parameters
    ----------
    instrument : str
        Column prefix, e.g. ``"wfc3,ir"``, ``"acs,wfc1"`` or ``"wfc3,uvis"``.
    pixel_scale : float
        Arcsec per pixel of the image the curve is compared with (radii -> pixels).
    """
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            t = Table(hdul[1].data)
    except Exception as exc:  # noqa: BLE001
        raise ReferenceError(f"{path}: cannot read the HST EE table ({exc})") from exc
    column = _hst_column(t.colnames, instrument, filter)
    if column is None:
        raise ReferenceError(
            f"{path}: no column for {instrument} {filter} (columns: {t.colnames[1:]})"
        )
    arcsec, ee = _sorted_unique(t["radius"], t[column], name=str(path))
    return EECurve(arcsec / pixel_scale, ee, f"{path} [{column}]", arcsec, tabulation_error)


def read_hst_ee_csv(
    path, filter: str, pixel_scale: float, tabulation_error: float = 0.0
) -> EECurve:
    """Read one row of a published WFC3 EE CSV (``FILTER``, ``APER#<arcsec>`` columns).

    The last aperture (6 arcsec, EE 1 by definition) is the normalisation of the table.
    """
    path = Path(path)
    try:
        t = Table.read(path, format="ascii.csv")
    except Exception as exc:  # noqa: BLE001
        raise ReferenceError(f"{path}: cannot read the EE CSV ({exc})") from exc
    rows = _text(t["FILTER"]) == filter.strip().upper()
    if not rows.any():
        raise ReferenceError(f"{path}: no row for filter {filter!r}")
    apers = [c for c in t.colnames if re.fullmatch(r"APER#[0-9.]+", c)]
    arcsec = np.array([float(c.split("#")[1]) for c in apers])
    ee = np.array([float(t[c][rows][0]) for c in apers])
    arcsec, ee = _sorted_unique(arcsec, ee, name=str(path))
    return EECurve(
        arcsec / pixel_scale, ee, f"{path} [{filter.upper()}]", arcsec, tabulation_error
    )


# --------------------------------------------------------------- config selection


def reference_spec(references: list[dict] | None, instrument: str, filter: str) -> dict | None:
    """The first ``references`` entry matching ``instrument`` and ``filter``.

    Each entry is a dict with ``kind`` (``radtab``, ``psf_ee``, ``apcorr``,
    ``hst_fits``, ``hst_csv``), ``path`` (may contain ``{filter}``/``{FILTER}``), and
    optional ``instrument`` and ``filters`` (list) to select by, ``column`` (HST FITS
    column prefix), ``pupil`` (apcorr) and ``tabulation_error``. Missing
    ``instrument``/``filters`` match anything.
    """
    for spec in references or []:
        inst = spec.get("instrument")
        if inst and inst.strip().upper() != (instrument or "").strip().upper():
            continue
        filters = spec.get("filters")
        if filters and filter.upper() not in [f.upper() for f in filters]:
            continue
        return spec
    return None


def load_reference_ee(spec: dict, filter: str, pixel_scale: float | None = None) -> EECurve:
    """Load the reference EE curve described by one ``references`` entry (see
    :func:`reference_spec`) for ``filter``; ``pixel_scale`` [arcsec/px] is needed for the
    HST tables, whose radii are in arcsec."""
    kind = spec.get("kind", "radtab")
    path = Path(str(spec["path"]).format(filter=filter.lower(), FILTER=filter.upper()))
    tab_err = float(spec.get("tabulation_error", 0.0))
    if not path.exists():
        raise ReferenceError(f"{path}: reference EE file ({kind}) not found for {filter}")
    if kind == "radtab":
        return read_radtab(path, tab_err)
    if kind == "psf_ee":
        return read_psf_ee_ecsv(path, tab_err)
    if kind == "apcorr":
        table = load_apcorr_table(path, filter, spec.get("pupil"))
        table.tabulation_error = tab_err
        return table.ee_curve()
    if kind in ("hst_fits", "hst_csv"):
        if not pixel_scale:
            raise ReferenceError(f"{path}: an HST EE table needs the image's pixel scale")
        if kind == "hst_fits":
            return read_hst_ee_fits(
                path, spec.get("column", "wfc3,ir"), filter, pixel_scale, tab_err
            )
        return read_hst_ee_csv(path, filter, pixel_scale, tab_err)
    raise ReferenceError(f"unknown reference EE kind {kind!r} for {path}")


def total_from_ee(radius, flux, flux_err, reference: EECurve, rmin: float, rmax: float):
    """Total flux from a measured curve of growth and a reference EE curve.

    At every measured radius with ``rmin <= r <= rmax`` the total is
    ``T_i = F(r_i) / EE(r_i)`` with ``sigma_i^2 = (sigma_F/EE)^2 + (F sigma_EE/EE^2)^2``.
    The result is the plain mean of the ``T_i`` (they share most of their photons, so an
    inverse-variance mean would pretend independent information), and its error is the
    largest single ``sigma_i`` (as in seed 001: the measurements are nearly fully
    correlated, so averaging does not shrink the error), combined in quadrature with the
    standard deviation of the ``T_i`` about their mean (a systematic: how well the shape
    of the reference matches the measured curve). Seed 001's totfluxes takes, per radius,
    the largest count rate of the dithers; here the curve is the weighted mean over
    dithers (the maximum of noisy values is biased high).

    Returns
    -------
    total, total_err, n : float, float, int
        NaN, NaN, 0 when no finite radius lies in the range.
    """
    r = np.asarray(radius, dtype=float)
    f = np.asarray(flux, dtype=float)
    fe = np.asarray(flux_err, dtype=float)
    use = (r >= rmin) & (r <= rmax)
    ee, ee_err = reference(r[use])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = f[use] / ee
        te = np.hypot(fe[use] / ee, f[use] * ee_err / ee**2)
    ok = np.isfinite(t) & np.isfinite(te)
    if not ok.any():
        return np.nan, np.nan, 0
    total = float(np.mean(t[ok]))
    scatter = float(np.std(t[ok])) if ok.sum() > 1 else 0.0
    return total, float(np.hypot(np.max(te[ok]), scatter)), int(ok.sum())


# ------------------------------------------------------------- per-group tables


def throughput_factor(throughput: dict | None, filter: str, pupil: str = "") -> float:
    """Factor for ``filter`` (or else ``pupil``) from a ``{name: factor}`` mapping; 1.

    Seed 001 multiplies the totals of the filter-wheel filters (used with the CLEARP pupil
    element) by 0.84, because the WebbPSF EE tables it divides by include CLEARP's 0.84
    throughput loss: ``{CLEARP: 0.84}`` (or per filter) reproduces that.
    """
    table = {str(k).upper(): float(v) for k, v in (throughput or {}).items()}
    for key in ((filter or "").upper(), (pupil or "").upper()):
        if key and key in table:
            return table[key]
    return 1.0


def group_apcorr(
    mean: Table,
    reference: EECurve | None,
    rmin: float = 5.0,
    rmax: float = 10.0,
    throughput: float = 1.0,
) -> Table:
    """Aperture corrections and the total count rate of one group (filter + subarray).

    Parameters
    ----------
    mean : Table
        The group's mean curve of growth (:func:`aperflow.profiles.mean_profile`:
        ``radius``, ``mean``, ``mean_err``).
    reference : EECurve or None
        Reference EE; None gives NaN corrections and totals (no reference configured).
    rmin, rmax : float
        Radius range (pixels) whose ``F(r)/EE(r)`` are averaged (seed 001: 5-10 px).
    throughput : float
        Factor applied to the total (see :func:`throughput_factor`).

    Returns
    -------
    Table
        Per radius: ``ee_ref``, ``ee_ref_err``, ``apcorr`` (= 1/EE), ``apcorr_err``,
        ``flux``, ``flux_err``, ``total_r`` (= flux x apcorr x throughput),
        ``total_r_err``, ``in_range`` and ``ee_measured`` (flux / total); the metadata
        hold ``total``, ``total_err``, ``n_radii`` and the reference.
    """
    r = np.asarray(mean["radius"], dtype=float)
    flux = np.asarray(mean["mean"], dtype=float)
    flux_err = np.asarray(mean["mean_err"], dtype=float)
    out = Table({"radius": r})
    out["radius"].unit = "pix"
    if "radius_arcsec" in mean.colnames:
        out["radius_arcsec"] = mean["radius_arcsec"]
    if reference is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReferenceRangeWarning)
            ee, ee_err = reference(r)
            ac, ac_err = reference.apcorr(r)
        total, total_err, n = total_from_ee(r, flux, flux_err, reference, rmin, rmax)
    else:
        ee = ee_err = ac = ac_err = np.full(r.size, np.nan)
        total, total_err, n = np.nan, np.nan, 0
    total, total_err = total * throughput, total_err * throughput
    out["ee_ref"], out["ee_ref_err"] = ee, ee_err
    out["apcorr"], out["apcorr_err"] = ac, ac_err
    out["flux"], out["flux_err"] = flux, flux_err
    with np.errstate(invalid="ignore", divide="ignore"):
        out["total_r"] = flux * ac * throughput
        out["total_r_err"] = np.hypot(flux_err * ac, flux * ac_err) * throughput
        out["ee_measured"] = flux / total
        out["ee_measured_err"] = flux_err / total
    out["in_range"] = (r >= rmin) & (r <= rmax)
    out.meta.update({k: v for k, v in mean.meta.items() if k != "dithers"})
    out.meta.update(
        total=float(total),
        total_err=float(total_err),
        n_radii=int(n),
        radius_range=[float(rmin), float(rmax)],
        throughput=float(throughput),
        reference=reference.source if reference is not None else "none configured",
        n_dithers=len(mean.meta.get("dithers", {})),
        total_rule=(
            "mean over radius_range of F(r)/EE_ref(r) times throughput; error = largest "
            "single-radius error (+) scatter of F/EE over the range"
        ),
    )
    return out


def totals_table(groups: list[Table]) -> Table:
    """One row per filter of a subarray: total count rate, flux density and AB magnitude.

    Inputs are :func:`group_apcorr` tables; the flux calibration stored in their
    metadata (``calibration``: factor, unit, zeropoint, system) gives ``flux`` in its
    unit (Jy where the header allows) and ``mag`` in its system (AB, else instrumental).
    """
    from aperflow import flags as F
    from aperflow.calibration import magnitude, magnitude_error

    rows = []
    for g in groups:
        m = g.meta
        cal = m.get("calibration") or {"factor": 1.0, "unit": "", "zeropoint": 0.0}
        total, err = float(m.get("total", np.nan)), float(m.get("total_err", np.nan))
        flux, flux_err = cal["factor"] * total, cal["factor"] * err
        flag = 0 if total > 0 else F.NONPOSITIVE
        rows.append(
            {
                "filter": m.get("filter", ""),
                "pupil": m.get("pupil", ""),
                "instrument": m.get("instrument", ""),
                "detector": m.get("detector", ""),
                "group": m.get("group", ""),
                "n_dithers": int(m.get("n_dithers", 0)),
                "n_radii": int(m.get("n_radii", 0)),
                "countrate": total,
                "countrate_err": err,
                "countrate_unit": m.get("bunit", ""),
                "throughput": float(m.get("throughput", 1.0)),
                "flux": float(flux),
                "flux_err": float(flux_err),
                "flux_unit": cal.get("unit", ""),
                "mag": float(magnitude(flux, cal.get("zeropoint", 0.0))),
                "mag_err": float(magnitude_error(flux, flux_err)),
                "mag_system": cal.get("system", "instrumental"),
                "reference": m.get("reference", ""),
                "flags": flag,
            }
        )
    names = ["filter", "pupil", "instrument", "detector", "group", "n_dithers", "n_radii",
             "countrate", "countrate_err", "countrate_unit", "throughput", "flux", "flux_err",
             "flux_unit", "mag", "mag_err", "mag_system", "reference", "flags"]  # fmt: skip
    table = (
        Table(rows=[[r[n] for n in names] for r in rows], names=names)
        if rows
        else Table(names=names)
    )
    if len(table):
        table.sort("filter")
    return table


def apcorr_of_file(mean_path, spec: dict | None, options: dict | None = None, log=None):
    """Workflow helper: :func:`group_apcorr` of a mean-EE table with the reference of one
    ``references`` entry (``spec``; empty: no reference, NaN totals, logged as a warning)
    and the ``total`` range and ``throughput`` of the standard options."""
    from aperflow.profiles import standard_options
    from aperflow.tables import read_table

    opts = standard_options(options)
    mean = read_table(mean_path)
    filt, pupil = mean.meta.get("filter", ""), mean.meta.get("pupil", "")
    reference = None
    if spec:
        reference = load_reference_ee(spec, filt, mean.meta.get("pixel_scale"))
        if log is not None:
            log.info("%s: reference EE %s", mean_path, reference.source)
    elif log is not None:
        log.warning(
            "%s: no standard.references entry for %s %s: no aperture correction or total",
            mean_path, mean.meta.get("instrument", ""), filt,
        )  # fmt: skip
    factor = throughput_factor(opts.get("throughput"), filt, pupil)
    total = opts["total"]
    table = group_apcorr(mean, reference, total["rmin"], total["rmax"], factor)
    if log is not None:
        log.info(
            "%s: total %.6g +- %.3g from %d radii in %s px (throughput %g)",
            mean_path, table.meta["total"], table.meta["total_err"], table.meta["n_radii"],
            table.meta["radius_range"], factor,
        )  # fmt: skip
    return table
