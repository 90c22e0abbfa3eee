"""Merging the dithers of a group: matching by sky position, weighted means, flags, the
DS9 region file."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from aperflow import flags as F
from aperflow.aggregate import weighted_mean
from aperflow.catalog import match_detections, merge_catalogs, write_regions

DEC0 = -72.0


def _dither_tables(n_star=200, n_img=3, seed=5, jitter_arcsec=0.01):
    """Per-image photometry tables of the same stars, in shuffled order, each image
    missing some stars, with position jitter and Gaussian flux noise."""
    rng = np.random.default_rng(seed)
    # stars >= 0.6" apart (on a 1" grid, shifted by up to 0.2"): one star per match
    g = np.arange(int(np.ceil(np.sqrt(n_star))))
    gx, gy = (a.ravel()[:n_star] for a in np.meshgrid(g, g))
    ra = 14.77 + (gx + rng.uniform(-0.2, 0.2, n_star)) / 3600 / np.cos(np.deg2rad(DEC0))
    dec = DEC0 + (gy + rng.uniform(-0.2, 0.2, n_star)) / 3600
    flux = 10 ** rng.uniform(-7, -4, n_star)
    tables, truth_rows = [], []
    for _ in range(n_img):
        present = rng.random(n_star) > 0.1
        idx = rng.permutation(np.flatnonzero(present))
        err = 0.02 * flux[idx] + 1e-8
        t = Table()
        t["id"] = np.arange(1, idx.size + 1)
        t["x"], t["y"] = rng.uniform(0, 400, idx.size), rng.uniform(0, 400, idx.size)
        jit = rng.normal(0, jitter_arcsec / 3600, (2, idx.size))
        t["ra"] = ra[idx] + jit[0] / np.cos(np.deg2rad(DEC0))
        t["dec"] = dec[idx] + jit[1]
        for label in ("r2", "r3"):
            t[f"flux_{label}"] = flux[idx] + rng.normal(0, 1, idx.size) * err
            t[f"flux_err_{label}"] = err
            t[f"flags_{label}"] = np.zeros(idx.size, np.int32)
            t[f"mag_{label}"] = -2.5 * np.log10(np.abs(t[f"flux_{label}"])) + 8.9
        t.meta.update({"radii_labels": ["r2", "r3"], "zeropoint": 8.9, "radii_px": [2, 3]})
        tables.append(t)
        truth_rows.append(idx)
    return tables, truth_rows, ra, dec, flux


def test_dithers_are_matched_and_averaged_with_the_weighted_mean():
    tables, rows, ra, dec, flux = _dither_tables()
    cat = merge_catalogs(tables, ["a", "b", "c"], match_radius_arcsec=0.1)
    present = np.zeros((len(ra), 3), bool)
    for k, idx in enumerate(rows):
        present[idx, k] = True
    assert len(cat) == present.any(axis=1).sum()
    # every catalog star lies on one true star, with the right number of images
    d = (
        np.hypot(
            (cat["ra"][:, None] - ra[None]) * np.cos(np.deg2rad(DEC0)),
            cat["dec"][:, None] - dec[None],
        )
        * 3600
    )
    true = np.argmin(d, axis=1)
    assert np.all(d.min(axis=1) < 0.03)
    assert len(set(true)) == len(cat)
    np.testing.assert_array_equal(cat["n_images"], present[true].sum(axis=1))
    # the mean is aperflow.aggregate.weighted_mean of that star's measurements
    s = int(np.flatnonzero(cat["n_images"] == 3)[0])
    vals, errs = [], []
    for k, t in enumerate(tables):
        j = int(np.flatnonzero(rows[k] == true[s])[0])
        vals.append(t["flux_r3"][j])
        errs.append(t["flux_err_r3"][j])
    ref = weighted_mean(vals, errs)
    assert cat["flux_r3"][s] == pytest.approx(float(ref.mean), rel=1e-12)
    assert cat["flux_err_r3"][s] == pytest.approx(float(ref.error), rel=1e-12)
    assert cat["chi2_r3"][s] == pytest.approx(float(ref.chi2), rel=1e-9)
    assert cat["mag_r3"][s] == pytest.approx(-2.5 * np.log10(ref.mean) + 8.9, rel=1e-12)
    # Gaussian noise with honest errors: reduced chi2 averages 1
    assert np.nanmean(cat["rchi2_r3"]) == pytest.approx(1.0, abs=0.15)
    # sorted bright first, ids 1..n
    assert np.all(np.diff(cat["mag_r2"]) >= 0)
    assert list(cat["id"]) == list(range(1, len(cat) + 1))
    assert cat.meta["images"] == ["a", "b", "c"]


def test_flagged_measurements_are_left_out_and_flags_reported():
    tables, rows, *_ = _dither_tables(n_star=30)
    tables[0]["flags_r3"][:] = F.MASKED
    tables[1]["flags_r3"][:] = F.COSMIC_RAY  # kept by default
    cat = merge_catalogs(tables)
    with_all = cat["n_images"] == 3
    assert np.all(cat["n_r3"][with_all] == 2)  # image 0 left out
    assert np.all(cat["n_r2"][with_all] == 3)
    assert np.all(cat["flags_r3"][with_all] & F.COSMIC_RAY)
    assert not np.any(cat["flags_r3"][with_all] & F.MASKED)
    only0 = (cat["n_images"] == 1) & (cat["n_r3"] == 0)  # seen only in the masked image
    assert np.all(np.isnan(cat["flux_r3"][only0]))
    assert np.all(cat["flags_r3"][only0] & F.MASKED)


def test_two_detections_of_one_image_within_the_radius_count_once():
    ra = np.array([10.0, 10.0 + 0.05 / 3600, 10.0, 10.0 + 0.02 / 3600])
    dec = np.array([20.0, 20.0, 20.0, 20.0])
    image = np.array([0, 0, 1, 1])
    star, rejected = match_detections(ra, dec, image, match_radius_arcsec=0.1)
    # all four are linked; one per image is kept (the one nearest the mean position)
    assert (star >= 0).sum() == 2 and rejected.tolist() == [2]
    kept = np.flatnonzero(star >= 0)
    assert set(image[kept]) == {0, 1}
    # same-image pairs alone never link
    star, rejected = match_detections(ra[:2], dec[:2], image[:2], match_radius_arcsec=0.1)
    assert sorted(star) == [0, 1] and rejected.tolist() == [0, 0]


def test_matching_in_pixels_without_wcs():
    x = np.array([10.0, 10.3, 50.0, 80.0, 80.2])
    y = np.array([10.0, 10.1, 50.0, 80.0, 79.9])
    nan = np.full(5, np.nan)
    star, _ = match_detections(nan, nan, [0, 1, 1, 0, 1], x=x, y=y, match_radius_px=1.0)
    assert star[0] == star[1] and star[3] == star[4] and len(set(star)) == 3
    with pytest.raises(ValueError, match="match_radius_px"):
        match_detections(nan, nan, [0, 1, 1, 0, 1])


def test_empty_and_failed_images_give_an_empty_catalog(tmp_path):
    tables, *_ = _dither_tables(n_star=5, n_img=1)
    empty = tables[0][:0]
    failed = Table(meta={"error": "cannot open"})
    cat = merge_catalogs([empty, failed])
    assert len(cat) == 0 and "flux_r3" in cat.colnames
    assert len(merge_catalogs([failed])) == 0
    write_regions(cat, tmp_path / "empty.reg")
    assert (tmp_path / "empty.reg").read_text().startswith("# Region file format: DS9")
    both = merge_catalogs([tables[0], failed])
    assert len(both) == len(tables[0])


def test_region_file_has_one_circle_per_star(tmp_path):
    from regions import Regions

    tables, *_ = _dither_tables(n_star=20)
    cat = merge_catalogs(tables)
    write_regions(cat, tmp_path / "cat.reg", radius_arcsec=0.3)
    regs = Regions.read(tmp_path / "cat.reg", format="ds9")
    assert len(regs) == len(cat)
    first = regs[0]
    assert first.center.ra.deg == pytest.approx(cat["ra"][0], abs=1e-7)
    assert first.radius.to_value("arcsec") == pytest.approx(0.3)
    assert str(first.meta["text"]) == "1"


def test_min_images_and_unknown_flags():
    tables, *_ = _dither_tables(n_star=50)
    cat = merge_catalogs(tables, min_images=3)
    assert np.all(cat["n_images"] == 3)
    with pytest.raises(ValueError, match="unknown flag"):
        merge_catalogs(tables, exclude_flags=["BLURRY"])


def test_catalog_of_parquet_files_equals_that_of_the_tables_read_by_astropy(tmp_path):
    """merge_catalog_files (fast metadata + stacked columns) gives merge_catalogs' catalog
    of the same files read by astropy: values, dtypes, units, metadata; with aperture-
    corrected totals, a failed image and a dither of another calibration (left out)."""
    from aperflow.catalog import merge_catalog_files
    from aperflow.tables import read_table, write_table

    tables, *_ = _dither_tables(n_star=80, n_img=4)
    for t in tables:
        for label in ("r2", "r3"):
            t[f"flux_total_{label}"] = 1.1 * t[f"flux_{label}"]
            t[f"flux_total_err_{label}"] = 1.1 * t[f"flux_err_{label}"]
            for name in (f"flux_{label}", f"flux_err_{label}", f"flux_total_{label}"):
                t[name].unit = "Jy"
        t.meta.update(flux_unit="Jy", magnitude_system="AB", calibration="MJy/sr x PIXAR_SR")
    tables[2].meta.update(flux_unit="unknown", magnitude_system="instrumental")
    tables.append(Table(meta={"error": "cannot open"}))
    names = [f"img{k}" for k in range(len(tables))]
    paths = []
    for name, table in zip(names, tables, strict=True):
        paths.append(tmp_path / f"{name}.parquet")
        write_table(table, tmp_path / f"{name}.ecsv", paths[-1])
    expected = merge_catalogs([read_table(p) for p in paths], names, min_images=1)
    got = merge_catalog_files(paths, names, min_images=1)
    assert got.colnames == expected.colnames and "flux_total_r3" in got.colnames
    for name in got.colnames:
        assert got[name].dtype == expected[name].dtype and got[name].unit == expected[name].unit
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]))
    assert got.meta == expected.meta and got.meta["flux_unit"] == "Jy"
    assert got.meta["images"] == ["img0", "img1", "img3", "img4"]
    assert got.meta["left_out"][0].startswith("img2: fluxes in 'unknown'")
    assert got["flux_r3"].unit == "Jy" and len(got) > 60


def test_a_star_in_a_few_of_many_images():
    """400 images, each with a star of its own, and one star in images 0, 200 and 399: the
    stars' detections side by side (not a stars x images matrix) give the right means."""
    tables = []
    for k in range(400):
        t = Table()
        t["ra"] = [10.0 + k / 3600]  # 1" apart
        t["dec"] = [DEC0]
        t["x"] = t["y"] = [float(k)]
        t["flux_r3"], t["flux_err_r3"], t["flags_r3"] = [1.0 + k], [0.1], [np.int32(0)]
        if k in (0, 200, 399):
            t.add_row([10.5, DEC0 + 0.01, 0.0, 0.0, 5.0 + k / 1000, 0.2 + k / 1000, 0])
        t.meta["radii_labels"] = ["r3"]
        tables.append(t)
    cat = merge_catalogs(tables)
    assert len(cat) == 401 and sorted(set(cat["n_images"])) == [1, 3]
    star = cat[cat["n_images"] == 3][0]
    ref = weighted_mean([5.0, 5.2, 5.399], [0.2, 0.4, 0.599])
    assert star["flux_r3"] == pytest.approx(float(ref.mean), rel=1e-12)
    assert star["chi2_r3"] == pytest.approx(float(ref.chi2), rel=1e-9)
    single = cat[cat["n_images"] == 1]
    np.testing.assert_allclose(np.sort(single["flux_r3"]), 1.0 + np.arange(400))
