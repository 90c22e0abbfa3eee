"""The per-image steps of the workflow as functions: file paths in, files out.

Each function is what a one-image rule's script does (``workflow/scripts/field_background.py``
and so on) and what a batch job does for each of its images
(``workflow/scripts/field_batch.py``, ``forced_batch.py``; see :mod:`aperflow.batches`), so
both ways give the same files byte for byte. An image that cannot be used gives the step's
documented "failed" output (a failed background, an empty table whose metadata say why, a
plot that says why) and an ERROR line naming the file, so that the later steps and the
other images go on.

Every step takes an :class:`ImageStep`: the image file, how to open it, the log, and which
exceptions count as "this image cannot be used". One-image jobs catch the expected ones
(:class:`aperflow.images.ImageError`, ``ValueError``) and fail on anything else, so a bug
stops the job and a rerun retries it; a batch catches every ``Exception`` (:data:`ANY`),
because a failing job would take its other images' outputs with it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.background import (
    Background,
    background_of_image,
    read_background,
    write_background,
)
from aperflow.batches import file_workers, member_log, timed
from aperflow.detection import detect_image, find_sources
from aperflow.images import Image, ImageError, open_image
from aperflow.tables import read_table, write_table

__all__ = [
    "ANY",
    "EXPECTED",
    "FieldMember",
    "ForcedMember",
    "ImageStep",
    "field_background",
    "field_detect",
    "field_detections_plot",
    "field_photometry",
    "forced_image",
    "forced_regions_plot",
    "job_step",
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


@dataclass
class ImageStep:
    """One image as a step sees it.

    Attributes
    ----------
    path : str or Path
        The image file, as named in the config (recorded in the outputs).
    image_options : mapping
        Keywords of :func:`aperflow.images.open_image` (the ``images`` config block).
    log : logging.Logger
        The step's log (the one-image job's log file).
    image : aperflow.images.Image or None
        ``path`` already opened (a batch opens each image once; no step modifies it).
    catch : tuple of exception types
        Errors that give the step's failed output instead of raising.
    workers : int
        Threads of the background, detection and photometry, unless their options name
        their own ``workers`` (:func:`aperflow.batches.image_workers`).
    """

    path: PathLike
    image_options: Mapping = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("aperflow"))
    image: Image | None = None
    catch: tuple[type[BaseException], ...] = EXPECTED
    workers: int = 1

    def open(self) -> Image:
        """The image (opened now unless it was already)."""
        if self.image is None:
            return open_image(self.path, **self.image_options)
        return self.image

    def failed(self, what: str, exc: BaseException) -> None:
        """Log why the step gave up: one line naming the file, plus the traceback when the
        error was unexpected."""
        if isinstance(exc, ValueError):
            self.log.error("%s: %s: %s", self.path, what, exc)
        else:
            self.log.error(
                "%s: %s: %s: %s", self.path, what, type(exc).__name__, exc, exc_info=exc
            )


def job_step(
    path: PathLike, image_options: Mapping, log: logging.Logger, threads: int = 1
) -> ImageStep:
    """The :class:`ImageStep` of a one-image job, with the workers of the image's file
    (:func:`aperflow.batches.image_workers` of ``threads``, ``execution.image_threads``)."""
    return ImageStep(path, image_options, log, workers=file_workers(path, threads))


def open_or_none(path: PathLike, image_options: Mapping) -> Image | None:
    """The image, or None when it cannot be opened (each step then fails on it alone)."""
    try:
        return open_image(path, **image_options)
    except Exception:
        return None


# ----------------------------------------------------------------------------- field


def field_background(step: ImageStep, out: PathLike, options: Mapping) -> Background:
    """Rule ``background``: the sky map and RMS of one image, written as FITS (BKG, RMS).

    Parameters
    ----------
    step : ImageStep
    out : str or Path
        The background FITS file to write.
    options : mapping
        The data set's merged ``field`` options (``background``, ``mask_zeros``).

    Returns
    -------
    aperflow.background.Background
        As computed (the file holds it in float32; the next steps read the file).
    """
    try:
        settings = _with_workers(options.get("background"), step.workers)
        bkg = background_of_image(step.open(), settings, options.get("mask_zeros", True))
    except step.catch as exc:
        step.failed("no background", exc)
        nan = np.full((1, 1), np.nan, np.float32)
        bkg = Background(nan, nan, np.nan, np.nan, "failed", f"{step.path}: {exc}")
        _write_failed_background(bkg, out, step.path)
        return bkg
    step.log.info(
        "%s: background %s = %.5g, rms %.4g (%s)",
        step.path, bkg.method, bkg.median, bkg.std, bkg.note,
    )  # fmt: skip
    write_background(bkg, out, image=str(step.path))
    return bkg


def _with_workers(block: Mapping | None, workers: int) -> dict:
    """An options block with ``workers`` set, unless the config sets it."""
    out = dict(block or {})
    if out.get("workers") is None:
        out["workers"] = int(workers)
    return out


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


def field_detect(step: ImageStep, background: PathLike, out: PathLike, options: Mapping) -> Table:
    """Rule ``detect``: the sources of one image on its background-subtracted pixels.

    ``background`` is the file :func:`field_background` wrote (read back, so batched and
    one-image jobs detect on the same float32 maps); ``options`` as there. A failed image or
    background gives an empty table whose ``meta['error']`` says why. Returns the table
    written to ``out`` (ECSV).
    """
    try:
        bkg = read_background(background)
        if bkg.method == "failed":
            raise ValueError(bkg.note)
        det = _with_workers(options.get("detection"), step.workers)
        sources = detect_image(step.open(), bkg, det, options.get("mask_zeros", True))
    except step.catch as exc:
        step.failed("no detection", exc)
        sources = find_sources([[0.0]], 1.0, fwhm=1.0)[:0]
        sources.meta["error"] = str(exc)
    else:
        _log_detections(step.log, step.path, sources)
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
    step: ImageStep,
    sources: PathLike | Table,
    apcorr: PathLike | None,
    out: PathLike,
    parquet: PathLike,
    options: Mapping,
) -> Table:
    """Rule ``photometry``: multi-radius aperture photometry of one image at its sources.

    Parameters
    ----------
    step : ImageStep
    sources : str, Path or astropy.table.Table
        The detections: the file :func:`field_detect` wrote, or its returned table.
    apcorr : str or Path, optional
        The data set's aperture-correction table (``photometry.apcorr``).
    out, parquet : str or Path
        The ECSV and Parquet files to write.
    options : mapping
        The data set's merged ``field`` options.

    Returns
    -------
    astropy.table.Table
        The table written; for a failed image empty, with ``meta['error']`` saying why.
    """
    from aperflow.photometry import measure_from_options

    if not isinstance(sources, Table):
        sources = read_table(sources)
    try:
        if "error" in sources.meta:
            raise ValueError(sources.meta["error"])
        phot = _with_workers(options.get("photometry"), step.workers)
        table = measure_from_options(step.open(), sources, {**options, "photometry": phot}, apcorr)
    except step.catch as exc:
        step.failed("no photometry", exc)
        table = Table(meta={"image": str(step.path), "error": str(exc)})
    else:
        m = table.meta
        step.log.info(
            "%s: %d sources, radii %s px, annulus %s px (%s), sky %s, %s magnitudes (%s)",
            step.path, len(table), m["radii_px"], m["annulus_px"], m["annulus_from"],
            m["sky_statistic"], m["magnitude_system"], m["calibration"],
        )  # fmt: skip
        if len(table) == 0:
            step.log.warning("%s: no sources to measure: empty photometry table", step.path)
    write_table(table, out, parquet)
    return table


def field_detections_plot(
    step: ImageStep, table: PathLike | Table, out: PathLike, title: str
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
        step.log.warning("%s: no detections to draw: %s", step.path, table.meta["error"])
        plot_message(out, title, f"no photometry: {table.meta['error']}")
        return
    try:
        radius = float(table.meta["radii_px"][0])
        annulus = [float(r) for r in table.meta["annulus_px"]]
        plot_detections(step.open().data, table, out, radius, annulus, title)
    except step.catch as exc:
        step.failed("no detections plot", exc)
        plot_message(out, title, f"no detections plot: {exc}")
    else:
        step.log.info("%s: %d sources drawn", title, len(table))


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


@contextmanager
def _member_step(
    member, name: str, image_options: Mapping, workers: int = 1
) -> Iterator[ImageStep]:
    """One step of a batch member: its own log file and timing line, every error caught."""
    with member_log(member.logs[name], name) as log, timed(name, member.image):
        yield ImageStep(member.path, image_options, log, catch=ANY, workers=workers)


def run_field_member(
    member: FieldMember,
    options: Mapping,
    image_options: Mapping,
    apcorr: PathLike | None,
    threads: int = 1,
) -> bool:
    """Every field step of one image of a batch, each logged and timed into its own log.

    The image is opened once and shared by the steps. Any error of one step gives that
    step's failed output; returns False when the image has no photometry. ``threads`` is
    ``execution.image_threads``: the steps get :func:`aperflow.batches.image_workers` of
    the image's file, as its one-image jobs would.
    """
    m = member
    workers = file_workers(m.path, threads)
    with _member_step(m, "background", image_options, workers) as step:
        image = step.image = open_or_none(m.path, image_options)
        field_background(step, m.background, options)
    with _member_step(m, "detect", image_options, workers) as step:
        step.image = image
        sources = field_detect(step, m.background, m.sources, options)
    with _member_step(m, "photometry", image_options, workers) as step:
        step.image = image
        table = field_photometry(step, sources, apcorr, m.photometry, m.parquet, options)
    with _member_step(m, "plot_field_detections", image_options) as step:
        step.image = image
        field_detections_plot(step, table, m.plot, m.image)
    return "error" not in table.meta


# ---------------------------------------------------------------------------- forced


def forced_image(step: ImageStep, targets, out: PathLike, options: Mapping) -> Table:
    """Rule ``forced``: the data set's targets measured on one image (ECSV).

    Parameters
    ----------
    step : ImageStep
        A one-image job catches only :class:`aperflow.images.ImageError` here.
    targets : aperflow.regions.TargetList
        The data set's regions and coordinates (:func:`aperflow.regions.read_targets`);
        its problems (unusable lines) are logged as warnings.
    out : str or Path
    options : mapping
        :func:`aperflow.forced.forced_options` of the data set.

    Returns
    -------
    astropy.table.Table
        The table written; :func:`aperflow.forced.failed_table` for an image that cannot
        be used.
    """
    from aperflow.forced import failed_table, image_filter, measure_image

    for problem in targets.problems:
        step.log.warning("%s", problem)
    try:
        table = measure_image(step.open(), targets, options)
    except step.catch as exc:
        if isinstance(exc, ImageError):
            step.log.error("%s", exc)
        else:
            step.failed("no forced photometry", exc)
        band = image_filter("", str(step.path), options.get("filter_from_name"))
        table = failed_table(str(step.path), str(exc), band)
    else:
        m = table.meta
        step.log.info(
            "%s: filter %s, %d of %d regions measured, %s magnitudes (zero point %.4f: %s)",
            step.path, m["filter"], len(table), len(targets), m["mag_system"], m["zeropoint"],
            m["calibration"],
        )  # fmt: skip
        if m["off_image"]:
            step.log.info("not on this image: %s", ", ".join(m["off_image"]))
    table.meta["region_problems"] = list(targets.problems)
    write_table(table, out)
    return table


def forced_regions_plot(
    step: ImageStep, table: PathLike | Table, out: PathLike, plots: Mapping
) -> None:
    """Rule ``plot_forced_regions``: cut-outs of the regions on one image (PNG).

    ``plots`` is the ``forced.plots`` options block (``max_regions``, ``cutout_scale``).
    An image that cannot be opened gets a figure saying why (a one-image job catches only
    :class:`aperflow.images.ImageError` here).
    """
    from aperflow.plots.forced import plot_message, plot_regions

    if not isinstance(table, Table):
        table = read_table(table)
    title = Path(step.path).name
    try:
        plot_regions(
            step.open().data, table, out, title=f"{title} ({table.meta.get('filter', '')})",
            max_regions=plots["max_regions"], cutout_scale=plots["cutout_scale"],
        )  # fmt: skip
    except step.catch as exc:
        if isinstance(exc, ImageError):
            step.log.error("%s", exc)
        else:
            step.failed("no regions plot", exc)
        plot_message(out, title, str(exc))
    step.log.info("wrote %s", out)


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
    with _member_step(m, "forced", image_options) as step:
        image = step.image = open_or_none(m.path, image_options)
        table = forced_image(step, targets, m.table, options)
    with _member_step(m, "plot_forced_regions", image_options) as step:
        step.image = image
        forced_regions_plot(step, table, m.plot, options["plots"])
    return len(table) > 0 or not table.meta.get("problems")
