"""ECSV writing, the bytes astropy writes, about twice as fast for plain tables.

astropy's ECSV writer formats every value with ``str(col[i])`` (one numpy scalar per
value) and joins each row through its csv writer; for a per-image photometry table
(10^4-10^5 rows, ~25 columns) that is most of the writing time. :func:`write_ecsv` takes
the header from astropy itself (the table with no rows) and formats whole columns at
once: ``repr`` of Python floats for float64 (the same shortest round-trip digits as
``str(numpy.float64)``), ``str`` for integers, numpy's own string conversion for the
other numeric types; rows with text or masked values are joined by astropy's csv
splitter (its quoting). Anything else (mixins, multidimensional or object columns, bytes)
goes to astropy's writer.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from astropy.table import Column, MaskedColumn, Table

__all__ = ["write_ecsv"]


def write_ecsv(table: Table, path: str | Path) -> None:
    """Write ``table`` as ECSV at ``path``, byte for byte as
    ``table.write(path, format="ascii.ecsv")`` does.

    Parameters
    ----------
    table : astropy.table.Table
    path : str or Path
        The file to write (overwritten).
    """
    if not _plain(table):
        table.write(path, format="ascii.ecsv", overwrite=True)
        return
    header = io.StringIO()
    table[:0].write(header, format="ascii.ecsv")
    columns = [_strings(table[name]) for name in table.colnames]
    if any(_needs_quoting(table[name]) for name in table.colnames):
        from astropy.io.ascii.core import DefaultSplitter

        join = DefaultSplitter().join
    else:
        join = " ".join  # numbers never need quotes
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(header.getvalue())
        if len(table):
            out.write("\n".join(map(join, zip(*columns, strict=True))))
            out.write("\n")


def _plain(table: Table) -> bool:
    """True when every column is a 1-D numeric, boolean or text (Masked)Column."""
    return all(
        type(col) in (Column, MaskedColumn) and col.ndim == 1 and col.dtype.kind in "biufU"
        for col in table.itercols()
    )


def _needs_quoting(col) -> bool:
    return col.dtype.kind == "U" or (isinstance(col, MaskedColumn) and bool(np.any(col.mask)))


def _strings(col) -> list[str]:
    """``str(col[i])`` for every row, as astropy's ECSV writer (masked values: "")."""
    data = np.asarray(col.data if isinstance(col, MaskedColumn) else col)
    kind = data.dtype.kind
    if kind == "f" and data.dtype.itemsize == 8:
        values = list(map(repr, data.tolist()))  # Python's repr = numpy's float64 str
    elif kind in "iu":
        values = list(map(str, data.tolist()))
    else:  # float32/16 (numpy's shortest digits for that type), bool, text
        values = data.astype(str).tolist()
    if isinstance(col, MaskedColumn) and np.any(col.mask):
        for i in np.flatnonzero(col.mask):
            values[i] = ""
    return values
