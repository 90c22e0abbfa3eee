"""Data-set resolution and the inventory, including unreadable files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

from aperflow.datasets import ConfigError, image_id, mode_options, resolve_datasets, resolve_files
from aperflow.inventory import build_inventory, usable
from aperflow.tables import read_table, write_table


def _config(pattern, mode="field", **extra):
    return {"datasets": {"d": {"files": pattern, "mode": mode, **extra}}}


def test_inventory_on_processes_equals_one_process(demo_dir, tmp_path):
    """Enough files for the forked readers (ids differ, files repeat), a corrupt one
    among them: the same table, row for row."""
    from aperflow.datasets import Dataset

    files = sorted((demo_dir / "field").glob("*_cal.fits"))
    broken = tmp_path / "broken_cal.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    files.append(broken)
    images = {f"img{k:04d}": str(files[k % len(files)]) for k in range(240)}
    datasets = {"d": Dataset("d", "field", {}, {}, images)}
    one, two = build_inventory(datasets), build_inventory(datasets, workers=2)
    assert one.pformat(max_lines=-1, max_width=-1) == two.pformat(max_lines=-1, max_width=-1)
    assert sum(bool(e) for e in two["error"]) == 240 // len(files)


def test_inventory_of_the_demo_with_a_corrupt_file(demo_dir, tmp_path):
    field = tmp_path / "field"
    shutil.copytree(demo_dir / "field", field)
    (field / "broken_cal.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    fits.HDUList([fits.PrimaryHDU()]).writeto(field / "empty_cal.fits")
    datasets = resolve_datasets(_config(str(field / "*_cal.fits")))
    table = build_inventory(datasets)
    assert len(table) == 8
    assert list(table["image"]) == sorted(table["image"])
    errors = dict(zip(table["image"], table["error"], strict=True))
    assert (
        "broken_cal.fits" in errors["broken_cal"] and "not a readable FITS" in errors["broken_cal"]
    )
    assert "no SCI extension and no HDU with image data" in errors["empty_cal"]
    good = usable(table)
    assert len(good) == 6
    long = good[good["detector"] == "NRCB5"]
    assert len(long) == 3 and set(long["filter"]) == {"F444W"}
    assert set(good["group"]) == {
        "NIRCAM-NRCB1-F200W-CLEAR-SUB400P",
        "NIRCAM-NRCB5-F444W-CLEAR-SUB400P",
    }
    assert set(good["shape"]) == {"400x400"} and (good["exptime"] == 300.0).all()
    assert np.all(good["mjd_end"] > good["mjd_start"])
    # Written and read back, the empty errors still mark usable rows.
    write_table(table, tmp_path / "inventory.ecsv")
    assert len(usable(read_table(tmp_path / "inventory.ecsv"))) == 6


def test_inventory_of_cubes_and_niriss(demo_dir):
    config = {
        "datasets": {
            "ts": {"files": str(demo_dir / "timeseries" / "*.fits"), "mode": "timeseries"},
            "std": {"files": str(demo_dir / "standard" / "*_rate.fits"), "mode": "standard"},
        }
    }
    table = build_inventory(resolve_datasets(config))
    ts = table[table["dataset"] == "ts"]
    assert list(ts["shape"]) == ["200x64x64", "200x64x64"] and list(ts["nints"]) == [200, 200]
    std = table[table["dataset"] == "std"]
    assert sorted(set(std["filter"])) == ["F115W", "F200W", "F277W", "F444W"]
    assert sorted(set(std["subarray"])) == ["SUB128", "SUB64"]
    assert len(set(std["group"])) == 8


def test_resolve_files_sorted_and_expected(tmp_path):
    for name in ("b_cal.fits", "a_cal.fits", "c_rate.fits"):
        (tmp_path / name).write_bytes(b"")
    found = resolve_files(str(tmp_path / "*_cal.fits"))
    assert [p.split("/")[-1] for p in found] == ["a_cal.fits", "b_cal.fits"]
    later = str(tmp_path / "z_cal.fits")
    assert resolve_files(str(tmp_path / "*_cal.fits"), expected=[later])[-1] == later


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets.d.files: .* matches no file"):
        resolve_datasets(_config(str(tmp_path / "nothing*.fits")))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x_cal.fits").write_bytes(b"")
    (tmp_path / "b" / "x_cal.fits").write_bytes(b"")
    with pytest.raises(ConfigError, match="same name 'x_cal'"):
        resolve_datasets(_config([str(tmp_path / "a" / "*.fits"), str(tmp_path / "b" / "*.fits")]))
    with pytest.raises(ConfigError, match="datasets.d.mode: 'photo' is not one of"):
        resolve_datasets(_config(str(tmp_path / "a" / "*.fits"), mode="photo"))


def test_mode_options_merge():
    config = {
        "field": {
            "photometry": {"radii": [3, 4], "annulus": [10, 15]},
            "detection": {"threshold": 5},
        },
        "datasets": {
            "d": {
                "files": "x",
                "mode": "field",
                "zeropoint": 25.0,
                "field": {"photometry": {"radii": [2]}},
            }
        },
    }
    opts = mode_options(config, "d")
    assert opts["photometry"] == {"radii": [2], "annulus": [10, 15]}
    assert opts["detection"] == {"threshold": 5} and opts["zeropoint"] == 25.0
    assert config["field"]["photometry"]["radii"] == [3, 4]  # the global block is untouched


def test_image_id():
    assert image_id("dir/jw01_cal.fits") == "jw01_cal"
    assert image_id("thumb.fit.gz") == "thumb"
    assert image_id("x.FITS") == "x"


def test_two_datasets_with_one_name_are_refused(tmp_path):
    from aperflow.datasets import check_duplicate_keys

    path = tmp_path / "config.yaml"
    path.write_text("datasets:\n  a: {files: x, mode: field}\n  a: {files: y, mode: field}\n")
    with pytest.raises(ConfigError, match=r"key 'a' appears twice \(lines 2 and 3\)"):
        check_duplicate_keys(path)
    path.write_text("datasets:\n  a: {files: x, mode: field}\n  b: {files: y, mode: field}\n")
    check_duplicate_keys(path)
