"""The image model on real files from ../shared/data/real and on broken inputs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits
from conftest import shared_file

from aperflow.images import (
    PIXEL_BAD,
    PIXEL_COSMIC_RAY,
    PIXEL_SATURATED,
    ImageError,
    dq_bitmask,
    effective_filter,
    normalise_detector,
    open_image,
)


def test_nircam_cal_cutout():
    path = shared_file("real/jwst_nircam_f444w_cal/nircam_f444w_cal_cutout.fits")
    image = open_image(path)
    meta = image.meta
    assert (meta.telescope, meta.instrument, meta.detector) == ("JWST", "NIRCAM", "NRCA5")
    assert (meta.filter, meta.pupil, meta.subarray) == ("F444W", "CLEAR", "FULL")
    assert meta.group == "NIRCAM-NRCA5-F444W-CLEAR-FULL"
    assert meta.pixar_sr == pytest.approx(9.31e-14) and meta.photmjsr == pytest.approx(0.3925)
    assert meta.exptime == pytest.approx(42.947)
    assert image.is_surface_brightness and image.area is not None and image.error is not None
    with fits.open(path) as hdul:
        dq = hdul["DQ"].data
        sci = hdul["SCI"].data
    expected_bad = ((dq & 1) > 0) | ~np.isfinite(sci)
    np.testing.assert_array_equal(image.mask, expected_bad | ~np.isfinite(image.error))
    np.testing.assert_array_equal((image.flags & PIXEL_SATURATED) > 0, (dq & 2) > 0)
    np.testing.assert_array_equal((image.flags & PIXEL_COSMIC_RAY) > 0, (dq & 4) > 0)
    assert np.isnan(image.data[image.mask]).all()
    assert image.pixel_scale() == pytest.approx(0.063, rel=0.02)
    cal = image.flux_calibration()
    assert cal.unit == "Jy" and cal.factor == pytest.approx(9.31e-8) and cal.system == "AB"


def test_hst_ima_reads_the_final_read():
    path = shared_file("real/hst_wfc3ir_wasp12/iccz11q4q_ima.fits")
    image = open_image(path)
    with fits.open(path) as hdul:
        first_sci = hdul[1].data
    good = ~image.mask
    np.testing.assert_array_equal(image.data[good], first_sci[good])
    # The 5-pixel reference border of WFC3/IR ima is bias, not sky: masked.
    border = np.ones(image.shape, bool)
    border[5:-5, 5:-5] = False
    assert image.mask[border].all() and np.isnan(image.data[border]).all()
    assert 0 < image.mask[~border].sum() < 0.05 * (~border).sum()  # a few DQ-bad pixels
    assert image.meta.instrument == "WFC3" and image.meta.filter == "F126N"
    assert image.meta.bunit == "ELECTRONS/S"
    cal = image.flux_calibration()
    zp = -2.5 * np.log10(4.9671002e-19) - 5 * np.log10(12584.887) - 2.408
    assert cal.zeropoint == pytest.approx(zp, abs=1e-6) and cal.system == "AB"
    assert image.poisson_gain() == pytest.approx(0.833445)


def test_gzip_named_fits_and_i2d():
    path = shared_file("real/jwst_miri_sub128_i2d/jw01288015001_04101_00001_mirimage_i2d.fits")
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip bytes behind a .fits name
    image = open_image(path)
    assert image.shape == (129, 137) and image.meta.filter == "F1130W"
    assert image.area is None and image.wcs is not None


def test_ground_uint16_saturation_and_gzip():
    path = shared_file("real/ground_thumbnail/thumbnail-image.fit.gz")
    image = open_image(path)
    with fits.open(path) as hdul:
        raw = hdul[0].data
    assert image.data.dtype == np.float32
    np.testing.assert_array_equal((image.flags & PIXEL_SATURATED) > 0, raw >= 65535)
    assert ((image.flags & PIXEL_SATURATED) > 0).sum() > 0
    assert image.meta.bunit == "adu" and image.wcs is not None
    assert image.flux_calibration().system == "instrumental"


def test_level1b_cube_needs_an_integration():
    path = shared_file("real/jwst_fgs_acq1_timeseries/add_wcs_default_acq1.fits")
    with pytest.raises(ImageError, match="add_wcs_default_acq1.fits"):
        open_image(path)
    frame = open_image(path, integration=3)  # last group of integration 3
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(frame.data, hdul["SCI"].data[3, -1].astype(np.float32))


def test_not_fits_and_truncated_files_name_the_file(tmp_path):
    text = tmp_path / "notes_cal.fits"
    text.write_text("this is not FITS")
    with pytest.raises(ImageError, match="notes_cal.fits"):
        open_image(text)
    good = tmp_path / "good.fits"
    fits.HDUList([fits.PrimaryHDU(np.ones((50, 50), np.float32))]).writeto(good)
    cut = tmp_path / "cut_cal.fits"
    cut.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(ImageError, match="cut_cal.fits"):
        open_image(cut)
    with pytest.raises(ImageError, match="file not found"):
        open_image(tmp_path / "missing.fits")


def test_fits_without_image_data(tmp_path):
    path = tmp_path / "table_only.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]
    ).writeto(path)
    with pytest.raises(ImageError, match="no SCI extension and no HDU with image data"):
        open_image(path)


def test_all_nan_image_is_all_masked(tmp_path):
    path = tmp_path / "nan.fits.gz"
    with gzip.open(path, "wb") as f:
        fits.HDUList([fits.PrimaryHDU(np.full((20, 30), np.nan, np.float32))]).writeto(f)
    image = open_image(path)
    assert image.mask.all() and (image.flags == PIXEL_BAD).all()


def test_custom_dq_bits(tmp_path):
    dq = np.zeros((10, 10), np.uint32)
    dq[1, 1], dq[2, 2] = 8192, 1  # LOW_QE, DO_NOT_USE
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(header=fits.Header({"TELESCOP": "JWST"})),
            fits.ImageHDU(np.ones((10, 10), np.float32), name="SCI"),
            fits.ImageHDU(dq, name="DQ"),
        ]
    )
    path = tmp_path / "x_cal.fits"
    hdul.writeto(path)
    assert open_image(path).mask.sum() == 1
    assert open_image(path, dq_bad=["DO_NOT_USE", "LOW_QE"]).mask.sum() == 2
    with pytest.raises(ValueError, match="unknown DQ flag 'LOW_Q'"):
        dq_bitmask(["LOW_Q"], "JWST")


def test_effective_filter_and_detector_names():
    assert normalise_detector("NRCBLONG") == "NRCB5" and normalise_detector("nrcalong") == "NRCA5"
    assert normalise_detector("NRCB1") == "NRCB1"
    assert effective_filter("F150W2", "F162M") == "F162M"  # NIRCam pupil-wheel filter
    assert effective_filter("CLEAR", "F115W") == "F115W"  # NIRISS pupil wheel
    assert effective_filter("F277W", "CLEARP") == "F277W"
    assert effective_filter("F444W", "CLEAR") == "F444W"
    assert effective_filter("F322W2", "GRISMR") == "F322W2"
