"""Reference EE / aperture-correction tables: readers, interpolation, totals."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from conftest import shared_file

from aperflow.apcorr import (
    EECurve,
    ReferenceError,
    ReferenceRangeWarning,
    load_apcorr_table,
    load_reference_ee,
    read_hst_ee_csv,
    read_hst_ee_fits,
    read_psf_ee_ecsv,
    read_radtab,
    reference_spec,
    total_from_ee,
)
from aperflow.psf import MoffatPSF

NIRCAM = (
    "reference/nircam_apcorr/nircam_apcorr_F444W_CLEAR_excerpt_from_jwst_nircam_apcorr_0005.ecsv"
)


def _crds_table(tmp_path):
    rows = [
        ("F200W", "CLEAR", 0.5, 1.0, 2.0, 10.0, 15.0),
        ("F200W", "CLEAR", 0.8, 3.0, 1.25, 10.0, 15.0),
        ("F200W", "CLEAR", 0.9, 5.0, 1.1, 10.0, 15.0),
        ("F200W", "MASKRND", 0.4, 1.0, 2.5, 9.0, 14.0),
        ("F200W", "MASKRND", 0.7, 3.0, 1.4, 9.0, 14.0),
        ("F444W", "CLEAR", 0.6, 1.0, 1.6, 8.0, 13.0),
        ("F444W", "CLEAR", 0.9, 4.0, 1.1, 8.0, 13.0),
    ]
    path = tmp_path / "apcorr.ecsv"
    Table(
        rows=rows, names=("filter", "pupil", "eefraction", "radius", "apcorr", "skyin", "skyout")
    ).write(path)
    return path


def test_apcorr_table_selects_band_and_interpolates(tmp_path):
    path = _crds_table(tmp_path)
    t = load_apcorr_table(path, "f200w")  # CLEAR preferred among several pupils
    assert (t.pupil, t.skyin, t.skyout) == ("CLEAR", 10.0, 15.0)
    value, err = t.correction(np.array([1.0, 3.0, 5.0]))
    np.testing.assert_allclose(value, [2.0, 1.25, 1.1], rtol=1e-12)
    np.testing.assert_allclose(err, 0.0, atol=1e-12)  # exact at tabulated radii
    m = load_apcorr_table(path, "F200W", "MASKRND")
    assert (m.skyin, m.skyout) == (9.0, 14.0)
    assert m.correction(3.0)[0] == pytest.approx(1.4)
    # between nodes: monotone PCHIP stays between the neighbours; err = |pchip - linear|
    v, e = t.correction(2.0)
    assert 1.25 < v < 2.0 and e == pytest.approx(abs(v - 1.625))


def test_apcorr_out_of_range_is_nan_with_clear_warning(tmp_path):
    t = load_apcorr_table(_crds_table(tmp_path), "F444W")
    with pytest.warns(ReferenceRangeWarning, match=r"apcorr\.ecsv.*F444W.*range 1-4 px"):
        v, e = t.correction([0.5, 2.0, 6.0])
    assert np.isnan(v[[0, 2]]).all() and np.isnan(e[[0, 2]]).all() and np.isfinite(v[1])
    with pytest.raises(ValueError, match="outside the table's range"):
        t.correction(6.0, strict=True)


def test_apcorr_bad_band_and_file_messages(tmp_path):
    path = _crds_table(tmp_path)
    with pytest.raises(ReferenceError, match="no rows for filter 'F090W'"):
        load_apcorr_table(path, "F090W")
    with pytest.raises(ReferenceError, match="no rows for F444W/MASKRND"):
        load_apcorr_table(path, "F444W", "MASKRND")
    with pytest.raises(ReferenceError, match="nothere.ecsv"):
        load_apcorr_table(tmp_path / "nothere.ecsv", "F444W")


def test_real_nircam_crds_rows():
    t = load_apcorr_table(shared_file(NIRCAM), "F444W", "CLEAR")
    assert (t.skyin, t.skyout) == (8.0, 13.0)
    assert t.correction(3.0)[0] == pytest.approx(1.4497877)
    assert t.ee_curve()(5.0)[0] == pytest.approx(0.8189596)


def test_demo_field_apcorr_matches_its_psf(demo_dir):
    """The simulator's CRDS-style table reproduces 1/(EE - area * annulus mean)."""
    t = load_apcorr_table(demo_dir / "field" / "apcorr.ecsv", "F200W")
    psf = MoffatPSF(2.141, beta=2.8, radius=25.0)
    ee = psf.encircled_energy([3.0, t.skyin, t.skyout])
    sky = (ee[2] - ee[1]) / (np.pi * (t.skyout**2 - t.skyin**2))
    assert t.correction(3.0)[0] == pytest.approx(1 / (ee[0] - np.pi * 9 * sky), rel=1e-9)


def test_radtab_reader_and_interpolation_error():
    c = read_radtab(shared_file("reference/niriss_psf_ee/f115w_psf.radtab"))
    assert c(5.0)[0] == pytest.approx(0.86899)
    assert c.radius_arcsec[0] == pytest.approx(0.0656)
    # The interpolation error is real between widely spaced, curved points, and small
    # where the curve is nearly straight.
    assert c(1.5)[1] > 0.01 and c(7.5)[1] < 1e-3


def test_psf_ee_reader_matches_moffat(demo_dir):
    c = read_psf_ee_ecsv(demo_dir / "standard" / "psf_ee_F200W.ecsv")
    truth = MoffatPSF(1.45, beta=3.0, radius=30.0).encircled_energy([4.0, 7.5])
    value, err = c([4.0, 7.5])
    np.testing.assert_allclose(value, truth, atol=1e-4)
    assert np.all(np.abs(value - truth) <= err + 1e-4)


def test_hst_tables():
    fits_path = shared_file("reference/hst_ee/hst_encircled_energy.fits")
    f = read_hst_ee_fits(fits_path, "wfc3,ir", "F160W", pixel_scale=0.1283)
    assert f.radius_arcsec[0] == pytest.approx(0.1)
    assert f(0.2 / 0.1283)[0] == pytest.approx(0.62338647, rel=1e-6)
    with pytest.raises(ReferenceError, match="no column for wfc3,ir F999W"):
        read_hst_ee_fits(fits_path, "wfc3,ir", "F999W", 0.13)
    c = read_hst_ee_csv(shared_file("reference/hst_ee/ir_aper_corrections.csv"), "F126N", 0.1283)
    assert c.ee[-1] == 1.0 and c.radius_arcsec[-1] == 6.0


def test_reference_spec_selection(tmp_path):
    refs = [
        {"kind": "psf_ee", "instrument": "NIRISS", "filters": ["F115W"], "path": "a_{FILTER}"},
        {"kind": "radtab", "instrument": "NIRISS", "path": "b_{filter}"},
        {"kind": "hst_csv", "path": "c"},
    ]
    assert reference_spec(refs, "NIRISS", "f115w")["path"] == "a_{FILTER}"
    assert reference_spec(refs, "NIRISS", "F200W")["path"] == "b_{filter}"
    assert reference_spec(refs, "WFC3", "F126N")["kind"] == "hst_csv"
    assert reference_spec([], "WFC3", "F126N") is None
    with pytest.raises(ReferenceError, match="not found"):
        load_reference_ee({"kind": "radtab", "path": str(tmp_path / "{filter}.radtab")}, "F115W")


def test_total_from_ee_recovers_total():
    ref = EECurve(np.arange(1.0, 16.0), 1 - np.exp(-np.arange(1.0, 16.0) / 3))
    r = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15], dtype=float)
    flux = 1234.0 * ref(r)[0]
    total, err, n = total_from_ee(r, flux, np.full(r.size, 5.0), ref, 5.0, 10.0)
    assert n == 6 and total == pytest.approx(1234.0, rel=1e-12)
    # error: the largest single-radius error (5 / EE(5)), scatter 0 here
    assert err == pytest.approx(5.0 / ref(5.0)[0], rel=1e-12)


def test_load_reference_ee_every_kind(tmp_path):
    radtab = shared_file("reference/niriss_psf_ee/f200w_psf.radtab")
    spec = {"kind": "radtab", "path": str(radtab.parent / "{filter}_psf.radtab")}
    assert load_reference_ee(spec, "F200W").radius[0] == 1.0
    crds = shared_file(NIRCAM)
    ee = load_reference_ee(
        {"kind": "apcorr", "path": str(crds), "tabulation_error": 0.01}, "F444W"
    )
    value, err = ee(5.0)
    assert value == pytest.approx(0.8189596) and err == pytest.approx(0.01 * value)
    csv = shared_file("reference/hst_ee/ir_aper_corrections.csv")
    h = load_reference_ee({"kind": "hst_csv", "path": str(csv)}, "F126N", pixel_scale=0.128)
    assert h.radius[-1] == pytest.approx(6.0 / 0.128)
    with pytest.raises(ReferenceError, match="pixel scale"):
        load_reference_ee({"kind": "hst_csv", "path": str(csv)}, "F126N")
    with pytest.raises(ReferenceError, match="unknown reference EE kind"):
        load_reference_ee({"kind": "psf", "path": str(csv)}, "F126N")


def test_group_apcorr_and_totals_table():
    from aperflow.apcorr import group_apcorr, throughput_factor, totals_table

    ref = EECurve(np.arange(1.0, 16.0), 1 - np.exp(-np.arange(1.0, 16.0) / 3))
    r = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15], dtype=float)
    mean = Table({"radius": r, "mean": 500.0 * ref(r)[0], "mean_err": np.full(r.size, 2.0)})
    mean.meta.update(filter="F277W", pupil="CLEARP", bunit="DN/s", group="g",
                     calibration={"factor": 2e-7, "unit": "Jy", "zeropoint": 8.9, "system": "AB"})  # fmt: skip
    factor = throughput_factor({"clearp": 0.84}, "F277W", "CLEARP")
    assert factor == 0.84 and throughput_factor({"F200W": 0.9}, "F277W", "CLEARP") == 1.0
    ap = group_apcorr(mean, ref, 5, 10, factor)
    assert ap.meta["total"] == pytest.approx(500.0 * 0.84)
    np.testing.assert_allclose(ap["ee_measured"] * 0.84, ref(r)[0], rtol=1e-12)
    assert list(ap["in_range"]).count(True) == 6
    none = group_apcorr(mean, None)
    assert np.isnan(none.meta["total"]) and none.meta["reference"] == "none configured"
    tot = totals_table([ap, none])
    assert tot["flux"][0] == pytest.approx(420.0 * 2e-7)
    assert tot["mag"][0] == pytest.approx(-2.5 * np.log10(420.0 * 2e-7) + 8.9)
    assert np.isnan(tot["mag"][1]) and tot["flags"][1] != 0
