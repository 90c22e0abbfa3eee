"""End-to-end: the time-series mode of the default demo run against the simulator's truth
(``resources/demo/timeseries/truth.ecsv``: position, flux and transit model per
integration; depth 0.004 in the metadata).

Reads the shared ``demo_run`` (one full default workflow run per session).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from aperflow.psf import MoffatPSF
from aperflow.tables import read_table

DATASET = "demo_timeseries"
RADII = ["r3", "r4", "r5", "r6", "r8"]
PLOTS = ["lightcurve", "centroids", "flux_vs_centroid", "scatter_matrix", "precision"]


def _need(run: Path, relative: str) -> Path:
    """An output of the demo run; the test fails with snakemake's stderr when it is absent."""
    if not (run / relative).exists():
        said = (run / "snakemake.stderr").read_text()[-3000:]
        pytest.fail(f"the demo run did not make {relative}; its stderr ends:\n{said}")
    return run / relative


@pytest.fixture(scope="module")
def lc(demo_run) -> Table:
    return read_table(_need(demo_run, f"results/{DATASET}/lightcurve.ecsv"))


@pytest.fixture(scope="module")
def truth(demo_run) -> Table:
    return Table.read(demo_run / "resources" / "demo" / "timeseries" / "truth.ecsv")


def _box_fit(norm, in_transit):
    """Least-squares box model ``f0 (1 - depth * in_transit)``: depth, its error (from the
    residual scatter) and the residuals."""
    design = np.column_stack([np.ones(len(norm)), in_transit.astype(float)])
    coef, *_ = np.linalg.lstsq(design, norm, rcond=None)
    resid = norm - design @ coef
    s2 = resid @ resid / (len(norm) - 2)
    cov = s2 * np.linalg.inv(design.T @ design)
    f0, b = coef
    depth = -b / f0
    grad = np.array([b / f0**2, -1.0 / f0])  # d depth / d (f0, b)
    return depth, float(np.sqrt(grad @ cov @ grad)), resid


def test_outputs_made_and_sorted(demo_run, lc, truth):
    frames = sorted((demo_run / "results" / DATASET / "timeseries").glob("*.ecsv"))
    assert len(frames) == 2 and all(len(read_table(f)) == 200 for f in frames)
    assert len(lc) == len(truth) == 400
    assert lc.meta["time_column"] == "bjd_tdb" and np.all(np.diff(lc["bjd_tdb"]) > 0)
    parquet = read_table(_need(demo_run, f"results/{DATASET}/lightcurve.parquet"))
    np.testing.assert_array_equal(parquet["flux_r5"], lc["flux_r5"])
    for name in PLOTS:
        png = _need(demo_run, f"results/{DATASET}/plots/timeseries_{name}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_times_are_the_int_times(lc, truth):
    assert list(lc["integration"]) == list(truth["integration"])
    np.testing.assert_allclose(lc["mjd_utc"], truth["mjd_mid"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(lc["bjd_tdb"], truth["bjd_tdb_mid"], rtol=0, atol=1e-9)


def test_centroids_track_the_injected_jitter(lc, truth):
    dx = np.asarray(lc["x_gauss"]) - truth["x"]
    dy = np.asarray(lc["y_gauss"]) - truth["y"]
    assert np.sqrt(np.mean(dx**2)) < 0.02 and np.sqrt(np.mean(dy**2)) < 0.02
    # in fact ~0.003 px, and the fit's errors say so
    assert 0.7 < np.std(dx) / np.median(lc["x_gauss_err"]) < 1.4
    # the apertures followed the Gaussian centres
    np.testing.assert_array_equal(lc["x_ap"], lc["x_gauss"])
    # CC is the start: close; the jitter (~0.15 px drift + 0.03 px white) is resolved
    assert np.sqrt(np.mean((np.asarray(lc["x_cc"]) - truth["x"]) ** 2)) < 0.05
    assert np.corrcoef(lc["x_gauss"], truth["x"])[0, 1] > 0.99


def test_transit_free_scatter_matches_the_expected_noise(lc, truth):
    """After removing the box transit, the scatter of the normalised flux is the noise the
    error model expects (photon + read + sky), within 10 %, at every radius."""
    in_transit = np.asarray(truth["model"]) < 1
    for r in RADII:
        norm = np.asarray(lc[f"norm_flux_{r}"])
        expected = np.median(np.asarray(lc[f"norm_flux_err_{r}"]) / norm)
        _, _, resid = _box_fit(norm, in_transit)
        ratio = np.std(resid, ddof=2) / expected
        assert 0.9 < ratio < 1.1, (r, ratio)


def test_transit_depth_recovered_by_a_box_fit(lc, truth):
    depth_true = truth.meta["depth"]
    in_transit = np.asarray(truth["model"]) < 1
    for r in RADII:
        depth, err, _ = _box_fit(np.asarray(lc[f"norm_flux_{r}"]), in_transit)
        assert abs(depth - depth_true) < 3 * err, (r, depth, err)
        assert err < depth_true / 10  # a real detection, not a wide error bar


def test_precision_table(demo_run, lc):
    prec = read_table(_need(demo_run, f"results/{DATASET}/lightcurve_precision.ecsv"))
    assert list(prec["radius"]) == [3.0, 4.0, 5.0, 6.0, 8.0]
    assert prec["best"].sum() == 1
    best = float(prec["radius"][prec["best"]][0])
    assert prec.meta["best_radius"] == best == lc.meta["best_radius"]
    assert prec["ptp_ppm"][prec["best"]][0] == np.min(prec["ptp_ppm"])
    # the point-to-point scatter is blind to the transit, the std is not
    assert np.all((prec["ptp_over_expected"] > 0.9) & (prec["ptp_over_expected"] < 1.1))
    assert np.all(prec["std_ppm"] > prec["ptp_ppm"])
    # photon noise of a 6000 DN/s star, 20 s, gain 2: ~1/sqrt(240000 EE) ~ 2100-2200 ppm
    assert np.all((prec["photon_ppm"] > 1900) & (prec["photon_ppm"] < 2400))
    total = np.hypot(prec["photon_ppm"], prec["sky_read_ppm"])
    np.testing.assert_allclose(total, prec["expected_ppm"], rtol=1e-9)
    # sky + read grow with the aperture area
    assert np.all(np.diff(prec["sky_read_ppm"]) > 0)


def test_fluxes_are_calibrated(demo_run, lc, truth):
    """Jy from MJy/sr x PIXAR_SR; back in DN/s they are the star's count rate times the
    encircled energy of the simulated PSF (to 0.5 %: the annulus also holds PSF wings)."""
    demo = demo_run / "resources" / "demo" / "timeseries"
    with fits.open(sorted(demo.glob("*_calints.fits"))[0]) as hdul:
        photmjsr, pixar = hdul["SCI"].header["PHOTMJSR"], hdul["SCI"].header["PIXAR_SR"]
    assert str(lc["flux_r5"].unit) == "Jy"
    psf = MoffatPSF(2.302, beta=2.8, radius=25.0)
    out = np.asarray(truth["model"]) == 1
    for r in (5.0, 8.0):
        dns = np.asarray(lc[f"flux_r{r:g}"])[out] / (photmjsr * pixar * 1e6)
        ee = np.array([psf.encircled_energy(np.array([r]), x, y)[0] for x, y in
                       zip(truth["x"][out][:20], truth["y"][out][:20], strict=True)])  # fmt: skip
        assert np.median(dns) == pytest.approx(6000.0 * np.mean(ee), rel=0.005)
