"""The run's problems in one table: ``results/problems.ecsv``.

Collected from the inventory (files that cannot be read as images) and from every job log
under ``logs/`` (WARNING and ERROR lines written through :func:`aperflow.logs.job_logger`;
an ERROR usually means the job failed and its outputs are missing). Job logs are named
``logs/<dataset>/<rule>/<image or group>.log``, which gives the table's columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.tables import read_table, write_table

__all__ = ["collect_problems", "write_problems"]

# Log levels that make a problem row; a log holding none of them is skipped unread.
_LEVELS = ("WARNING", "ERROR")
_LINE = re.compile(rf"^({'|'.join(_LEVELS)}) (\S+): (.*)$")
_MARKERS = tuple(f"{level} ".encode() for level in _LEVELS)
COLUMNS = ("dataset", "stage", "item", "level", "message", "source")


def _where(parts: tuple[str, ...]) -> tuple[str, str, str]:
    """(dataset, stage, item) of a log path: ``<dataset>/<rule>/<item>`` or ``<rule>``."""
    if len(parts) >= 3:
        return parts[0], parts[1], "/".join(parts[2:])
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", parts[0], ""


def _log_problems(logdir: Path) -> list[tuple]:
    rows = []
    for log in sorted(logdir.rglob("*.log")):
        dataset, stage, item = _where(log.relative_to(logdir).with_suffix("").parts)
        try:
            data = log.read_bytes()
        except OSError:
            continue
        # Most of the thousands of logs of a large run hold INFO lines only: skip those
        # without decoding and splitting them (this runs at the end of every run).
        if not any(marker in data for marker in _MARKERS):
            continue
        for line in data.decode(errors="replace").splitlines():
            match = _LINE.match(line)
            if match and not match.group(2).startswith("snakemake"):
                rows.append((dataset, stage, item, match.group(1), match.group(3), str(log)))
    return rows


def _inventory_problems(inventory: Path) -> list[tuple]:
    if not inventory.exists():
        return []
    table = read_table(inventory)
    errors = table["error"].filled("") if hasattr(table["error"], "filled") else table["error"]
    return [
        (str(row["dataset"]), "inventory", str(row["image"]), "ERROR", str(err), str(inventory))
        for row, err in zip(table, errors, strict=True)
        if str(err).strip()
    ]


def collect_problems(
    logdir: str | Path = "logs", inventory: str | Path = "results/inventory.ecsv"
) -> Table:
    """Every problem of a run, sorted, one row per message.

    Columns: ``dataset``, ``stage`` (rule), ``item`` (image or group), ``level`` (WARNING or
    ERROR), ``message``, ``source`` (the log or table it came from).
    """
    rows = _inventory_problems(Path(inventory)) + _log_problems(Path(logdir))
    rows = sorted(set(rows))
    if not rows:
        return Table(names=COLUMNS, dtype=[str] * len(COLUMNS))
    return Table(rows=rows, names=COLUMNS)


def write_problems(
    path: str | Path = "results/problems.ecsv",
    logdir: str | Path = "logs",
    inventory: str | Path = "results/inventory.ecsv",
) -> Table:
    """Collect the problems and write them to ``path`` (atomically); return the table."""
    table = collect_problems(logdir, inventory)
    table.meta["comment"] = (
        "problems of the last run: inventory errors and job-log warnings/errors"
    )
    table.meta["n_errors"] = int(np.sum(table["level"] == "ERROR")) if len(table) else 0
    write_table(table, path)
    return table
