"""aperflow.ecsv.write_ecsv writes the bytes astropy's ECSV writer writes."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table
from astropy.time import Time

from aperflow.ecsv import write_ecsv


def _floats(rng, n, decades=300):
    """Values across ``10**-decades .. 10**decades``, with the special ones."""
    values = rng.normal(0, 1, n) * 10.0 ** rng.integers(-decades, decades, n)
    values[:12] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e15, 1e-5, 1e-4, 0.1, 1 / 3, 5e-324]
    return values


def _table(n=500, seed=0):
    rng = np.random.default_rng(seed)
    t = Table()
    t["id"] = np.arange(n)
    t["x"] = _floats(rng, n)
    t["x"].unit = "pix"
    t["x"].description = "0-based column"
    t["f32"] = _floats(rng, n, decades=37).astype(np.float32)
    t["i8"] = rng.integers(-100, 100, n).astype(np.int8)
    t["u16"] = rng.integers(0, 60000, n).astype(np.uint16)
    t["flag"] = rng.random(n) < 0.5
    t.meta.update({"image": "a b.fits", "radii": [2.0, 3.5], "nested": {"k": 1}})
    return t


def _same_bytes(table, tmp_path):
    ours, ref = tmp_path / "ours.ecsv", tmp_path / "ref.ecsv"
    write_ecsv(table, ours)
    table.write(ref, format="ascii.ecsv", overwrite=True)
    assert ours.read_bytes() == ref.read_bytes()
    back = Table.read(ours, format="ascii.ecsv")
    assert back.colnames == table.colnames


def test_numeric_table_is_written_byte_for_byte(tmp_path):
    _same_bytes(_table(), tmp_path)


def test_text_and_masked_columns_are_quoted_as_astropy(tmp_path):
    t = _table(60)
    t["name"] = [["a", "b c", "", 'd"e', " pad ", "x\ty"][i % 6] for i in range(60)]
    t["m"] = MaskedColumn(np.arange(60.0), mask=np.arange(60) % 7 == 0)
    t["ms"] = MaskedColumn(["u", "v w"] * 30, mask=np.arange(60) % 5 == 0)
    _same_bytes(t, tmp_path)


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_one_row_tables(rows, tmp_path):
    _same_bytes(_table()[:rows], tmp_path)


def test_other_columns_fall_back_to_astropy(tmp_path):
    t = QTable(_table(20))
    t["time"] = Time(60000.0 + np.arange(20), format="mjd")
    t["vec"] = np.ones((20, 3))
    t["b"] = np.array([b"ab"] * 20)
    _same_bytes(Table(t), tmp_path)
    ours = tmp_path / "q.ecsv"
    write_ecsv(t, ours)
    assert len(QTable.read(ours, format="ascii.ecsv")) == 20


def test_write_table_writes_astropy_ecsv_bytes(tmp_path):
    from aperflow.tables import write_table

    t = _table(50)
    write_table(t, tmp_path / "t.ecsv", tmp_path / "t.parquet")
    t.write(tmp_path / "ref.ecsv", format="ascii.ecsv")
    assert (tmp_path / "t.ecsv").read_bytes() == (tmp_path / "ref.ecsv").read_bytes()
