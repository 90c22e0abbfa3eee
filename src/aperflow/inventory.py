"""The inventory: every input header read once into one table, one row per image.

Columns: ``image`` (id), ``path``, ``dataset``, ``mode``, ``telescope``, ``instrument``,
``detector`` (NRCALONG -> NRCA5), ``filter`` (the effective filter, the pupil when it holds
one), ``pupil``, ``subarray``, ``exptime`` [s], ``mjd_start``, ``mjd_end``, ``bunit``,
``shape`` (e.g. ``400x400`` or ``200x64x64``), ``nints``, ``group``
(instrument-detector-filter-pupil-subarray) and ``error``: empty for a usable image, else
why the file cannot be used. Downstream rules take only rows with an empty ``error``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from astropy.io import fits
from astropy.table import Table

from aperflow.images import ImageError, _find_science_hdu, _merged_header, read_meta

__all__ = ["COLUMNS", "build_inventory", "inspect_file", "usable"]

log = logging.getLogger("aperflow.inventory")

COLUMNS = (
    "image", "path", "dataset", "mode", "telescope", "instrument", "detector", "filter",
    "pupil", "subarray", "exptime", "mjd_start", "mjd_end", "bunit", "shape", "nints",
    "group", "error",
)  # fmt: skip


def inspect_file(path: str) -> dict:
    """Read one file's headers (not its pixels) into an inventory row without ids.

    A file that cannot be read as an image gives a row whose ``error`` says why.
    """
    row = {"path": path, "error": ""}
    try:
        with fits.open(path, memmap=False) as hdul:
            sci = _find_science_hdu(hdul, path)
            hdu = hdul[sci]
            naxes = [
                hdu.header.get(f"NAXIS{i}", 0) for i in range(hdu.header.get("NAXIS", 0), 0, -1)
            ]
            if len(naxes) < 2 or min(naxes) < 2:
                raise ImageError(f"{path}: science HDU has shape {tuple(naxes)}, not an image")
            meta = read_meta(_merged_header(hdul, sci), path, tuple(naxes))
    except ImageError as exc:
        row["error"] = str(exc)
        return row
    except Exception as exc:  # truncated, not FITS, unreadable: report, never crash
        row["error"] = f"{path}: not a readable FITS image ({type(exc).__name__}: {exc})"
        return row
    row.update(meta.as_row())
    row["shape"] = "x".join(str(n) for n in naxes)
    return row


def build_inventory(datasets: Mapping, workers: int = 1) -> Table:
    """Inventory table of all images of ``datasets`` (a mapping name -> Dataset).

    Rows are sorted by data set then image id, so the table is identical on every run.
    ``workers`` > 1 reads the headers in that many forked processes (header parsing holds
    the GIL: ~2 ms a file, seconds for thousands) when there are enough files to pay.
    """
    entries = [
        (name, image, datasets[name])
        for name in sorted(datasets)
        for image in sorted(datasets[name].images)
    ]
    paths = [ds.images[image] for _, image, ds in entries]
    rows = []
    for (name, image, ds), row in zip(entries, _inspect_all(paths, workers), strict=True):
        row.update(image=image, dataset=name, mode=ds.mode)
        if row["error"]:
            log.warning("left out %s: %s", image, row["error"])
        rows.append(row)
    dtypes = [_dtype(c) for c in COLUMNS]
    cells = [[_cell(row, c) for c in COLUMNS] for row in rows]
    table = (
        Table(rows=cells, names=COLUMNS, dtype=dtypes)
        if rows
        else Table(names=COLUMNS, dtype=dtypes)
    )
    table["exptime"].unit = "s"
    table["mjd_start"].unit = table["mjd_end"].unit = "d"
    table.meta["comment"] = "one row per input image; rows with an error are left out downstream"
    return table


def _inspect_all(paths: list[str], workers: int) -> list[dict]:
    """:func:`inspect_file` of every path, in order, on ``workers`` forked processes."""
    if workers <= 1 or len(paths) < 100 * workers:
        return [inspect_file(path) for path in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(int(workers), mp_context=context) as pool:
        return list(pool.map(inspect_file, paths, chunksize=max(1, len(paths) // (8 * workers))))


_FLOATS = {"exptime", "mjd_start", "mjd_end"}


def _dtype(column: str):
    if column in _FLOATS:
        return float
    if column == "nints":
        return int
    return str


def _cell(row: dict, column: str):
    value = row.get(column)
    if column in _FLOATS:
        return np.nan if value in (None, "") else float(value)
    if column == "nints":
        return int(value) if value not in (None, "") and np.isfinite(value) else 0
    return "" if value is None else str(value)


def usable(table: Table) -> Table:
    """The rows of an inventory whose image can be used (empty ``error``)."""
    errors = table["error"]
    if hasattr(errors, "filled"):  # ECSV reads empty strings back as masked
        errors = errors.filled("")
    return table[np.array([not str(e).strip() for e in errors], dtype=bool)]
