"""Background estimation: global and 2-D levels against known skies and photutils."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import SigmaClip

from aperflow.background import estimate_background, source_mask


def _sky(shape=(256, 256), level=10.0, noise=2.0, gradient=0.0, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    truth = level + gradient * xx / shape[1]
    return truth + rng.normal(0.0, noise, shape), truth


def test_global_median_and_rms_recover_a_flat_sky():
    data, _ = _sky(noise=2.0)
    bkg = estimate_background(data, method="global")
    # error of the median of 65536 Gaussian pixels: 1.25 * 2 / 256 ~ 0.01
    assert bkg.median == pytest.approx(10.0, abs=0.04)
    # default RMS: MAD-based std of the clipped pixels (the clipped std is ~2 % low)
    assert bkg.std == pytest.approx(2.0, rel=0.01)
    assert bkg.background.shape == data.shape and np.all(bkg.background == bkg.median)
    assert bkg.method == "global"


def test_global_mmm_is_daophot_mode_of_clipped_pixels():
    from photutils.background import MMMBackground

    data, _ = _sky(noise=2.0)
    data[50:60, 50:60] += 500.0  # a bright source: clipped away
    bkg = estimate_background(data, method="global", estimator="mmm", sigma=3.0, maxiters=10)
    ref = MMMBackground(sigma_clip=SigmaClip(sigma=3.0, maxiters=10)).calc_background(data)
    assert bkg.median == pytest.approx(float(ref), rel=1e-6)


def test_2d_follows_a_gradient_that_global_misses():
    data, truth = _sky(gradient=20.0, noise=1.0)
    b2 = estimate_background(data, method="2d", box_size=32, filter_size=3)
    bg = estimate_background(data, method="global")
    inner = (slice(32, -32), slice(32, -32))
    assert np.abs(b2.background - truth)[inner].max() < 0.5
    assert np.abs(bg.background - truth)[inner].max() > 5.0
    flat = estimate_background(_sky(noise=1.0)[0], method="2d", box_size=32)
    assert np.median(flat.rms) == pytest.approx(1.0, rel=0.03)


def test_2d_equals_photutils_background2d():
    from photutils.background import Background2D, MADStdBackgroundRMS, MMMBackground

    data, _ = _sky(gradient=5.0)
    mask = np.zeros(data.shape, bool)
    mask[10:20, 10:20] = True
    ours = estimate_background(data, mask, "2d", box_size=50, filter_size=3, estimator="mmm")
    ref = Background2D(
        data,
        (50, 50),
        mask=mask,
        filter_size=(3, 3),
        bkg_estimator=MMMBackground(),
        bkg_rms_estimator=MADStdBackgroundRMS(),
    )
    np.testing.assert_allclose(ours.background, ref.background, rtol=1e-6)
    np.testing.assert_allclose(ours.rms, ref.background_rms, rtol=1e-6)


def test_masked_and_nan_pixels_are_ignored():
    data, _ = _sky(noise=1.0)
    data[:40] = 1e6  # garbage, masked
    data[50, :] = np.nan
    mask = np.zeros(data.shape, bool)
    mask[:40] = True
    for method in ("2d", "global"):
        bkg = estimate_background(data, mask, method, box_size=32)
        assert bkg.median == pytest.approx(10.0, abs=0.1), method
        assert np.isfinite(bkg.background).all()


def test_source_mask_removes_the_bias_of_faint_wings():
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, (200, 200))
    yy, xx = np.mgrid[0:200, 0:200]
    for cx, cy in rng.uniform(10, 190, (60, 2)):
        data += 40.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0**2))
    plain = estimate_background(data, method="global")
    masked = estimate_background(data, method="global", mask_sources=True, source_dilate=6)
    assert abs(masked.median) < abs(plain.median)
    assert abs(masked.median) < 0.05
    smask = source_mask(data, 0.0, 1.0, nsigma=3, npixels=5, dilate=0)
    assert smask.sum() > 60 * 9


def test_2d_falls_back_to_global_when_boxes_are_all_masked():
    data, _ = _sky(shape=(64, 64))
    mask = np.ones(data.shape, bool)
    mask[::4, ::4] = False  # 94 % masked: every box fails exclude_percentile
    bkg = estimate_background(data, mask, "2d", box_size=16)
    assert bkg.method == "global" and "global estimate used" in bkg.note
    assert bkg.median == pytest.approx(10.0, abs=0.5)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="every pixel"):
        estimate_background(np.full((10, 10), np.nan))
    with pytest.raises(ValueError, match="method"):
        estimate_background(np.zeros((10, 10)), method="3d")
    with pytest.raises(ValueError, match="estimator"):
        estimate_background(np.zeros((10, 10)), method="global", estimator="nope")


def test_background_file_round_trip(tmp_path):
    from aperflow.background import read_background, write_background

    data, _ = _sky(gradient=5.0)
    bkg = estimate_background(data, method="2d", box_size=32)
    write_background(bkg, tmp_path / "bkg.fits", image="x.fits")
    back = read_background(tmp_path / "bkg.fits")
    np.testing.assert_allclose(back.background, bkg.background, rtol=1e-6)  # float32
    np.testing.assert_allclose(back.rms, bkg.rms, rtol=1e-6)
    assert back.median == bkg.median and back.std == bkg.std and back.method == "2d"


def test_background_of_a_real_image_uses_the_photometry_pixels():
    from conftest import shared_file

    from aperflow.background import background_of_image
    from aperflow.images import open_image

    image = open_image(shared_file("real/jwst_nircam_f444w_cal/nircam_f444w_cal_cutout.fits"))
    bkg = background_of_image(image, {"method": "global", "estimator": "mmm"})
    data = image.data * image.area  # the pixel-area rule of level-2 MJy/sr images
    ref = estimate_background(data, image.mask, "global", estimator="mmm")
    assert bkg.median == pytest.approx(ref.median, rel=1e-12)
    assert 0 < bkg.std < bkg.median


def test_coverage_mask_pixels_get_the_fill_value():
    data, _ = _sky(shape=(128, 128))
    cover = np.zeros(data.shape, bool)
    cover[:, :20] = True
    data[cover] = 0.0
    bkg = estimate_background(data, cover, "2d", box_size=32, coverage_mask=cover, fill_value=-1.0)
    assert np.all(bkg.background[cover] == -1.0)
    assert bkg.background[~cover].mean() == pytest.approx(10.0, abs=0.2)


def test_separable_zoom_equals_the_background2d_maps():
    from photutils.background import Background2D

    from aperflow.background import SeparableZoomInterpolator

    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:300, 0:410]
    data = 5 + np.sin(xx / 40.0) + np.cos(yy / 30.0) + rng.normal(0, 0.1, xx.shape)
    for box in ((64, 64), (30, 41)):  # shapes not divisible by the box: padded and cropped
        ref = Background2D(data, box)
        kw = {"shape": data.shape, "box_size": box, "dtype": float}
        ours = SeparableZoomInterpolator()(ref.background_mesh, **kw)
        np.testing.assert_allclose(ours, ref.background, rtol=0, atol=1e-12)
    flat = SeparableZoomInterpolator()(np.ones((4, 4)), shape=(40, 40), box_size=10, dtype=float)
    assert np.all(flat == 1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("estimator", "rms_estimator"),
    [("median", "mad_std"), ("mean", "std"), ("sextractor", "std"), ("biweight", "biweight")],
)
def test_2d_maps_equal_background2d_with_partial_boxes_masks_and_nan(
    dtype, estimator, rms_estimator
):
    """The fast box statistics and mesh filter change nothing: the maps are photutils'
    Background2D's (with its own ndimage zoom) on an image that is not a whole number of
    boxes, with masked blocks, NaN pixels and stars."""
    from photutils import background as pb

    rng = np.random.default_rng(11)
    data, _ = _sky(shape=(230, 301), gradient=8.0, noise=2.0, seed=5)
    yy, xx = np.mgrid[0:230, 0:301]
    for cy, cx in rng.uniform(0, 1, (40, 2)) * (230, 301):
        data += 800.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 3.0)
    data[rng.random(data.shape) < 0.02] = np.nan
    mask = np.zeros(data.shape, bool)
    mask[100:150, 40:90] = True
    data = data.astype(dtype)
    options = {"box_size": (40, 48), "filter_size": (3, 5), "sigma": 2.8, "maxiters": 7}
    ours = estimate_background(
        data, mask, "2d", estimator=estimator, rms_estimator=rms_estimator, **options
    )
    bkg = {
        "median": pb.MedianBackground,
        "mean": pb.MeanBackground,
        "sextractor": pb.SExtractorBackground,
        "biweight": pb.BiweightLocationBackground,
    }
    rms = {
        "mad_std": pb.MADStdBackgroundRMS,
        "std": pb.StdBackgroundRMS,
        "biweight": pb.BiweightScaleBackgroundRMS,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pb.Background2D(
            data,
            (40, 48),
            mask=mask | ~np.isfinite(data),
            filter_size=(3, 5),
            sigma_clip=SigmaClip(sigma=2.8, maxiters=7),
            bkg_estimator=bkg[estimator](),
            bkg_rms_estimator=rms[rms_estimator](),
        )
        # float32: photutils sums float32 boxes in float32, aperflow in float64
        rtol = 1e-10 if dtype == np.float64 else 2e-6
        np.testing.assert_allclose(ours.background, ref.background, rtol=rtol)
        np.testing.assert_allclose(ours.rms, ref.background_rms, rtol=rtol)
    assert ours.background.dtype == dtype
    assert ours.median == pytest.approx(float(ref.background_median), rel=rtol)
    assert ours.std == pytest.approx(float(ref.background_rms_median), rel=rtol)


def test_filter_mesh_is_background2d_filter_bit_for_bit():
    from scipy.ndimage import generic_filter

    from aperflow.background import filter_mesh

    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.float32):
        mesh = rng.normal(100.0, 5.0, (20, 27)).astype(dtype)
        mesh[rng.random(mesh.shape) < 0.1] = np.nan  # even counts at NaN and at the border
        for size in ((3, 3), (5, 3), (1, 5)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
                want = generic_filter(mesh, np.nanmedian, size=size, mode="constant", cval=np.nan)
            got = filter_mesh(mesh, size)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
    assert filter_mesh(mesh, 1) is mesh
    with pytest.raises(ValueError, match="odd"):
        filter_mesh(mesh, (2, 3))
