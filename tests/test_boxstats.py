"""aperflow.boxstats: sort-based sigma-clipped row statistics against astropy and
photutils computed directly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import SigmaClip, mad_std
from photutils import background as pb

from aperflow.boxstats import FastSigmaClip, background2d_estimators, row_statistics


def _rows(dtype=np.float64, m=300, n=700, seed=2):
    """Noise on a sky of 100, star-like outliers, NaN runs, an empty and a flat row."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(100.0, 10.0, (m, n))
    rows[:, :25] += rng.uniform(0.0, 1e4, (m, 25))  # bright pixels
    rows[:, 25:30] -= rng.uniform(0.0, 300.0, (m, 5))  # cold pixels
    rows[::7, 100:400] = np.nan
    rows[3] = np.nan  # nothing to clip
    rows[5, : n - 4] = np.nan  # four pixels left
    rows[8, 10] = -1e9  # one far outlier
    rows[9] = 42.0  # std 0: bounds equal the value, kept (inclusive)
    rows[11, 50] = np.inf  # non-finite: ignored as NaN
    return rows.astype(dtype)


def _astropy(rows, sigma_clip):
    """astropy's clip along the rows and numpy's statistics of what it keeps (float64)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept, lower, upper = sigma_clip(rows, axis=-1, masked=False, return_bounds=True, copy=True)
        kept = kept.astype(np.float64)
        return {
            "count": np.count_nonzero(np.isfinite(kept), axis=-1),
            "lower": lower,
            "upper": upper,
            "median": np.nanmedian(kept, axis=-1),
            "mean": np.nanmean(kept, axis=-1),
            "std": np.nanstd(kept, axis=-1),
            "mad_std": mad_std(kept, axis=-1, ignore_nan=True),
        }


def _compare(ours, ref, rtol=1e-12):
    np.testing.assert_array_equal(ours.count, ref["count"])  # the same pixels kept
    for name in ("lower", "upper", "median", "mean", "std", "mad_std"):
        got, want = getattr(ours, name), ref[name]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        ok = np.isfinite(want)
        # relative to the scale of the row (a mean near zero has no relative precision);
        # bounds relative to their own spread (set by the std of the first iterations)
        spread = np.abs(ref["lower"]) + np.abs(ref["upper"])
        scale = (spread if name in ("lower", "upper") else ref["median"] + ref["std"])[ok]
        scale = np.abs(scale) + 1.0
        np.testing.assert_array_less(np.abs(got[ok] - want[ok]), rtol * scale, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "clip",
    [
        SigmaClip(sigma=3.0, maxiters=10),
        SigmaClip(sigma=3.0, maxiters=1),
        SigmaClip(sigma=2.5, maxiters=None, cenfunc="mean"),
        SigmaClip(sigma_lower=2.0, sigma_upper=4.0, maxiters=3),
    ],
    ids=["median-10", "median-1", "mean-inf", "asym-3"],
)
def test_row_statistics_equal_astropy_sigma_clip(dtype, clip):
    rows = _rows(dtype)
    ours = row_statistics(
        rows, clip.sigma_lower, clip.sigma_upper, clip.maxiters, clip.cenfunc, mad_std=True
    )
    _compare(ours, _astropy(rows, clip))
    assert ours.count[9] == rows.shape[1] and ours.std[9] == 0.0
    assert ours.count[3] == 0 and np.isnan(ours.lower[3])


def test_row_statistics_without_clip_are_nan_statistics():
    rows = _rows()
    ours = row_statistics(rows, None, None, mad_std=True)
    finite = np.where(np.isfinite(rows), rows, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(ours.median, np.nanmedian(finite, axis=1))
        np.testing.assert_allclose(ours.mean, np.nanmean(finite, axis=1), rtol=1e-12)
        np.testing.assert_allclose(ours.std, np.nanstd(finite, axis=1), rtol=1e-12)
        np.testing.assert_array_equal(ours.mad_std, mad_std(finite, axis=1, ignore_nan=True))
    assert np.all(ours.lower == -np.inf) and np.all(ours.upper == np.inf)


def test_quantised_rows_with_values_on_a_bound_follow_astropy():
    # median -0.45, std 0.3 at the 5th bounds: the upper bound is 0 up to rounding and
    # the two 0.0 pixels fall on either side depending on the summation order
    tie = [14.8, -0.4, 0.0, -0.9, -0.5, 0.4, -720.6, -0.7, -1.6, 0.0, -0.5, 0.8, -0.2]
    rng = np.random.default_rng(4)
    rows = np.vstack([np.array(tie)[None, :], np.round(rng.standard_cauchy((2000, 13)), 1)])
    clip = SigmaClip(sigma=1.5, maxiters=10)
    ref = _astropy(rows, clip)
    assert ref["count"][0] == 8  # astropy keeps the two zeros
    ours = row_statistics(rows, 1.5, 1.5, 10)
    np.testing.assert_array_equal(ours.count, ref["count"])
    np.testing.assert_array_equal(ours.upper[0], ref["upper"][0])


@pytest.mark.parametrize("values", ["poisson", "integers"])
def test_integer_valued_rows_keep_the_pixels_astropy_keeps(values):
    rng = np.random.default_rng(7)
    if values == "poisson":
        rows = rng.poisson(4.0, (3000, 37)).astype(np.float32)
    else:
        rows = rng.integers(0, 4, (3000, 20)).astype(float)
    for clip in (SigmaClip(sigma=2.0, maxiters=10), SigmaClip(sigma=1.0, maxiters=None)):
        ours = row_statistics(rows, clip.sigma_lower, clip.sigma_upper, clip.maxiters)
        np.testing.assert_array_equal(ours.count, _astropy(rows, clip)["count"])


def test_fast_sigma_clip_sets_clipped_pixels_to_nan_like_astropy():
    clip = SigmaClip(sigma=3.0, maxiters=10)
    data = _rows(np.float32).reshape(10, 30, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = clip(data, axis=-1, masked=False, copy=True)
    fast = FastSigmaClip(clip)
    got = fast(data.copy(), axis=-1, masked=False, copy=False)
    np.testing.assert_array_equal(got, want)  # NaN in the same places, values untouched
    many = _rows(np.float32, m=1300, n=200).reshape(13, 100, -1)  # several row chunks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_many = clip(many, axis=-1, masked=False, copy=True)
    got_many = FastSigmaClip(clip, workers=2)(many, axis=-1, masked=False, copy=True)
    np.testing.assert_array_equal(got_many, want_many)
    inplace = data.copy()
    assert np.shares_memory(fast(inplace, axis=-1, masked=False, copy=False), inplace)
    kept = data.copy()
    fast(kept, axis=-1, masked=False, copy=True)
    np.testing.assert_array_equal(kept, data)  # copy=True leaves the input alone
    # other calls are astropy's own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = data[0, 0]
        np.testing.assert_array_equal(
            fast(one, axis=None, masked=False), clip(one, axis=None, masked=False)
        )


def _mixed_image(shape, dtype, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    data = rng.normal(100.0, 5.0, shape) + 0.02 * xx
    for cy, cx in rng.uniform(0, 1, (60, 2)) * shape:
        data += 3000.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0)
    data[40:90, 30:120] = np.nan  # a block of bad pixels
    data[rng.random(shape) < 0.01] = np.nan
    mask = np.zeros(shape, bool)
    mask[150:190, 200:250] = True
    return data.astype(dtype), mask


_ESTIMATORS = [
    (pb.MedianBackground(), pb.MADStdBackgroundRMS()),
    (pb.MeanBackground(), pb.StdBackgroundRMS()),
    (pb.MMMBackground(), pb.MADStdBackgroundRMS()),
    (pb.ModeEstimatorBackground(median_factor=2.8, mean_factor=1.8), pb.StdBackgroundRMS()),
    (pb.SExtractorBackground(), pb.StdBackgroundRMS()),
    (pb.BiweightLocationBackground(), pb.BiweightScaleBackgroundRMS()),  # photutils' own
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("shape", "box"), [((300, 410), (32, 41)), ((256, 256), (64, 64))])
@pytest.mark.parametrize("estimators", _ESTIMATORS, ids=lambda e: type(e).__name__)
def test_background2d_meshes_equal_photutils(dtype, shape, box, estimators):
    data, mask = _mixed_image(shape, dtype)
    bkg, rms = estimators
    clip = SigmaClip(sigma=3.0, maxiters=10)
    kwargs = {"mask": mask, "exclude_percentile": 20.0, "filter_size": (3, 3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pb.Background2D(data, box, sigma_clip=clip, **kwargs, bkg_estimator=bkg,
                              bkg_rms_estimator=rms)  # fmt: skip
        fast = pb.Background2D(data, box, **kwargs, **background2d_estimators(clip, bkg, rms))
        # the same pixels in every box, the partial edge boxes and the corner included
        np.testing.assert_array_equal(fast.n_pixels_mesh, ref.n_pixels_mesh)
        # photutils computes float32 boxes in float32; these sums are float64
        rtol = 1e-12 if dtype == np.float64 else 2e-6
        for name in ("background_mesh", "background_rms_mesh"):
            got, want = getattr(fast, name), getattr(ref, name)
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=rtol, err_msg=name)


def test_unsupported_clips_are_left_to_photutils():
    bkg, rms = pb.MedianBackground(), pb.StdBackgroundRMS()
    for clip in (SigmaClip(stdfunc="mad_std"), SigmaClip(grow=1.5), SigmaClip(cenfunc=np.mean)):
        given = background2d_estimators(clip, bkg, rms)
        assert given == {"sigma_clip": clip, "bkg_estimator": bkg, "bkg_rms_estimator": rms}
    with pytest.raises(ValueError, match="reproduces"):
        FastSigmaClip(SigmaClip(stdfunc="mad_std"))


def test_fast_estimators_outside_background2d_match_photutils():
    rows = _rows()
    rows[~np.isfinite(rows)] = np.nan  # as Background2D passes them
    kw = background2d_estimators(None, pb.SExtractorBackground(), pb.MADStdBackgroundRMS())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = pb.SExtractorBackground(sigma_clip=None)(rows, axis=-1)
        np.testing.assert_allclose(kw["bkg_estimator"](rows, axis=-1), want, rtol=1e-12)
        # axis=None (Background2D's corner box): photutils' own estimator
        flat = rows[0][np.isfinite(rows[0])]
        assert kw["bkg_rms_estimator"](flat, axis=None) == pb.MADStdBackgroundRMS(sigma_clip=None)(
            flat
        )


def test_threads_give_the_same_statistics():
    rows = np.vstack([_rows(m=2000, n=1100), np.round(_rows(m=1000, n=1100, seed=4), 0)])
    one = row_statistics(rows, 2.0, 2.0, 10, mad_std=True)
    two = row_statistics(rows, 2.0, 2.0, 10, mad_std=True, workers=2)
    for name in ("count", "median", "mean", "std", "mad_std", "lower", "upper"):
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name), err_msg=name)
