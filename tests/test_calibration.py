"""Unit conversions and magnitudes against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from aperflow.calibration import (
    ab_zeropoint_photflam,
    dns_to_mjysr,
    flux_calibration,
    jy_per_pixel,
    magnitude,
    magnitude_error,
    mjysr_to_dns,
    photflam_to_jy,
    poisson_gain,
    upper_limit_magnitude,
)
from aperflow.images import ImageMeta


def test_mjysr_jy_and_dns():
    # 1 MJy/sr over a pixel of 9.31e-14 sr is 9.31e-8 Jy.
    assert jy_per_pixel(9.31e-14) == pytest.approx(9.31e-8, rel=1e-12)
    assert mjysr_to_dns(0.785, 0.3925) == pytest.approx(2.0)
    assert dns_to_mjysr(2.0, 0.3925) == pytest.approx(0.785)


def test_ab_magnitudes():
    assert magnitude(3631.0, 8.90) == pytest.approx(-2.5 * np.log10(3631) + 8.90)
    assert magnitude(3631.0, 8.90) == pytest.approx(0.0, abs=2e-3)  # AB zero at 3631 Jy
    assert magnitude(1e-6, 8.90) == pytest.approx(23.9)  # 1 uJy = 23.9 AB
    mags = magnitude([1.0, 0.0, -5.0], 25.0)
    assert mags[0] == 25.0 and np.isnan(mags[1:]).all()  # never -99
    assert magnitude_error(100.0, 1.0) == pytest.approx(0.010857362, rel=1e-6)
    assert np.isnan(magnitude_error(-1.0, 1.0))
    assert upper_limit_magnitude(2.0, 5, 25.0) == pytest.approx(25.0 - 2.5 * np.log10(10.0))


def test_photflam_zeropoint_acs_f606w():
    # -2.5 log10(7.86e-20) - 5 log10(5921.1) - 2.408 = 47.7616 - 18.8620 - 2.408
    assert ab_zeropoint_photflam(7.86e-20, 5921.1) == pytest.approx(26.4916, abs=1e-3)
    # The same zero point through f_nu: 1 e-/s is 9.19e-8 Jy, i.e. AB 26.49.
    jy = photflam_to_jy(1.0, 7.86e-20, 5921.1)
    assert jy == pytest.approx(7.86e-20 * 5921.1**2 / 2.99792458e18 * 1e23, rel=1e-12)
    assert magnitude(jy, 8.90) == pytest.approx(ab_zeropoint_photflam(7.86e-20, 5921.1), abs=1e-3)


def test_flux_calibration_choices():
    jw = ImageMeta(bunit="MJy/sr", pixar_sr=2.0e-14, photmjsr=0.5)
    cal = flux_calibration(jw, True)
    assert (cal.unit, cal.system, cal.zeropoint) == ("Jy", "AB", 8.90)
    assert cal.factor == pytest.approx(2.0e-8)
    rate = ImageMeta(bunit="DN/s", pixar_sr=2.0e-14, photmjsr=0.5)
    assert flux_calibration(rate, False).factor == pytest.approx(0.5 * 2.0e-8)
    hst = ImageMeta(bunit="ELECTRONS/S", photflam=7.86e-20, photplam=5921.1)
    assert flux_calibration(hst, False).zeropoint == pytest.approx(26.4916, abs=1e-3)
    assert flux_calibration(hst, False, zeropoint=25.0).zeropoint == 25.0
    ground = ImageMeta(bunit="adu")
    assert flux_calibration(ground, False).system == "instrumental"


def test_nonpositive_keywords_fall_back_with_a_warning():
    bad = ImageMeta(bunit="MJy/sr", pixar_sr=-1.0)
    with pytest.warns(UserWarning, match="PIXAR_SR=-1.0 is not positive"):
        cal = flux_calibration(bad, True, path="x_cal.fits")
    assert cal.system == "instrumental" and "x_cal.fits" in cal.note
    with pytest.warns(UserWarning, match="PHOTFLAM=0.0"):
        assert (
            flux_calibration(ImageMeta(bunit="e/s", photflam=0.0, photplam=5000.0), False).system
            == "instrumental"
        )


def test_poisson_gain():
    assert poisson_gain(ImageMeta(bunit="ELECTRONS/S", exptime=100.0), False) == 100.0
    assert poisson_gain(ImageMeta(bunit="DN/s", exptime=10.0, gain=2.0), False) == 20.0
    assert poisson_gain(ImageMeta(bunit="adu", gain=1.5), False) == 1.5
    sb = ImageMeta(bunit="MJy/sr", exptime=100.0, gain=2.0, photmjsr=0.5)
    assert poisson_gain(sb, True) == pytest.approx(400.0)  # MJy/sr -> DN/s -> e-
    assert poisson_gain(ImageMeta(bunit="adu"), False) is None
