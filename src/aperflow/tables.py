"""Output tables and files: atomic writers and reproducible metadata.

Every table aperflow writes is an astropy Table with units, written as ECSV (and Parquet
for the big per-source and per-frame tables) through a temporary file in the same folder
that is renamed into place, so a job killed mid-write never leaves a partial output.
Metadata holds only values that are the same on every rerun (software versions, config
values, input file names): two runs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table

from aperflow.ecsv import write_ecsv

__all__ = [
    "atomic_path",
    "ParquetHeader",
    "provenance",
    "read_parquet_header",
    "read_table",
    "stack_parquet_columns",
    "write_fits",
    "write_table",
    "write_text",
]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file keeps the final suffix so writers that infer the format from the
    name still work. On an exception the temporary file is removed and ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def provenance(**values) -> dict:
    """Metadata for an output: aperflow/numpy/astropy/photutils versions plus ``values``."""
    from importlib.metadata import version

    import astropy

    from aperflow import __version__

    meta = {
        "software": {
            "aperflow": __version__,
            "numpy": np.__version__,
            "astropy": astropy.__version__,
            "photutils": version("photutils"),  # no photutils import (~0.5 s)
        }
    }
    meta.update(values)
    return meta


def write_table(table: Table, path: str | Path, parquet: str | Path | None = None) -> None:
    """Write ``table`` as ECSV at ``path`` (and as Parquet at ``parquet``), atomically."""
    with atomic_path(path) as tmp:
        write_ecsv(table, tmp)  # astropy's ECSV bytes, ~2x faster
    if parquet is not None:
        with atomic_path(parquet) as tmp:
            _parquet_safe(table).write(tmp, format="parquet", overwrite=True)


def _parquet_safe(table: Table) -> Table:
    """Parquet cannot store object columns or nested metadata values astropy rejects."""
    out = Table(table, copy=False)
    for name in out.colnames:
        if out[name].dtype.kind == "O":
            out[name] = [str(v) for v in out[name]]
    return out


def read_table(path: str | Path) -> Table:
    """Read an ECSV or Parquet table written by :func:`write_table`."""
    path = str(path)
    fmt = "parquet" if path.endswith(".parquet") else "ascii.ecsv"
    return Table.read(path, format=fmt)


def write_fits(hdus: fits.HDUList, path: str | Path) -> None:
    """Write a FITS file atomically (checksums off, no DATE card: reruns are identical)."""
    with atomic_path(path) as tmp:
        hdus.writeto(tmp, overwrite=True, output_verify="silentfix")


def write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def stack_parquet_columns(paths: Sequence[str | Path], columns: Sequence[str]) -> Table:
    """Some columns of many Parquet tables (of :func:`write_table`) stacked into one.

    Read through pyarrow alone. Astropy parses each file's metadata (YAML, ~20 ms a file),
    a minute for the thousands of small per-image tables of a large group, where this
    takes about a second; so units and metadata are not read (take them from one table
    read with :func:`read_table`).

    Parameters
    ----------
    paths : sequence of str or Path
        Parquet files.
    columns : sequence of str
        Column names. A file without one of them (a failed image's bare table) gives NaN
        there (0 in an integer column).

    Returns
    -------
    astropy.table.Table
        ``columns`` plus ``image``, the index in ``paths`` of each row's file; rows in the
        order of ``paths``. No rows when no file has all ``columns``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    paths = [str(p) for p in paths]
    schema = next(
        (s for s in map(pq.read_schema, paths) if all(c in s.names for c in columns)), None
    )
    if schema is None:
        return Table(names=[*columns, "image"])
    schema = pa.schema([schema.field(c) for c in columns])
    data = ds.dataset(paths, schema=schema, format="parquet").to_table(
        columns=[*columns, "__filename"]
    )
    out = Table()
    for name in columns:
        fill = np.nan if pa.types.is_floating(schema.field(name).type) else 0
        out[name] = pc.fill_null(data[name], fill).to_numpy(zero_copy_only=False)
    out["image"] = pc.index_in(data["__filename"], value_set=pa.array(paths)).to_numpy()
    return out


@dataclass(frozen=True)
class ParquetHeader:
    """What a Parquet table of :func:`write_table` says about itself, without its rows."""

    #: The table's metadata, as ``read_table(path).meta``.
    meta: dict
    #: Column names, in order.
    colnames: list[str]
    #: The YAML header astropy wrote (columns and metadata).
    yaml_text: bytes

    def units(self) -> dict[str, str | None]:
        """Each column's unit (a string as astropy wrote it), None when it has none."""
        header = _load_yaml(self.yaml_text) if self.yaml_text else {}
        units = {c["name"]: c.get("unit") for c in header.get("datatype") or ()}
        return {name: units.get(name) for name in self.colnames}


def read_parquet_header(path: str | Path) -> ParquetHeader:
    """The metadata and column names of a Parquet table of :func:`write_table`, fast.

    Astropy keeps them as YAML in the file's schema (``table_meta_yaml``: one entry per
    column, then ``meta``) and parses all of it with its pure-Python loader (~9 ms a file,
    most of the ~15 ms of reading a small per-image table). This parses only the ``meta``
    part, with libyaml (~0.3 ms); :meth:`ParquetHeader.units` parses the columns' part.
    Metadata holding astropy objects (a unit, a quantity) need astropy's loader: those
    files get it.
    """
    import pyarrow.parquet as pq

    schema = pq.read_schema(str(path))
    text = (schema.metadata or {}).get(b"table_meta_yaml") or b""
    # The top-level key at the start of a line; the columns' entries are indented.
    start = text.find(b"\nmeta:")
    meta = (_load_yaml(text[start + 1 :]).get("meta") or {}) if start >= 0 else {}
    return ParquetHeader(meta=dict(meta), colnames=list(schema.names), yaml_text=text)


def _load_yaml(text: bytes) -> dict:
    try:
        return yaml.load(text, Loader=_MetaLoader)
    except yaml.YAMLError:  # astropy tags: astropy's own reading
        from astropy.table.meta import get_header_from_yaml

        return get_header_from_yaml(text.decode("utf-8").splitlines())


class _MetaLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's safe loader (the pure-Python one without libyaml), reading ``!!omap`` as a
    dict, as astropy does."""


def _omap(loader, node) -> dict:
    return {k: v for item in loader.construct_sequence(node, deep=True) for k, v in item.items()}


_MetaLoader.add_constructor("tag:yaml.org,2002:omap", _omap)
