"""The simulator: its pixels carry exactly the truth it reports."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

from aperflow.images import open_image
from aperflow.psf import MoffatPSF
from aperflow.simulate import demo_files, demo_outputs, simulate_forced


def test_total_flux_in_huge_aperture_matches_truth(demo_dir):
    """Truth matches pixels: with every other star subtracted (rendered from the truth
    table), the sky-subtracted flux in r=25 px (the PSF's truncation radius) equals the
    injected flux: median within 0.5 %, each star within 4 sigma of its own noise."""
    ratios, pulls = [], []
    for path in demo_files(demo_dir)["field"]:
        image = open_image(path)
        truth = Table.read(str(path).replace(".fits", "_truth.ecsv"))
        cal = image.flux_calibration()
        psf = MoffatPSF(truth.meta["fwhm_px"], beta=2.8, radius=25.0)
        scene = psf.render(image.shape, truth["x"], truth["y"], truth["flux"] / cal.factor)
        data = np.where(image.mask, np.nan, image.data * image.area)
        x, y = np.asarray(truth["x"]), np.asarray(truth["y"])
        inside = (x > 27) & (x < image.shape[1] - 27) & (y > 27) & (y < image.shape[0] - 27)
        for row in truth[inside & ~np.asarray(truth["saturated"])]:
            single = psf.render(image.shape, row["x"], row["y"], row["flux"] / cal.factor)
            clean = data - (scene - single)
            pos = (row["x"], row["y"])
            aper = CircularAperture(pos, r=25.0)
            sky = np.nanmedian(
                CircularAnnulus(pos, 26.0, 34.0).to_mask(method="center").get_values(clean)
            )
            # Dead pixels (NaN) get the noiseless model: ~1 per aperture of 2000 pixels.
            clean = np.where(np.isnan(clean), single + sky, clean)
            err_img = np.where(image.mask, 0.0, image.error * image.area)
            total = aperture_photometry(clean - sky, aper, error=err_img)
            flux = float(total["aperture_sum"][0]) * cal.factor
            err = float(total["aperture_sum_err"][0]) * cal.factor
            if err / row["flux"] < 5e-3:
                ratios.append(flux / row["flux"])
                pulls.append((flux - row["flux"]) / err)
    assert len(ratios) >= 8, "too few bright stars to test the truth"
    assert abs(np.median(ratios) - 1.0) < 0.005
    assert np.max(np.abs(pulls)) < 4.5


def test_psf_is_normalised_and_ee_reaches_one():
    psf = MoffatPSF(2.3, beta=2.8, radius=20.0)
    stamp, _, _ = psf.stamp(10.3, 7.6)
    assert stamp.sum() == pytest.approx(1.0, abs=1e-12)
    ee = psf.encircled_energy([1, 2, 3, 5, 10, 22], 0.3, -0.4)
    assert np.all(np.diff(ee) > 0)
    assert ee[-1] == pytest.approx(1.0, abs=1e-9)
    # Pixel integration matters: the continuous Moffat's EE at 3 px differs by ~1 %.
    r, a, b = 3.0, psf.alpha, psf.beta
    continuous = (1 - (1 + (r / a) ** 2) ** (1 - b)) / (1 - (1 + (20.0 / a) ** 2) ** (1 - b))
    assert abs(ee[2] - continuous) > 1e-3


def test_standard_truth_is_the_noiseless_ee(demo_dir):
    """The standard-star truth EE is the exact-aperture EE of the noiseless star."""
    path = demo_files(demo_dir)["standard"][0]
    truth = Table.read(str(path).replace(".fits", "_truth.ecsv"))
    psf = MoffatPSF(truth.meta["fwhm_px"], beta=3.0, radius=30.0)
    image = psf.render((64, 64), truth.meta["x"], truth.meta["y"], truth.meta["total_countrate"])
    tab = aperture_photometry(image, CircularAperture((truth.meta["x"], truth.meta["y"]), r=5.0))
    row = truth[truth["radius"] == 5.0][0]
    assert float(tab["aperture_sum"][0]) == pytest.approx(row["ee_countrate"], rel=1e-9)
    assert np.all(np.diff(truth["ee_fraction"]) > 0)


def test_demo_writes_exactly_the_declared_outputs(demo_dir):
    written = sorted(p for p in demo_dir.rglob("*") if p.is_file())
    assert written == demo_outputs(demo_dir)


def test_same_seed_gives_identical_bytes(tmp_path):
    a = simulate_forced(tmp_path / "a", seed=7)
    b = simulate_forced(tmp_path / "b", seed=7)
    c = simulate_forced(tmp_path / "c", seed=8)
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()


def test_field_headers_follow_jwst_conventions(demo_dir):
    path = demo_files(demo_dir)["field"][-1]
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == [
            "PRIMARY",
            "SCI",
            "ERR",
            "DQ",
            "AREA",
            "VAR_POISSON",
            "VAR_RNOISE",
        ]
        p, s = hdul[0].header, hdul["SCI"].header
        for key in (
            "TELESCOP",
            "INSTRUME",
            "DETECTOR",
            "FILTER",
            "PUPIL",
            "SUBARRAY",
            "EXPSTART",
            "EXPEND",
            "EFFEXPTM",
        ):
            assert key in p, key
        assert p["DETECTOR"] == "NRCBLONG"
        for key in ("BUNIT", "PHOTMJSR", "PIXAR_SR", "PIXAR_A2", "CTYPE1"):
            assert key in s, key
        dq = hdul["DQ"].data
        assert (dq & 4).any() and (dq & 2).any() and (dq & 1).any()  # CR, saturation, dead
        assert np.isnan(hdul["SCI"].data[(dq & 1) > 0]).all()
        area = hdul["AREA"].data
        assert 0.9 < area.min() < area.max() < 1.1 and area.std() > 1e-3
        # ERR is the quadrature sum of the variance planes.
        err2 = hdul["VAR_POISSON"].data + hdul["VAR_RNOISE"].data
        good = np.isfinite(hdul["ERR"].data)
        np.testing.assert_allclose(hdul["ERR"].data[good] ** 2, err2[good], rtol=1e-5)


def test_timeseries_cube_and_int_times(demo_dir):
    path = demo_files(demo_dir)["timeseries"][0]
    with fits.open(path) as hdul:
        assert hdul["SCI"].data.shape == (200, 64, 64)
        times = hdul["INT_TIMES"].data
        assert np.all(np.diff(times["int_mid_MJD_UTC"]) > 0)
        # BJD_TDB differs from MJD UTC by the TDB-UTC offset plus light travel time (< 0.01 d).
        assert np.all(np.abs(times["int_mid_BJD_TDB"] - times["int_mid_MJD_UTC"]) < 0.01)
