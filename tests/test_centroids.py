"""Centroids vectorised over frames: CC, batched 2-D Gaussian LM fit, centre of mass.

Checked against astropy's LevMarLSQFitter (same model, same answer), photutils'
centroid_com, analytic truth and the error pulls of many noisy frames.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.modeling import fitting, models

from aperflow.centroids import (
    center_of_mass,
    cross_correlation_centroids,
    extract_stamps,
    fit_gaussian_2d,
    gaussian_template,
)
from aperflow.psf import MoffatPSF


def _gaussian_stack(n, size=21, noise=3.0, amp=1000.0, seed=1):
    """Noisy rotated elliptical Gaussians with known parameters."""
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2
    truth = {
        "x": c + rng.uniform(-1.5, 1.5, n),
        "y": c + rng.uniform(-1.5, 1.5, n),
        "sx": rng.uniform(1.0, 1.8, n),
        "sy": rng.uniform(1.0, 1.8, n),
        "theta": rng.uniform(-0.7, 0.7, n),
    }
    yy, xx = np.mgrid[0:size, 0:size]
    model = models.Gaussian2D(
        amp, truth["x"][:, None, None], truth["y"][:, None, None], truth["sx"][:, None, None],
        truth["sy"][:, None, None], truth["theta"][:, None, None],
    )(xx[None], yy[None])  # fmt: skip
    return model + rng.normal(0.0, noise, model.shape), truth


def test_gaussian_fit_equals_astropy_levmar():
    stack, _ = _gaussian_stack(6, noise=3.0)
    cx, cy = cross_correlation_centroids(stack)
    fit = fit_gaussian_2d(stack, cx, cy)
    assert fit.success.all()
    yy, xx = np.mgrid[0 : stack.shape[1], 0 : stack.shape[2]]
    fitter = fitting.LevMarLSQFitter()
    for k in range(len(stack)):
        start = models.Gaussian2D(900, cx[k], cy[k], 1.3, 1.3, 0.0) + models.Const2D(0.0)
        ref = fitter(start, xx, yy, stack[k], maxiter=500)
        g = ref[0]
        assert fit.x[k] == pytest.approx(g.x_mean.value, abs=2e-6)
        assert fit.y[k] == pytest.approx(g.y_mean.value, abs=2e-6)
        assert fit.amplitude[k] == pytest.approx(g.amplitude.value, rel=1e-5)
        assert fit.offset[k] == pytest.approx(ref[1].amplitude.value, abs=1e-3)
        # same ellipse, whatever the labelling of the axes astropy ended with
        ours = _quadratic_form(fit.sigma_x[k], fit.sigma_y[k], fit.theta[k])
        theirs = _quadratic_form(g.x_stddev.value, g.y_stddev.value, g.theta.value)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def _quadratic_form(sx, sy, theta):
    c, s = np.cos(theta), np.sin(theta)
    a = c * c / (2 * sx * sx) + s * s / (2 * sy * sy)
    b = s * c * (1 / (2 * sx * sx) - 1 / (2 * sy * sy))
    cc = s * s / (2 * sx * sx) + c * c / (2 * sy * sy)
    return np.array([a, b, cc])


def test_gaussian_fit_recovers_truth_with_honest_errors():
    n, noise = 600, 3.0
    stack, truth = _gaussian_stack(n, noise=noise, seed=7)
    cx, cy = cross_correlation_centroids(stack)
    fit = fit_gaussian_2d(stack, cx, cy, errors=np.full(stack.shape, noise))
    assert fit.success.all()
    pulls = {
        "x": (fit.x - truth["x"]) / fit.x_err,
        "y": (fit.y - truth["y"]) / fit.y_err,
    }
    elongated = np.abs(truth["sx"] - truth["sy"]) > 0.25
    dtheta = (fit.theta - truth["theta"] + np.pi / 2) % np.pi - np.pi / 2
    # theta labels: ours keeps |theta| <= 45 deg with sigma_x along theta
    same_label = elongated & (np.abs(truth["theta"]) < np.pi / 4 - 0.05)
    pulls["theta"] = dtheta[same_label] / fit.theta_err[same_label]
    pulls["sigma_x"] = ((fit.sigma_x - truth["sx"]) / fit.sigma_x_err)[same_label]
    for name, pull in pulls.items():
        assert abs(np.mean(pull)) < 0.15, name
        assert 0.85 < np.std(pull) < 1.15, name
    # the centre errors are small at this S/N: a wrong Jacobian would not get here
    assert np.std(fit.x - truth["x"]) < 0.005


def test_errors_without_pixel_errors_scale_with_chi2():
    stack, truth = _gaussian_stack(400, noise=5.0, seed=3)
    cx, cy = cross_correlation_centroids(stack)
    fit = fit_gaussian_2d(stack, cx, cy)  # uniform weights: covariance x reduced chi^2
    assert np.median(fit.reduced_chi2) == pytest.approx(25.0, rel=0.05)
    assert 0.85 < np.std((fit.x - truth["x"]) / fit.x_err) < 1.15


def test_round_star_theta_is_undetermined_not_a_failure():
    yy, xx = np.mgrid[0:21, 0:21]
    stamp = 500 * np.exp(-0.5 * ((xx - 10.3) ** 2 + (yy - 9.8) ** 2) / 1.4**2)
    fit = fit_gaussian_2d(stamp[None], [10.0], [10.0])
    assert fit.success[0]
    assert fit.x[0] == pytest.approx(10.3, abs=1e-6)
    assert fit.sigma_x[0] == pytest.approx(1.4, abs=1e-6)
    assert fit.sigma_y[0] == pytest.approx(1.4, abs=1e-6)


def test_gaussian_fit_centres_a_pixel_integrated_moffat():
    """A Gaussian is not the PSF, but for a symmetric PSF its centre is the star's."""
    psf = MoffatPSF(2.3, beta=2.8, radius=25.0)
    rng = np.random.default_rng(5)
    xs, ys = 15 + rng.uniform(-0.5, 0.5, 30), 15 + rng.uniform(-0.5, 0.5, 30)
    frames = np.stack([psf.render((31, 31), x, y, 1e5) for x, y in zip(xs, ys, strict=True)])
    stamps, x0, y0 = extract_stamps(frames, np.full(30, 15.0), np.full(30, 15.0), 10)
    cx, cy = cross_correlation_centroids(stamps, fwhm=2.3)
    fit = fit_gaussian_2d(stamps, cx, cy, fwhm=2.3)
    assert np.max(np.abs(fit.x + x0 - xs)) < 0.01
    assert np.max(np.abs(fit.y + y0 - ys)) < 0.01
    assert np.max(np.abs(cx + x0 - xs)) < 0.1  # the start is already close


def test_failed_fits_are_flagged_not_raised():
    rng = np.random.default_rng(2)
    empty = np.full((1, 15, 15), np.nan)
    noise = rng.normal(0, 1, (1, 15, 15))
    stack = np.concatenate([empty, noise])
    cx, cy = cross_correlation_centroids(stack)
    assert np.isnan(cx[0]) and np.isnan(cy[0])
    fit = fit_gaussian_2d(stack, np.nan_to_num(cx, nan=7.0), np.nan_to_num(cy, nan=7.0))
    assert not fit.success[0] and np.isnan(fit.x[0])
    assert fit.x.shape == (2,)


def test_normal_equations_from_monomial_sums_equal_the_pixel_jacobian():
    """The fit builds J W J^T and J W r from weighted sums of monomials; they must equal
    the products of the per-pixel Jacobian (here by central differences of the model)."""
    from aperflow.centroids import _evaluate, _Grid, _Workspace

    rng = np.random.default_rng(9)
    n, h, w = 5, 15, 17
    p = np.column_stack([
        rng.uniform(50, 500, n), rng.uniform(5, 11, n), rng.uniform(4, 10, n),
        rng.uniform(0.1, 0.4, n), rng.uniform(-0.05, 0.05, n), rng.uniform(0.1, 0.4, n),
        rng.uniform(-2, 2, n),
    ])  # fmt: skip
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = xx.ravel().astype(float), yy.ravel().astype(float)

    def model(q):
        dx, dy = px - q[:, 1:2], py - q[:, 2:3]
        quad = q[:, 3:4] * dx * dx + 2 * q[:, 4:5] * dx * dy + q[:, 5:6] * dy * dy
        return q[:, 0:1] * np.exp(-quad) + q[:, 6:7]

    data = model(p) + rng.normal(0, 3.0, (n, h * w))
    weight = rng.uniform(0.5, 2.0, (n, h * w))
    weight[:, 7] = 0.0  # a masked pixel
    jac = np.empty((n, 7, h * w))
    for k in range(7):
        step = np.zeros(7)
        step[k] = 1e-6 * max(abs(p[:, k]).max(), 1.0)
        jac[:, k] = (model(p + step) - model(p - step)) / (2 * step[k])
    chi2, normal, grad = _evaluate(
        p, data, weight, weight.sum(axis=1), _Grid.of(h, w), _Workspace.of(n, h * w)
    )
    resid = data - model(p)
    np.testing.assert_allclose(chi2, (weight * resid**2).sum(axis=1), rtol=1e-12)
    expected = np.einsum("nkp,np,nlp->nkl", jac, weight, jac)
    scale = np.sqrt(np.einsum("nkk->nk", expected))
    np.testing.assert_allclose(
        normal / scale[:, :, None] / scale[:, None, :],
        expected / scale[:, :, None] / scale[:, None, :],
        atol=1e-7,
    )
    np.testing.assert_allclose(grad / scale, np.einsum("nkp,np->nk", jac, weight * resid) / scale,
                               atol=1e-6)  # fmt: skip


def test_no_frames_give_empty_results():
    fit = fit_gaussian_2d(np.zeros((0, 21, 21)), [], [])
    assert fit.x.shape == fit.success.shape == (0,)


def test_masked_pixels_are_ignored_by_the_fit():
    stack, truth = _gaussian_stack(1, noise=0.0)
    hole = stack.copy()
    hole[0, 10, 10] = np.nan  # a bad pixel on the peak
    hole[0, 3, 4] = 1e6  # and a wild one, masked too
    hole[0, 3, 4] = np.nan
    fit = fit_gaussian_2d(hole, [10.0], [10.0])
    assert fit.x[0] == pytest.approx(truth["x"][0], abs=1e-6)
    assert fit.y[0] == pytest.approx(truth["y"][0], abs=1e-6)


def test_center_of_mass_equals_photutils():
    from photutils.centroids import centroid_com

    stack, _ = _gaussian_stack(5, noise=2.0)
    x, y = center_of_mass(stack)
    for k in range(5):
        ref = centroid_com(stack[k])
        assert x[k] == pytest.approx(ref[0], abs=1e-10)
        assert y[k] == pytest.approx(ref[1], abs=1e-10)


def test_cross_correlation_template_paths_agree():
    stack, truth = _gaussian_stack(50, noise=3.0)
    x1, y1 = cross_correlation_centroids(stack, fwhm=2.5)
    x2, y2 = cross_correlation_centroids(stack, template=gaussian_template(31, 2.5))
    np.testing.assert_allclose(x1, x2, atol=1e-6)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    assert np.sqrt(np.mean((x1 - truth["x"]) ** 2)) < 0.06
    assert np.sqrt(np.mean((y1 - truth["y"]) ** 2)) < 0.06


def test_extract_stamps_offsets_and_fill():
    frames = np.arange(2 * 8 * 9, dtype=float).reshape(2, 8, 9)
    stamps, x0, y0 = extract_stamps(frames, np.array([4.4, 0.2]), np.array([3.6, 7.0]), 2)
    assert stamps.shape == (2, 5, 5)
    assert (x0[0], y0[0]) == (2, 2)
    np.testing.assert_array_equal(stamps[0], frames[0, 2:7, 2:7])
    assert (x0[1], y0[1]) == (-2, 5)
    assert np.isnan(stamps[1, :, :2]).all() and np.isnan(stamps[1, 3:, :]).all()
    np.testing.assert_array_equal(stamps[1, :3, 2:], frames[1, 5:8, 0:3])
