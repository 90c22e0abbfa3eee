"""The per-image steps of the workflow as functions: file paths in, files out.

Each function is what a one-image rule's script does (``workflow/scripts/field_background.py``
and so on) and what a batch job does for each of its images
(``workflow/scripts/field_batch.py``, ``forced_batch.py``; see :mod:`aperflow.batches`), so
both ways give the same files byte for byte. An image that cannot be used gives the step's
documented "failed" output (a failed background, an empty table whose metadata say why, a
plot that says why) and an ERROR line naming the file, so that the later steps and the
other images go on.

``catch`` says which exceptions count as "this image cannot be used": one-image jobs catch
the expected ones (:class:`aperflow.images.ImageError`, ``ValueError``) and fail on anything
else, so a bug stops the job and a rerun retries it; a batch catches every ``Exception``
(:data:`ANY`), because a failing job would take its other images' outputs with it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.background import (
    Background,
    background_of_image,
    read_background,
    write_background,
)
from aperflow.batches import member_log, timed
from aperflow.detection import detect_image, find_sources
from aperflow.images import Image, ImageError, open_image
from aperflow.tables import read_table, write_table

__all__ = [
    "ANY",
    "EXPECTED",
    "FieldMember",
    "ForcedMember",
    "field_background",
    "field_detect",
    "field_detections_plot",
    "field_photometry",
    "forced_image",
    "forced_regions_plot",
    "preload",
    "run_field_member",
    "run_forced_member",
]

#: What a one-image job treats as "this image cannot be used" (ImageError is a ValueError).
EXPECTED: tuple[type[BaseException], ...] = (ValueError,)
#: What a batch treats so: anything, since a failing job loses every member's outputs.
ANY: tuple[type[BaseException], ...] = (Exception,)

PathLike = str | Path

#: Modules each step imports on first use (photutils, pandas under pyarrow's Parquet
#: writer, matplotlib: ~1.5 s together). Jobs import them with :func:`preload` before
#: the timed work, so that a job's start-up is not counted as time inside the steps.
_PRELOAD = {
    "background": ("aperflow.photometry", "photutils.background"),
    "detect": ("aperflow.photometry", "photutils.detection"),
    "photometry": ("aperflow.photometry", "pyarrow.parquet", "pandas"),
    "plot_field_detections": ("aperflow.plots.field", "aperflow.plots.forced"),
    "forced": ("aperflow.forced", "aperflow.regions"),
    "plot_forced_regions": ("aperflow.plots.forced",),
}


def preload(*steps: str) -> None:
    """Import the modules the given steps (rule names) would import on first use."""
    for step in steps:
        for name in _PRELOAD[step]:
            importlib.import_module(name)


def _fail(log: logging.Logger, path: PathLike, what: str, exc: BaseException) -> None:
    """Log why a step gave up on an image: one line, plus the traceback when unexpected."""
    if isinstance(exc, ValueError):
        log.error("%s: %s: %s", path, what, exc)
    else:
        log.error("%s: %s: %s: %s", path, what, type(exc).__name__, exc, exc_info=exc)


def _image(path: PathLike, image: Image | None, image_options: Mapping) -> Image:
    return image if image is not None else open_image(path, **image_options)


def open_or_none(path: PathLike, image_options: Mapping) -> Image | None:
    """The image, or None when it cannot be opened (each step then fails on it alone)."""
    try:
        return open_image(path, **image_options)
    except Exception:
        return None


# ----------------------------------------------------------------------------- field


def field_background(
    path: PathLike,
    out: PathLike,
    options: Mapping,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = EXPECTED,
) -> Background:
    """Rule ``background``: the sky map and RMS of one image, written as FITS (BKG, RMS).

    Parameters
    ----------
    path : str or Path
        The image file (as named in the config; recorded in the output).
    out : str or Path
        The background FITS file to write.
    options : mapping
        The data set's merged ``field`` options (``background``, ``mask_zeros``).
    image_options : mapping
        Keywords of :func:`aperflow.images.open_image` (the ``images`` config block).
    log : logging.Logger
    image : aperflow.images.Image, optional
        ``path`` already opened (a batch opens each image once).
    catch : tuple of exception types
        Errors that give a "failed" background instead of raising.

    Returns
    -------
    aperflow.background.Background
        As computed (the file holds it in float32; the next steps read the file).
    """
    try:
        bkg = background_of_image(
            _image(path, image, image_options),
            options.get("background"),
            options.get("mask_zeros", True),
        )
    except catch as exc:
        _fail(log, path, "no background", exc)
        nan = np.full((1, 1), np.nan, np.float32)
        bkg = Background(nan, nan, np.nan, np.nan, "failed", f"{path}: {exc}")
        _write_failed_background(bkg, out, path)
        return bkg
    log.info(
        "%s: background %s = %.5g, rms %.4g (%s)",
        path, bkg.method, bkg.median, bkg.std, bkg.note,
    )  # fmt: skip
    write_background(bkg, out, image=str(path))
    return bkg


def _write_failed_background(bkg: Background, out: PathLike, path: PathLike) -> None:
    """The file of a failed background: what :func:`aperflow.background.write_background`
    writes, except that the NaN median and RMS are the string ``"NaN"`` (a FITS header
    cannot hold a NaN float: astropy refuses it), which ``read_background`` reads as NaN,
    and that the note (the reason) is not cut."""
    from astropy.io import fits

    from aperflow.tables import write_fits

    primary = fits.PrimaryHDU()
    header = primary.header
    header["BKGMETH"] = (bkg.method, "background method used")
    header["BKGMED"] = ("NaN", "median background level")
    header["BKGSTD"] = ("NaN", "median background RMS")
    header["BKGNOTE"] = bkg.note  # whole (CONTINUE cards): the later steps' error says why
    header["IMAGE"] = str(path)[:68]
    maps = [fits.ImageHDU(bkg.background, name="BKG"), fits.ImageHDU(bkg.rms, name="RMS")]
    write_fits(fits.HDUList([primary, *maps]), out)


def field_detect(
    path: PathLike,
    background: PathLike,
    out: PathLike,
    options: Mapping,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = EXPECTED,
) -> Table:
    """Rule ``detect``: the sources of one image on its background-subtracted pixels.

    ``background`` is the file :func:`field_background` wrote (read back, so batched and
    one-image jobs detect on the same float32 maps). A failed image or background gives an
    empty table whose ``meta['error']`` says why. Other parameters as
    :func:`field_background`; returns the table written to ``out`` (ECSV).
    """
    try:
        bkg = read_background(background)
        if bkg.method == "failed":
            raise ValueError(bkg.note)
        det = options.get("detection") or {}
        sources = detect_image(
            _image(path, image, image_options), bkg, det, options.get("mask_zeros", True)
        )
    except catch as exc:
        _fail(log, path, "no detection", exc)
        sources = find_sources([[0.0]], 1.0, fwhm=1.0)[:0]
        sources.meta["error"] = str(exc)
    else:
        _log_detections(log, path, sources)
    write_table(sources, out)
    return sources


def _log_detections(log: logging.Logger, path: PathLike, sources: Table) -> None:
    m = sources.meta
    if len(sources) == 0:
        log.warning(
            "%s: no point sources above %.3g sigma (FWHM %.3g px, %s): empty source list",
            path, m["threshold_sigma"], m["fwhm_px"], m["method"],
        )  # fmt: skip
    else:
        log.info(
            "%s: %d sources above %.3g sigma with %s, FWHM %.3g px (%s)",
            path, len(sources), m["threshold_sigma"], m["method"], m["fwhm_px"],
            m["fwhm_from"],
        )  # fmt: skip


def field_photometry(
    path: PathLike,
    sources: PathLike | Table,
    apcorr: PathLike | None,
    out: PathLike,
    parquet: PathLike,
    options: Mapping,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = EXPECTED,
) -> Table:
    """Rule ``photometry``: multi-radius aperture photometry of one image at its sources.

    Parameters
    ----------
    sources : str, Path or astropy.table.Table
        The detections: the file :func:`field_detect` wrote, or its returned table.
    apcorr : str or Path, optional
        The data set's aperture-correction table (``photometry.apcorr``).
    out, parquet : str or Path
        The ECSV and Parquet files to write.

    Other parameters as :func:`field_background`. A failed image gives an empty table whose
    ``meta['error']`` says why. Returns the table written.
    """
    from aperflow.photometry import measure_from_options

    if not isinstance(sources, Table):
        sources = read_table(sources)
    try:
        if "error" in sources.meta:
            raise ValueError(sources.meta["error"])
        image = _image(path, image, image_options)
        table = measure_from_options(image, sources, options, apcorr)
    except catch as exc:
        _fail(log, path, "no photometry", exc)
        table = Table(meta={"image": str(path), "error": str(exc)})
    else:
        m = table.meta
        log.info(
            "%s: %d sources, radii %s px, annulus %s px (%s), sky %s, %s magnitudes (%s)",
            path, len(table), m["radii_px"], m["annulus_px"], m["annulus_from"],
            m["sky_statistic"], m["magnitude_system"], m["calibration"],
        )  # fmt: skip
        if len(table) == 0:
            log.warning("%s: no sources to measure: empty photometry table", path)
    write_table(table, out, parquet)
    return table


def field_detections_plot(
    path: PathLike,
    table: PathLike | Table,
    out: PathLike,
    title: str,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = EXPECTED,
) -> None:
    """Rule ``plot_field_detections``: the detections over the image (PNG).

    ``table`` is the photometry (file or table); its first radius and its annulus are
    drawn. An image whose photometry failed gets a figure saying why (and a WARNING: the
    failure itself was logged by the photometry step).
    """
    from aperflow.plots.field import plot_detections
    from aperflow.plots.forced import plot_message

    if not isinstance(table, Table):
        table = read_table(table)
    if "error" in table.meta:
        log.warning("%s: no detections to draw: %s", path, table.meta["error"])
        plot_message(out, title, f"no photometry: {table.meta['error']}")
        return
    try:
        data = _image(path, image, image_options).data
        radius = float(table.meta["radii_px"][0])
        annulus = [float(r) for r in table.meta["annulus_px"]]
        plot_detections(data, table, out, radius, annulus, title)
    except catch as exc:
        _fail(log, path, "no detections plot", exc)
        plot_message(out, title, f"no detections plot: {exc}")
    else:
        log.info("%s: %d sources drawn", title, len(table))


@dataclass(frozen=True)
class FieldMember:
    """One image of a field batch: its id, file, outputs and the logs of its steps.

    ``logs`` maps each step's rule name (``background``, ``detect``, ``photometry``,
    ``plot_field_detections``) to the log its one-image job would write.
    """

    image: str
    path: str
    background: str
    sources: str
    photometry: str
    parquet: str
    plot: str
    logs: Mapping[str, str]


def run_field_member(
    member: FieldMember, options: Mapping, image_options: Mapping, apcorr: PathLike | None
) -> bool:
    """Every field step of one image of a batch, each logged and timed into its own log.

    The image is opened once and shared by the steps (none modifies it). Any error of one
    step gives that step's failed output; returns False when the image has no photometry.
    """
    m = member
    with member_log(m.logs["background"], "background") as log, timed("background", m.image):
        image = open_or_none(m.path, image_options)
        field_background(m.path, m.background, options, image_options, log, image, ANY)
    with member_log(m.logs["detect"], "detect") as log, timed("detect", m.image):
        sources = field_detect(
            m.path, m.background, m.sources, options, image_options, log, image, ANY
        )
    with member_log(m.logs["photometry"], "photometry") as log, timed("photometry", m.image):
        table = field_photometry(
            m.path, sources, apcorr, m.photometry, m.parquet, options, image_options, log,
            image, ANY,
        )  # fmt: skip
    name = "plot_field_detections"
    with member_log(m.logs[name], name) as log, timed(name, m.image):
        field_detections_plot(m.path, table, m.plot, m.image, image_options, log, image, ANY)
    return "error" not in table.meta


# ---------------------------------------------------------------------------- forced


def forced_image(
    path: PathLike,
    targets,
    out: PathLike,
    options: Mapping,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = (ImageError,),
) -> Table:
    """Rule ``forced``: the data set's targets measured on one image (ECSV).

    Parameters
    ----------
    targets : aperflow.regions.TargetList
        The data set's regions and coordinates (:func:`aperflow.regions.read_targets`);
        its problems (unusable lines) are logged as warnings.
    options : mapping
        :func:`aperflow.forced.forced_options` of the data set.

    Other parameters as :func:`field_background` (a one-image job catches only
    :class:`aperflow.images.ImageError`). An image that cannot be used gives
    :func:`aperflow.forced.failed_table`. Returns the table written.
    """
    from aperflow.forced import failed_table, image_filter, measure_image

    for problem in targets.problems:
        log.warning("%s", problem)
    try:
        table = measure_image(_image(path, image, image_options), targets, options)
    except catch as exc:
        if isinstance(exc, ImageError):
            log.error("%s", exc)
        else:
            _fail(log, path, "no forced photometry", exc)
        band = image_filter("", str(path), options.get("filter_from_name"))
        table = failed_table(str(path), str(exc), band)
    else:
        m = table.meta
        log.info(
            "%s: filter %s, %d of %d regions measured, %s magnitudes (zero point %.4f: %s)",
            path, m["filter"], len(table), len(targets), m["mag_system"], m["zeropoint"],
            m["calibration"],
        )  # fmt: skip
        if m["off_image"]:
            log.info("not on this image: %s", ", ".join(m["off_image"]))
    table.meta["region_problems"] = list(targets.problems)
    write_table(table, out)
    return table


def forced_regions_plot(
    path: PathLike,
    table: PathLike | Table,
    out: PathLike,
    plots: Mapping,
    image_options: Mapping,
    log: logging.Logger,
    image: Image | None = None,
    catch: tuple[type[BaseException], ...] = (ImageError,),
) -> None:
    """Rule ``plot_forced_regions``: cut-outs of the regions on one image (PNG).

    ``plots`` is the ``forced.plots`` options block (``max_regions``, ``cutout_scale``).
    An image that cannot be opened gets a figure saying why.
    """
    from aperflow.plots.forced import plot_message, plot_regions

    if not isinstance(table, Table):
        table = read_table(table)
    title = Path(path).name
    try:
        plot_regions(
            _image(path, image, image_options).data, table, out,
            title=f"{title} ({table.meta.get('filter', '')})",
            max_regions=plots["max_regions"], cutout_scale=plots["cutout_scale"],
        )  # fmt: skip
    except catch as exc:
        if isinstance(exc, ImageError):
            log.error("%s", exc)
        else:
            _fail(log, path, "no regions plot", exc)
        plot_message(out, title, str(exc))
    log.info("wrote %s", out)


@dataclass(frozen=True)
class ForcedMember:
    """One image of a forced batch: its id, file, outputs, and the logs of its steps
    (``forced``, ``plot_forced_regions``)."""

    image: str
    path: str
    table: str
    plot: str
    logs: Mapping[str, str]


def run_forced_member(member: ForcedMember, targets, options: Mapping, image_options) -> bool:
    """The forced steps of one image of a batch (see :func:`run_field_member`); returns
    False when the image could not be measured."""
    m = member
    with member_log(m.logs["forced"], "forced") as log, timed("forced", m.image):
        image = open_or_none(m.path, image_options)
        table = forced_image(m.path, targets, m.table, options, image_options, log, image, ANY)
    name = "plot_forced_regions"
    with member_log(m.logs[name], name) as log, timed(name, m.image):
        forced_regions_plot(
            m.path, table, m.plot, options["plots"], image_options, log, image, ANY
        )
    return len(table) > 0 or not table.meta.get("problems")
