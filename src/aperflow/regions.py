"""Targets of forced photometry: DS9 region files and coordinate lists.

Two inputs, one result (a :class:`TargetList`):

DS9 region files (:func:`read_ds9`)
    Read with the ``regions`` package, one line at a time so that a bad line is reported
    with its number while every good line still loads. Supported shapes: ``circle``,
    ``ellipse`` and ``annulus`` (and DS9's elliptical annulus, ``ellipse`` with several
    radii), in a sky frame (``fk5``, ``icrs``, ``galactic``, ...) or in ``image``
    coordinates (1-based in the file, 0-based here as everywhere in aperflow). The
    region's ``text={...}`` label is its id; a region without one is called
    ``<file stem>_L<line>``. Any other shape (``box``, ``polygon``, ``point``, ...),
    an exclude region (``-circle``) and the ``physical``/``detector`` frames are refused
    with a message naming the file and line. A region flagged ``background`` whose text
    matches a source region is that source's sky region (DS9's own convention).
Coordinate lists (:func:`read_coordinates`)
    CSV or ECSV with columns ``id, ra, dec`` (degrees, or sexagesimal strings ``hh:mm:ss
    +dd:mm:ss``) and optionally ``radius`` (arcsec) for circles, or ``a, b`` (semi-axes,
    arcsec) and ``theta`` (position angle of the major axis in degrees, east of north)
    for ellipses. Rows without a size get the configured default radius. Columns with
    units (ECSV) are converted from their units.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

__all__ = [
    "SHAPES",
    "RegionFileError",
    "Target",
    "TargetList",
    "read_coordinates",
    "read_ds9",
    "read_targets",
]

log = logging.getLogger("aperflow.regions")

#: Shapes forced photometry measures (the kind of a :class:`Target`).
SHAPES = ("circle", "ellipse", "circle_annulus", "ellipse_annulus")

_REGION_KINDS = {
    "CircleSkyRegion": "circle",
    "CirclePixelRegion": "circle",
    "EllipseSkyRegion": "ellipse",
    "EllipsePixelRegion": "ellipse",
    "CircleAnnulusSkyRegion": "circle_annulus",
    "CircleAnnulusPixelRegion": "circle_annulus",
    "EllipseAnnulusSkyRegion": "ellipse_annulus",
    "EllipseAnnulusPixelRegion": "ellipse_annulus",
}
_DS9_SHAPES = ("circle", "ellipse", "annulus")
_SKY_FRAMES = ("fk5", "fk4", "icrs", "galactic", "ecliptic", "j2000", "b1950")
_PIXEL_FRAMES = ("image",)
_UNSUPPORTED_FRAMES = ("physical", "detector", "amplifier", "linear", "wcs", "wcsa")
_SHAPE_RE = re.compile(r"^\s*([+-]?)\s*([A-Za-z_]+)")
_COMMENT_SHAPE_RE = re.compile(r"^#\s*(text|vector|ruler|compass|projection|composite|segment)\b")


class RegionFileError(ValueError):
    """A region or coordinate file cannot be read at all (missing, empty, no columns)."""


@dataclass
class Target:
    """One region to measure.

    Attributes
    ----------
    id : str
        The region's label (DS9 ``text``, or the ``id`` column of a coordinate list).
    kind : str
        One of :data:`SHAPES`.
    region : regions.Region
        The region, in sky (``*SkyRegion``) or 0-based pixel (``*PixelRegion``) coordinates.
    origin : str
        Where it came from, ``file:line`` (or ``file:row N``), for messages.
    sky_region : regions.Region or None
        A DS9 ``background`` region given for this target (its local sky), else None.
    """

    id: str
    kind: str
    region: object
    origin: str
    sky_region: object | None = None

    @property
    def is_sky(self) -> bool:
        """True when the region is in sky coordinates (needs an image WCS)."""
        return hasattr(self.region, "to_pixel")


@dataclass
class TargetList:
    """Targets read from region files and coordinate lists, with the problems met.

    ``problems`` holds one message per refused or malformed line (file and line named);
    the targets of the good lines are in ``targets`` all the same.
    """

    targets: list[Target] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self):
        return iter(self.targets)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.targets]

    def extend(self, other: TargetList) -> None:
        """Append ``other``'s targets (renaming duplicate ids) and problems."""
        self.sources.extend(other.sources)
        self.problems.extend(other.problems)
        self.targets.extend(other.targets)
        _dedupe(self)


def _unique(name: str, seen: set[str]) -> str:
    k = 2
    while f"{name}_{k}" in seen:
        k += 1
    return f"{name}_{k}"


# ----------------------------------------------------------------------------- DS9


def _split_commands(line: str) -> list[str]:
    """Split a DS9 line on ``;`` outside parentheses, braces and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth = max(depth - 1, 0)
        elif ch == "#" and depth == 0:
            break  # the rest is the comment of the last command
        elif ch == ";" and depth == 0:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    return [p.strip() for p in parts if p.strip()]


def _is_background(command: str) -> bool:
    """True when the command's comment carries DS9's ``background`` property."""
    if "#" not in command:
        return False
    comment = command.split("#", 1)[1]
    comment = re.sub(r"\{[^}]*\}|\"[^\"]*\"|'[^']*'", "", comment)  # drop text={...}
    return re.search(r"(^|\s)background(\s|=1|$)", comment) is not None


def _parse_one(command: str, frame: str, global_line: str):
    """Parse one DS9 shape command with the regions package; return (regions, warnings)."""
    from regions import Regions

    text = "# Region file format: DS9 version 4.1\n"
    if global_line:
        text += global_line + "\n"
    text += f"{frame}\n{command}\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        regs = Regions.parse(text, format="ds9")
    return list(regs), [str(w.message) for w in caught]


def read_ds9(path: str | Path) -> TargetList:
    """Read a DS9 region file into targets; refuse unsupported lines one by one.

    Parameters
    ----------
    path : str or Path
        The region file.

    Returns
    -------
    TargetList
        Targets of every good line, in file order, and one message per refused line
        (``<file>:<line>: ...``).

    Raises
    ------
    RegionFileError
        When the file cannot be read at all.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise RegionFileError(f"{path}: cannot read the region file ({exc})") from None
    out = TargetList(sources=[str(path)])
    frame, global_line = "", ""
    background: list[Target] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{path}:{lineno}"
        if not line:
            continue
        if line.startswith("#"):
            match = _COMMENT_SHAPE_RE.match(line)
            if match:
                out.problems.append(
                    f"{where}: shape {match.group(1)!r} is not supported "
                    f"(only {', '.join(_DS9_SHAPES)}): {line}"
                )
            continue
        if line.lower().startswith("global"):
            global_line = line
            continue
        for command in _split_commands(line):
            word = command.split("#", 1)[0].strip().lower()
            if word in _SKY_FRAMES or word in _PIXEL_FRAMES:
                frame = word
                continue
            if word in _UNSUPPORTED_FRAMES:
                frame = ""
                out.problems.append(
                    f"{where}: coordinate system {word!r} is not supported "
                    "(use image or a sky frame such as fk5/icrs); the regions that "
                    "follow it are skipped until the next supported one"
                )
                continue
            target = _command_target(command, frame, global_line, where, path, lineno, out)
            if target is None:
                continue
            for t in target:
                (background if _is_background(command) else out.targets).append(t)
    _dedupe(out)
    _attach_background(out, background)
    return out


def _command_target(command, frame, global_line, where, path, lineno, out):
    match = _SHAPE_RE.match(command)
    sign, shape = (match.group(1), match.group(2).lower()) if match else ("", "")
    if shape not in _DS9_SHAPES:
        out.problems.append(
            f"{where}: shape {shape or command!r} is not supported "
            f"(only {', '.join(_DS9_SHAPES)}): {command}"
        )
        return None
    if sign == "-":
        out.problems.append(f"{where}: exclude regions are not supported: {command}")
        return None
    if not frame:
        out.problems.append(
            f"{where}: no supported coordinate system (fk5, icrs, image, ...) before this "
            f"line: {command}"
        )
        return None
    try:
        regs, messages = _parse_one(command, frame, global_line)
    except Exception as exc:  # the regions parser raises many types on bad input
        out.problems.append(f"{where}: malformed region ({type(exc).__name__}: {exc}): {command}")
        return None
    if not regs:
        why = "; ".join(messages) or "nothing parsed"
        out.problems.append(f"{where}: malformed region ({why}): {command}")
        return None
    targets = []
    for k, reg in enumerate(regs):
        kind = _REGION_KINDS.get(type(reg).__name__)
        if kind is None:
            out.problems.append(
                f"{where}: {type(reg).__name__} is not supported (only {', '.join(SHAPES)})"
            )
            continue
        label = str(reg.meta.get("text", "")).strip() or f"{path.stem}_L{lineno}"
        if len(regs) > 1:  # DS9 "annulus(x, y, r1, r2, r3)" is several annuli
            label = f"{label}_{k + 1}"
        targets.append(Target(label, kind, reg, where))
    return targets


def _dedupe(out: TargetList) -> None:
    seen: set[str] = set()
    for target in out.targets:
        if target.id in seen:
            new = _unique(target.id, seen)
            out.problems.append(
                f"{target.origin}: id {target.id!r} is used before; renamed {new!r}"
            )
            target.id = new
        seen.add(target.id)


def _attach_background(out: TargetList, background: list[Target]) -> None:
    """Give each DS9 ``background`` region to the source region with the same text."""
    by_id = {t.id: t for t in out.targets}
    for bkg in background:
        source = by_id.get(bkg.id)
        if source is None:
            out.problems.append(
                f"{bkg.origin}: background region {bkg.id!r} matches no source region's "
                "text; ignored"
            )
        elif bkg.kind not in ("circle_annulus", "ellipse_annulus"):
            out.problems.append(
                f"{bkg.origin}: background region {bkg.id!r} must be an annulus, not a "
                f"{bkg.kind}; ignored"
            )
        elif bkg.is_sky != source.is_sky:
            out.problems.append(
                f"{bkg.origin}: background region {bkg.id!r} is in "
                f"{'sky' if bkg.is_sky else 'pixel'} coordinates but its source is not; ignored"
            )
        else:
            source.sky_region = bkg.region


# ------------------------------------------------------------------- coordinate lists


def _column(table: Table, *names: str):
    lower = {c.lower(): c for c in table.colnames}
    for name in names:
        if name in lower:
            return table[lower[name]]
    return None


def _values(col, unit: u.Unit, n: int) -> np.ndarray:
    """Float values of a column in ``unit`` (its own unit when it has one), NaN if empty."""
    if col is None:
        return np.full(n, np.nan)
    if hasattr(col, "filled"):
        if col.dtype.kind in "fiub":
            col = col.astype(float).filled(np.nan)
        else:
            col = col.filled("")
    if getattr(col, "unit", None) is not None:
        return np.asarray(u.Quantity(col).to_value(unit), dtype=float)
    out = np.full(n, np.nan)
    for i, value in enumerate(col):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            pass
    return out


def _sky_positions(ra_col, dec_col, n: int, where: str, problems: list[str]):
    """RA/Dec in degrees; sexagesimal strings parsed per row. Bad rows give NaN."""
    ra = _values(ra_col, u.deg, n)
    dec = _values(dec_col, u.deg, n)
    for i in np.flatnonzero(~(np.isfinite(ra) & np.isfinite(dec))):
        text = f"{ra_col[i]} {dec_col[i]}"
        try:
            c = SkyCoord(text, unit=(u.hourangle, u.deg))
            ra[i], dec[i] = c.ra.deg, c.dec.deg
        except (ValueError, TypeError):
            problems.append(f"{where} row {i + 1}: cannot read ra, dec from {text!r}; skipped")
    return ra, dec


def read_coordinates(path: str | Path, default_radius_arcsec: float = 0.5) -> TargetList:
    """Read a CSV/ECSV coordinate list into sky targets.

    Parameters
    ----------
    path : str or Path
        The list: columns ``id, ra, dec`` and optionally ``radius`` or ``a, b, theta``
        (see the module docstring). Column names are case-insensitive.
    default_radius_arcsec : float
        Radius of the circle of rows without a size.

    Returns
    -------
    TargetList

    Raises
    ------
    RegionFileError
        When the file cannot be read or has no ``ra``/``dec`` columns.
    """
    from regions import CircleSkyRegion, EllipseSkyRegion

    path = Path(path)
    fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:
        raise RegionFileError(f"{path}: cannot read the coordinate list ({exc})") from None
    names = {"ra": ("ra", "ra_deg", "raj2000"), "dec": ("dec", "dec_deg", "dej2000")}
    ra_col, dec_col = _column(table, *names["ra"]), _column(table, *names["dec"])
    missing = [key for key, col in (("ra", ra_col), ("dec", dec_col)) if col is None]
    if missing:
        accepted = "; ".join(f"{key}: {', '.join(names[key])}" for key in missing)
        raise RegionFileError(
            f"{path}: coordinate list without column(s) {', '.join(missing)} "
            f"(accepted names, any case: {accepted}); found columns {table.colnames}; "
            "needed: ra, dec [deg or sexagesimal], optional id, radius or a, b, theta"
        )
    out = TargetList(sources=[str(path)])
    n = len(table)
    where = str(path)
    ra, dec = _sky_positions(ra_col, dec_col, n, where, out.problems)
    ids = _column(table, "id", "name", "label")
    if ids is not None and hasattr(ids, "filled"):
        ids = ids.astype(str).filled("")
    radius = _values(_column(table, "radius", "r"), u.arcsec, n)
    a = _values(_column(table, "a"), u.arcsec, n)
    b = _values(_column(table, "b"), u.arcsec, n)
    theta = _values(_column(table, "theta", "pa"), u.deg, n)
    if default_radius_arcsec is None or not default_radius_arcsec > 0:
        raise RegionFileError(f"default radius {default_radius_arcsec!r} must be > 0 arcsec")
    for i in range(n):
        if not (np.isfinite(ra[i]) and np.isfinite(dec[i])):
            continue
        label = str(ids[i]).strip() if ids is not None else ""
        label = label or f"row{i + 1}"
        origin = f"{where} row {i + 1}"
        center = SkyCoord(ra[i] * u.deg, dec[i] * u.deg)
        if np.isfinite(a[i]) and np.isfinite(b[i]):
            if not (a[i] > 0 and b[i] > 0):
                out.problems.append(f"{origin}: a={a[i]}, b={b[i]} must be > 0; skipped")
                continue
            pa = theta[i] if np.isfinite(theta[i]) else 0.0
            # regions' angle runs from the longitude axis; PA runs from north: +90 deg.
            reg = EllipseSkyRegion(
                center, 2 * a[i] * u.arcsec, 2 * b[i] * u.arcsec, angle=(pa + 90.0) * u.deg
            )
            out.targets.append(Target(label, "ellipse", reg, origin))
            continue
        r = radius[i] if np.isfinite(radius[i]) else default_radius_arcsec
        if not r > 0:
            out.problems.append(f"{origin}: radius {r} must be > 0; skipped")
            continue
        out.targets.append(Target(label, "circle", CircleSkyRegion(center, r * u.arcsec), origin))
    _dedupe(out)
    return out


def read_targets(
    regions: str | Path | Iterable[str | Path] | None = None,
    coordinates: str | Path | Iterable[str | Path] | None = None,
    default_radius_arcsec: float = 0.5,
) -> TargetList:
    """Every target of a data set: its DS9 region files then its coordinate lists.

    A file that cannot be read at all is a problem of the list, not an exception, so the
    other files still give their targets. Duplicate ids across files are renamed
    (``star01_2``) with a message.
    """
    out = TargetList()
    for kind, paths in (("regions", regions), ("coordinates", coordinates)):
        if paths is None:
            continue
        for p in [paths] if isinstance(paths, str | Path) else list(paths):
            try:
                part = (
                    read_ds9(p)
                    if kind == "regions"
                    else read_coordinates(p, default_radius_arcsec)
                )
            except RegionFileError as exc:
                out.problems.append(str(exc))
                continue
            out.extend(part)
    return out
