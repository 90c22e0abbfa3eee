"""aperflow.tables' fast Parquet reading: stack_parquet_columns (the columns astropy would
read, stacked) and read_parquet_header (the metadata and units astropy would read)."""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack

from aperflow.tables import read_parquet_header, read_table, stack_parquet_columns, write_table

COLUMNS = ["mag_r3", "mag_err_r3", "flags_r3"]


def _photometry(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    table = Table(meta={"radii_labels": ["r3"], "image": f"image{seed}.fits"})
    table["mag_r3"] = rng.normal(20, 2, n)
    table["mag_r3"][: min(n, 2)] = np.nan  # undetected sources stay NaN
    table["mag_r3"].unit = "mag"
    table["mag_err_r3"] = rng.random(n)
    table["flags_r3"] = rng.integers(0, 64, n).astype(np.int32)
    table["other"] = rng.random(n)
    return table


def _write(tmp_path, tables):
    paths = []
    for k, table in enumerate(tables):
        paths.append(tmp_path / f"t{k}.parquet")
        write_table(table, tmp_path / f"t{k}.ecsv", paths[-1])
    return paths


def test_stacked_columns_equal_astropy_stacked_tables(tmp_path):
    """Values, dtypes and row order as astropy's reading + vstack; ``image`` = file index.
    An empty table and a failed image's bare table (no photometry columns) add no rows."""
    tables = [_photometry(7, 0), _photometry(0, 1), Table({"id": []}), _photometry(5, 3)]
    paths = _write(tmp_path, tables)
    got = stack_parquet_columns(paths, COLUMNS)
    measured = [t for t in map(read_table, paths) if "mag_r3" in t.colnames]
    expected = vstack([t[COLUMNS] for t in measured], metadata_conflicts="silent")
    assert got.colnames == [*COLUMNS, "image"]
    for name in COLUMNS:
        assert got[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]))
    np.testing.assert_array_equal(got["image"], [0] * 7 + [3] * 5)


def test_a_file_lacking_a_column_gives_nan_or_zero(tmp_path):
    """A table with rows but without one column: NaN in a float column, 0 in an integer one."""
    partial = _photometry(3, 1)
    partial.remove_columns(["mag_err_r3", "flags_r3"])
    got = stack_parquet_columns(_write(tmp_path, [_photometry(2, 0), partial]), COLUMNS)
    assert len(got) == 5
    assert np.isnan(got["mag_err_r3"][2:]).all() and (got["flags_r3"][2:] == 0).all()
    np.testing.assert_array_equal(got["mag_r3"][2:], partial["mag_r3"])


def test_no_file_with_the_columns_gives_an_empty_table(tmp_path):
    got = stack_parquet_columns(_write(tmp_path, [Table({"id": [1, 2]})]), COLUMNS)
    assert len(got) == 0 and got.colnames == [*COLUMNS, "image"]


def test_parquet_header_equals_astropys_metadata_and_units(tmp_path):
    """Metadata (with a nested ordered mapping and a list) and units as astropy reads them."""
    table = _photometry(4, 0)
    table.meta["software"] = {"aperflow": "0.1", "numpy": "2"}
    table.meta["radii_px"] = [3.0]
    table.meta["flags"] = {1: "MASKED", 2: "SATURATED"}
    table["flux_r3"] = np.arange(4.0)
    table["flux_r3"].unit = "MJy / sr"
    (path,) = _write(tmp_path, [table])
    header = read_parquet_header(path)
    astropy_table = read_table(path)
    assert header.meta == astropy_table.meta and header.meta["flags"][2] == "SATURATED"
    assert header.colnames == astropy_table.colnames
    assert header.units() == {
        c: (None if astropy_table[c].unit is None else astropy_table[c].unit.to_string())
        for c in astropy_table.colnames
    }
    assert header.units()["flux_r3"] == "MJy / sr" and header.units()["other"] is None


def test_parquet_header_with_astropy_objects_in_the_metadata(tmp_path):
    """Astropy's YAML tags (a quantity here) fall back to astropy's own reading."""
    from astropy import units as u

    table = _photometry(2, 0)
    table.meta["exposure"] = 3.5 * u.s
    (path,) = _write(tmp_path, [table])
    assert read_parquet_header(path).meta["exposure"] == 3.5 * u.s
    bare = _write(tmp_path / "bare", [Table({"id": [1]})])[0]
    assert read_parquet_header(bare).meta == {} and read_parquet_header(bare).colnames == ["id"]
