"""Time-series photometry: reading cubes/ramps/frames in batches, integration times,
background, exact-overlap fluxes, light curves and precision; the real FGS ACQ1 exposure;
bounded memory on a 10,000-integration cube.

Truth comes from the frames the tests write themselves (known positions, fluxes, times),
photutils and astropy computed directly, and the real file in ../shared/data.
"""

from __future__ import annotations

import tracemalloc

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from conftest import shared_file

from aperflow import flags as F
from aperflow.images import ImageError
from aperflow.photometry import clipped_std_correction
from aperflow.psf import MoffatPSF
from aperflow.timeseries import (
    TimeseriesOptions,
    annulus_background,
    aperture_sums,
    barycentric_times,
    estimate_fwhm,
    failed_series,
    frame_background,
    integration_times,
    light_curve,
    measure_series,
    open_series,
    precision,
)

PSF = MoffatPSF(2.3, beta=2.8, radius=20.0)
FGS = "real/jwst_fgs_acq1_timeseries/add_wcs_default_acq1.fits"


def _star_frames(xs, ys, flux, shape=(48, 48), sky=5.0, noise=None, seed=0):
    """Pixel-integrated Moffat stars on a flat sky, Poisson-like noise of known sigma."""
    rng = np.random.default_rng(seed)
    model = np.stack([PSF.render(shape, x, y, f) for x, y, f in zip(xs, ys, flux, strict=True)])
    model = model + sky
    sigma = np.sqrt(model) if noise is None else np.full(model.shape, noise)
    return model + rng.normal(0.0, 1.0, model.shape) * sigma, sigma


def _write(path, sci, header=None, err=None, dq=None, hdus=()):
    primary = fits.PrimaryHDU(header=fits.Header(header or {}))
    out = [primary, fits.ImageHDU(np.asarray(sci), name="SCI")]
    if err is not None:
        out.append(fits.ImageHDU(np.asarray(err, dtype=np.float32), name="ERR"))
    if dq is not None:
        out.append(fits.ImageHDU(np.asarray(dq, dtype=np.uint32), name="DQ"))
    fits.HDUList(out + list(hdus)).writeto(path)
    return path


# ------------------------------------------------------------------------------ times


def _times_of(tmp_path, header, nints=5, hdus=()):
    path = _write(tmp_path / "t.fits", np.zeros((nints, 8, 8), np.float32), header, hdus=hdus)
    with fits.open(path) as hdul:
        merged = hdul[0].header.copy()
        return integration_times(hdul, merged, nints)


def test_int_times_matched_by_integration_number_in_a_segment(tmp_path):
    number = np.arange(1, 11)
    mid = 60000.0 + number * 0.001
    table = Table(
        {"integration_number": number, "int_mid_MJD_UTC": mid, "int_mid_BJD_TDB": mid + 0.004}
    )
    hdus = [fits.BinTableHDU(table, name="INT_TIMES")]
    t = _times_of(tmp_path, {"NINTS": 10, "INTSTART": 6}, nints=5, hdus=hdus)
    assert t.source == "INT_TIMES" and t.bjd_source == "INT_TIMES"
    np.testing.assert_array_equal(t.integration, np.arange(6, 11))
    np.testing.assert_array_equal(t.mjd_utc, mid[5:])
    np.testing.assert_array_equal(t.bjd_tdb, mid[5:] + 0.004)


def test_exposure_split_over_nints_of_the_whole_exposure(tmp_path):
    # A JWST segment: EXPSTART/EXPEND and NINTS describe the exposure, INTSTART the file.
    header = {"EXPSTART": 60000.0, "EXPEND": 60000.01, "NINTS": 10, "INTSTART": 6}
    t = _times_of(tmp_path, header, nints=5)
    expected = 60000.0 + (np.arange(5, 10) + 0.5) * 0.001
    np.testing.assert_allclose(t.mjd_utc, expected, rtol=0, atol=1e-12)
    assert t.source.startswith("EXPSTART/EXPEND")
    assert np.isnan(t.bjd_tdb).all()  # no target coordinates: no BJD


def test_exposure_split_over_the_file_when_nints_is_the_files(tmp_path):
    header = {"EXPSTART": 60000.0, "EXPEND": 60000.005, "NINTS": 5, "INTSTART": 201}
    t = _times_of(tmp_path, header, nints=5)
    np.testing.assert_allclose(t.mjd_utc, 60000.0 + (np.arange(5) + 0.5) * 0.001, atol=1e-12)
    np.testing.assert_array_equal(t.integration, np.arange(201, 206))


def test_date_obs_time_obs_and_exptime(tmp_path):
    header = {"DATE-OBS": "2024-03-01", "TIME-OBS": "12:00:00", "EXPTIME": 100.0}
    t = _times_of(tmp_path, header, nints=4)
    start = Time("2024-03-01T12:00:00", scale="utc").mjd
    np.testing.assert_allclose(t.mjd_utc, start + (np.arange(4) + 0.5) * 25.0 / 86400, atol=1e-9)
    assert "DATE-OBS" in t.source


def test_time_end_after_midnight(tmp_path):
    header = {"DATE-OBS": "2024-03-01", "TIME-OBS": "23:59:50", "TIME-END": "00:00:10"}
    t = _times_of(tmp_path, header, nints=1)
    assert t.mjd_utc[0] == pytest.approx(Time("2024-03-02T00:00:00").mjd, abs=1e-9)


def test_no_time_keywords_gives_nan_times(tmp_path):
    t = _times_of(tmp_path, {}, nints=3)
    assert np.isnan(t.mjd_utc).all() and t.source == "none"


def test_bjd_at_the_geocentre_is_astropys():
    mjd = 60500.2 + np.arange(3) * 0.01
    bjd, source = barycentric_times(mjd, 218.2767, 21.8946)
    from astropy.coordinates import EarthLocation

    t = Time(mjd, format="mjd", scale="utc", location=EarthLocation.from_geocentric(0, 0, 0, u.m))
    ref = (t.tdb + t.light_travel_time(SkyCoord(218.2767 * u.deg, 21.8946 * u.deg))).mjd
    np.testing.assert_allclose(bjd, ref, rtol=0, atol=1e-11)
    assert source == "geocentre"


def test_bjd_from_jwst_position_differs_from_geocentre_by_its_offset():
    """JWST's barycentric position (JWST_X/Y/Z, km) replaces the Earth's: the difference
    from the geocentric BJD is n . (r_jwst - r_earth) / c."""
    from astropy.coordinates import get_body_barycentric

    mjd = np.array([59696.0215, 59696.5])
    ra, dec = 269.8767, 66.5868
    t = Time(59696.0215, format="mjd", scale="utc")
    earth = get_body_barycentric("earth", t.tdb).xyz.to_value(u.km)
    offset = np.array([1.2e6, -0.9e6, 0.4e6])  # an L2-like offset, km
    header = {f"JWST_{a}": float(v) for a, v in zip("XYZ", earth + offset, strict=True)}
    header["EPH_TIME"] = 59696.0215  # no velocities: the position is held fixed
    bjd_j, source = barycentric_times(mjd[:1], ra, dec, header)
    bjd_g, _ = barycentric_times(mjd[:1], ra, dec)
    n_hat = SkyCoord(ra * u.deg, dec * u.deg).cartesian.xyz.value
    expected = offset @ n_hat / 299792.458 / 86400.0
    assert source.startswith("JWST_X")
    assert bjd_j[0] - bjd_g[0] == pytest.approx(expected, abs=2e-3 / 86400)  # 2 ms


# ------------------------------------------------------------------------ background


def test_annulus_background_equals_astropy_sigma_clipped_stats():
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(3)
    frames = rng.normal(10.0, 2.0, (4, 50, 50))
    frames[:, 5, 5:15] = 500.0  # outliers in the annulus (clipped)
    frames[1, 30, 10] = np.nan
    xs, ys = np.array([25.2, 24.7, 25.5, 26.1]), np.array([24.9, 25.3, 24.5, 25.0])
    bkg = annulus_background(frames, xs, ys, 8.0, 20.0, "median", 3.0, 5)
    yy, xx = np.mgrid[0:50, 0:50]
    for k in range(4):
        d = np.hypot(xx - xs[k], yy - ys[k])
        vals = frames[k][(d >= 8.0) & (d < 20.0) & np.isfinite(frames[k])]
        mean, median, std = sigma_clipped_stats(vals, sigma=3.0, maxiters=5)
        assert bkg.level[k] == pytest.approx(median, rel=1e-12)
        assert bkg.std[k] == pytest.approx(std, rel=1e-10)
        # the error of a clipped median: the scatter de-biased for the 3-sigma clipping
        # (as the field engine) and the median's variance factor pi/2
        noise = std / clipped_std_correction(3.0)
        assert bkg.error[k] == pytest.approx(noise * np.sqrt(np.pi / 2 / bkg.n[k]), rel=1e-10)
    mean_bkg = annulus_background(frames, xs, ys, 8.0, 20.0, "mean", 3.0, 5)
    assert mean_bkg.level[0] == pytest.approx(
        sigma_clipped_stats(
            frames[0][(np.hypot(xx - xs[0], yy - ys[0]) >= 8) & (np.hypot(xx - xs[0], yy - ys[0]) < 20)],
            sigma=3.0, maxiters=5,
        )[0],
        rel=1e-12,
    )  # fmt: skip


def test_annulus_crossing_the_edge_uses_the_pixels_on_the_frame():
    """One ring past the frame's edge takes the masked gather path for the whole batch;
    the statistics are still those of the annulus pixels on the frame."""
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(4)
    frames = rng.normal(10.0, 2.0, (3, 40, 40))
    xs, ys = np.array([6.3, 20.2, 33.8]), np.array([20.1, 19.6, 35.4])
    assert xs[0] - 12.0 < -0.5 and ys[2] + 12.0 > 39.5  # two rings cross an edge
    bkg = annulus_background(frames, xs, ys, 6.0, 12.0, "median", 3.0, 5)
    yy, xx = np.mgrid[0:40, 0:40]
    for k in range(3):
        d = np.hypot(xx - xs[k], yy - ys[k])
        vals = frames[k][(d >= 6.0) & (d < 12.0)]
        _, median, std = sigma_clipped_stats(vals, sigma=3.0, maxiters=5)
        assert bkg.level[k] == pytest.approx(median, rel=1e-12)
        assert bkg.std[k] == pytest.approx(std, rel=1e-10)


def test_annulus_off_the_frame_has_fewer_pixels_and_no_crash():
    frames = np.ones((2, 20, 20))
    bkg = annulus_background(frames, np.array([1.0, -50.0]), np.array([1.0, -50.0]), 5, 8)
    assert 0 < bkg.n[0] < np.pi * (64 - 25)
    assert bkg.n[1] == 0 and np.isnan(bkg.level[1])


def test_frame_background_is_the_median():
    rng = np.random.default_rng(4)
    frames = rng.normal(3.0, 1.0, (3, 30, 30))
    bkg = frame_background(frames)
    np.testing.assert_allclose(bkg.level, np.median(frames.reshape(3, -1), axis=1))


# ------------------------------------------------------------------------ photometry


def test_aperture_sums_equal_photutils_exact():
    from photutils.aperture import ApertureStats, CircularAperture, aperture_photometry

    rng = np.random.default_rng(5)
    frames = rng.normal(0.0, 1.0, (6, 40, 40)) + 3.0
    errors = np.abs(rng.normal(1.0, 0.2, frames.shape))
    xs, ys = 20 + rng.uniform(-2, 2, 6), 19 + rng.uniform(-2, 2, 6)
    radii = [2.5, 4.0, 6.3]
    out = aperture_sums(frames, errors, np.zeros(frames.shape, np.uint8), xs, ys, radii)
    for k in range(6):
        for j, r in enumerate(radii):
            ap = CircularAperture((xs[k], ys[k]), r)
            ref = aperture_photometry(frames[k], ap, method="exact")["aperture_sum"][0]
            assert out["sum"][k, j] == pytest.approx(ref, rel=1e-10)
            w = ap.to_mask(method="exact").to_image(frames.shape[1:])
            assert out["area"][k, j] == pytest.approx(
                ApertureStats(frames[k], ap).sum_aper_area.value, rel=1e-10
            )
            assert out["var_sum"][k, j] == pytest.approx(np.sum((w * errors[k]) ** 2), rel=1e-10)
            assert out["w2_sum"][k, j] == pytest.approx(np.sum(w * w * frames[k]), rel=1e-10)
    assert (out["flags"] == 0).all()


def test_aperture_flags_masked_saturated_edge_off_image():
    frames = np.ones((4, 30, 30))
    pix = np.zeros(frames.shape, np.uint8)
    frames[0, 15, 15] = np.nan  # bad pixel inside: left out, MASKED
    pix[0, 15, 15] = 1
    pix[1, 14, 15] = 2  # saturated pixel inside: kept, SATURATED
    xs = np.array([15.0, 15.0, 1.0, np.nan])
    ys = np.array([15.0, 15.0, 15.0, np.nan])
    out = aperture_sums(frames, None, pix, xs, ys, [3.0])
    full = np.pi * 9
    assert out["flags"][0, 0] & F.MASKED and out["area"][0, 0] == pytest.approx(full - 1)
    assert out["sum"][0, 0] == pytest.approx(full - 1)
    assert out["flags"][1, 0] == F.SATURATED and out["sum"][1, 0] == pytest.approx(full)
    assert out["flags"][2, 0] & F.EDGE and out["area"][2, 0] < full
    assert out["flags"][3, 0] & F.OFF_IMAGE and np.isnan(out["sum"][3, 0])


# ---------------------------------------------------------------- measuring a series


@pytest.fixture(scope="module")
def jitter_cube(tmp_path_factory):
    """60 integrations of a star with known jitter and flux, ERR = true sigma, DQ."""
    rng = np.random.default_rng(11)
    n = 60
    xs, ys = 23.4 + rng.normal(0, 0.15, n), 24.1 + rng.normal(0, 0.15, n)
    flux = np.full(n, 2.0e5)
    sci, sigma = _star_frames(xs, ys, flux, seed=12)
    dq = np.zeros(sci.shape, np.uint32)
    dq[7, 24, 23] = 1  # DO_NOT_USE on the star in integration 7
    header = {
        "TELESCOP": "JWST", "BUNIT": "DN/s", "EXPSTART": 60000.0, "EXPEND": 60000.06,
        "NINTS": n, "TARG_RA": 10.0, "TARG_DEC": -20.0,
    }  # fmt: skip
    path = _write(tmp_path_factory.mktemp("jitter") / "a_calints.fits", sci.astype(np.float32),
                  header, err=sigma, dq=dq)  # fmt: skip
    return path, xs, ys, flux


def test_measure_series_tracks_jitter_and_recovers_flux(jitter_cube):
    path, xs, ys, flux = jitter_cube
    options = {"radii": [4, 8, 12], "target": {"x": 23.0, "y": 24.0},
               "background": {"annulus": [14, 22]}}  # fmt: skip
    t = measure_series(path, options)
    assert len(t) == 60 and t.meta["time_source"].startswith("EXPSTART/EXPEND")
    np.testing.assert_allclose(t["mjd_utc"], 60000.0 + (np.arange(60) + 0.5) * 0.001, atol=1e-12)
    # BJD from the header's target through astropy (no INT_TIMES)
    assert t.meta["bjd_source"] == "geocentre" and np.isfinite(t["bjd_tdb"]).all()
    dx, dy = t["x_gauss"] - xs, t["y_gauss"] - ys
    assert np.sqrt(np.mean(dx**2 + dy**2)) < 0.01
    assert np.sqrt(np.mean((t["x_cc"] - xs) ** 2)) < 0.1
    assert np.sqrt(np.mean((t["x_com"] - xs) ** 2)) < 0.1
    # centre errors are honest: pulls have unit scatter
    assert 0.6 < np.std(dx / t["x_gauss_err"]) < 1.5
    assert (t["x_ap"] == t["x_gauss"]).all()
    # r=12 holds EE(12) of the flux; the errors explain the scatter about it
    ee = PSF.encircled_energy(np.array([12.0]), 23.4, 24.1)[0]
    good = (np.asarray(t["flags_r12"]) & F.MASKED) == 0
    pull = (t["flux_r12"][good] - flux[good] * ee) / t["flux_err_r12"][good]
    assert abs(np.mean(pull)) < 0.5 and 0.75 < np.std(pull) < 1.3
    assert t["flags_r4"][7] & F.MASKED and not t["flags_r4"][6] & F.MASKED
    # sky 5 plus the PSF wings in the annulus (~0.2 here); its error explains its scatter
    bkg, bkg_err = np.asarray(t["background"]), np.asarray(t["background_err"])
    assert 5.0 < np.median(bkg) < 5.4
    assert 0.7 < np.std(bkg) / np.median(bkg_err) < 1.4


def test_follow_fixed_and_frame_median(jitter_cube):
    path, xs, ys, _ = jitter_cube
    t = measure_series(
        path,
        {
            "radii": [6],
            "target": {"x": 23.4, "y": 24.1},
            "centroid": {"follow": "fixed"},
            "background": {"method": "median"},
        },  # fmt: skip
    )
    assert (t["x_ap"] == 23.4).all() and (t["y_ap"] == 24.1).all()
    with fits.open(path) as hdul:
        sci = hdul["SCI"].data.astype(float)
        sci[hdul["DQ"].data != 0] = np.nan  # DO_NOT_USE pixels are left out
        med = np.nanmedian(sci.reshape(60, -1), axis=1)
    np.testing.assert_allclose(t["background"], med, rtol=1e-6)


def test_batches_do_not_change_the_answer(jitter_cube):
    path = jitter_cube[0]
    a = measure_series(path, {"radii": [5], "batch_size": 7, "target": {"x": 23, "y": 24}})
    b = measure_series(path, {"radii": [5], "batch_size": 1000, "target": {"x": 23, "y": 24}})
    for name in ("x_gauss", "flux_r5", "flux_err_r5", "background"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12)


def test_worker_processes_give_the_serial_table(jitter_cube, tmp_path, monkeypatch):
    """Batches shared between this process and a forked worker: each measured once, by
    both processes, and the same table (every column, the masked integration and the
    metadata included) as measured in this process alone."""
    import os

    from aperflow import timeseries as ts

    path = jitter_cube[0]
    options = {"radii": [3, 6], "batch_size": 8, "target": {"x": 23, "y": 24}}
    serial = measure_series(path, options)
    record, measure_range = tmp_path / "ranges", ts._measure_range

    def recorded(series, job, first, stop):  # runs in the worker too (forked after this)
        with open(record, "a") as out:
            out.write(f"{os.getpid()} {first}\n")
        return measure_range(series, job, first, stop)

    monkeypatch.setattr(ts, "_measure_range", recorded)
    parallel = measure_series(path, options, workers=2)
    done = [line.split() for line in record.read_text().splitlines()]
    assert sorted(int(first) for _, first in done) == list(range(0, 60, 8))
    assert len({pid for pid, _ in done}) == 2
    assert parallel.colnames == serial.colnames and len(parallel) == 60
    assert parallel.meta == serial.meta
    for name in serial.colnames:
        a, b = np.asarray(serial[name]), np.asarray(parallel[name])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(b, a, err_msg=name)
    assert serial["flags_r3"][7] & F.MASKED  # the DO_NOT_USE pixel on the star


def test_star_found_without_a_target_and_far_from_the_frame_centre(tmp_path):
    sci, sigma = _star_frames([150.3, 150.5], [40.2, 40.0], [1e5, 1e5], shape=(100, 200))
    path = _write(tmp_path / "wide.fits", sci.astype(np.float32), err=sigma)
    t = measure_series(path, {"radii": [5]})
    assert t.meta["target_guess"]["source"] == "brightest smoothed pixel"
    np.testing.assert_allclose(t["x_gauss"], [150.3, 150.5], atol=0.02)
    np.testing.assert_allclose(t["y_gauss"], [40.2, 40.0], atol=0.02)
    assert 1.5 < t.meta["fwhm"] < 3.5  # estimated from the data (Moffat FWHM 2.3 px)


def test_ramp_is_last_minus_first_group_with_raw_saturation(tmp_path):
    """A level-1b ramp stored as uint16 (int16 + BZERO): integration = group[-1] -
    group[0]; a pixel at the ADC top in a raw group is flagged saturated."""
    rate, _ = _star_frames([20.2, 20.4, 20.3], [21.1, 21.0, 21.2], [3e4] * 3, shape=(40, 40),
                           noise=1.0)  # fmt: skip
    bias = 10000.0
    ramp = np.stack([bias + rate * g for g in range(3)], axis=1)  # (3 ints, 3 groups)
    ramp[2, 2, 21, 20] = 70000.0  # saturates in the last group of integration 2
    stored = np.clip(np.rint(ramp), 0, 65535).astype(np.uint16)
    header = {"DATE-BEG": "2024-01-01T00:00:00", "DATE-END": "2024-01-01T00:00:30",
              "BUNIT": "DN", "NINTS": 3, "NGROUPS": 3}  # fmt: skip
    path = _write(tmp_path / "x_uncal.fits", stored, header)
    with open_series(path) as s:
        assert s.layout == "ramp" and s.nints == 3 and s.saturation == 65535.0
        batch = next(s.batches(10))
        expected = stored[:, 2].astype(float) - stored[:, 0].astype(float)
        np.testing.assert_array_equal(batch.data, expected)
        assert batch.flags[2, 21, 20] & 2 and not batch.flags[1, 21, 20] & 2
    t = measure_series(path, {"radii": [5], "target": {"x": 20, "y": 21}})
    assert t["flags_r5"][2] & F.SATURATED and not t["flags_r5"][0] & F.SATURATED
    np.testing.assert_allclose(t["mjd_utc"] - t["mjd_utc"][0], [0, 10 / 86400, 20 / 86400],
                               atol=1e-9)  # fmt: skip
    # a data set's own images block (here a lower saturation level) overrides the global
    low = measure_series(path, {"radii": [5], "target": {"x": 20, "y": 21},
                                "images": {"saturation": bias + 1.5 * 3e4 * PSF.stamp(20.2, 21.1)[0].max()}},
                         {"saturation": None})  # fmt: skip
    assert all(low["flags_r5"] & F.SATURATED)
    # seed 002's choice of groups
    t2 = measure_series(path, {"radii": [5], "ramp_groups": [0, 1], "target": {"x": 20, "y": 21}})
    assert t2["flux_r5"][0] == pytest.approx(t["flux_r5"][0] / 2, rel=0.02)


def test_stack_of_frames_unsorted_and_duplicate_times(tmp_path):
    dates = ["2024-01-01T00:03:00", "2024-01-01T00:01:00", "2024-01-01T00:02:00",
             "2024-01-01T00:01:00"]  # fmt: skip
    tables = []
    for k, date in enumerate(dates):
        sci, sigma = _star_frames([15.2], [16.1], [5e4 * (1 + 0.01 * k)], shape=(32, 32), seed=k)
        path = _write(tmp_path / f"f{k}_cal.fits", sci[0].astype(np.float32),
                      {"DATE-OBS": date, "EXPTIME": 10.0}, err=sigma[0])  # fmt: skip
        tables.append(measure_series(path, {"radii": [4], "background": {"annulus": [8, 14]}}))
    lc = light_curve(tables)
    assert lc.meta["time_column"] == "mjd_utc"  # no target coordinates, no BJD
    assert np.all(np.diff(lc["mjd_utc"]) >= 0)
    assert list(lc["image"]) == ["f1_cal", "f3_cal", "f2_cal", "f0_cal"]
    assert list(lc["duplicate_time"]) == [False, True, False, False]
    assert lc.meta["n_duplicate_times"] == 1
    prec = precision(lc)
    assert prec["n"][0] == 3  # the duplicate is left out of the statistics
    flux = np.asarray(lc["flux_r4"])
    assert np.median(flux[[0, 2, 3]]) == pytest.approx(lc.meta["median_flux_r4"])


def test_one_integration_series(tmp_path):
    sci, sigma = _star_frames([15.2], [16.1], [5e4], shape=(32, 32))
    path = _write(tmp_path / "one_cal.fits", sci[0].astype(np.float32),
                  {"MJD-OBS": 60000.5}, err=sigma[0])  # fmt: skip
    t = measure_series(path, {"radii": [3, 5], "background": {"annulus": [8, 14]}})
    lc = light_curve([t])
    assert len(lc) == 1 and lc["norm_flux_r3"][0] == pytest.approx(1.0)
    prec = precision(lc)
    assert (prec["n"] == 1).all() and np.isnan(prec["ptp_ppm"]).all()
    assert np.isnan(prec["std_ppm"]).all() and np.isfinite(prec["expected_ppm"]).all()


def test_light_curve_refuses_mixed_radii_and_nothing(jitter_cube):
    a = measure_series(jitter_cube[0], {"radii": [3], "target": {"x": 23, "y": 24}})
    b = measure_series(jitter_cube[0], {"radii": [4], "target": {"x": 23, "y": 24}})
    with pytest.raises(ValueError, match="radii"):
        light_curve([a, b])
    with pytest.raises(ValueError, match="no integrations"):
        light_curve([failed_series("x.fits", "broken")])


def test_bad_inputs_name_the_problem(tmp_path):
    junk = tmp_path / "junk.fits"
    junk.write_text("not a fits file")
    with pytest.raises(ImageError, match="junk.fits"):
        measure_series(junk)
    table = failed_series(junk, "why")
    assert len(table) == 0 and table.meta["error"] == "why"
    for bad, key in (({"radii": [-1]}, "radii"), ({"centroid": {"follow": "x"}}, "follow"),
                     ({"background": {"annulus": [5, 3]}}, "annulus"),
                     ({"centroid": {"fwhm": "wide"}}, "fwhm")):  # fmt: skip
        with pytest.raises(ValueError, match=key):
            TimeseriesOptions.from_mapping(bad)


def test_estimate_fwhm_of_a_gaussian_and_a_ring():
    yy, xx = np.mgrid[0:41, 0:41]
    r2 = (xx - 20) ** 2 + (yy - 20) ** 2
    gauss = 100 * np.exp(-0.5 * r2 / (5.0 / 2.3548) ** 2)
    assert estimate_fwhm(gauss, 20, 20, 15) == pytest.approx(5.0, rel=0.1)
    # A saturated core read as a hole: the half-maximum region is the ring *and* its hole,
    # so the estimate is the size of the (broad) star, not of the thin ring.
    ring = np.where(r2 < 4, 0.0, gauss)
    above = gauss >= ring.max() / 2
    filled = 2 * np.sqrt(above.sum() / np.pi)
    ring_only = 2 * np.sqrt((above & (r2 >= 4)).sum() / np.pi)
    assert estimate_fwhm(ring, 20, 20, 15) == pytest.approx(filled, rel=1e-12)
    assert filled > 5.0 and ring_only < filled - 0.8


# ------------------------------------------------------------------ real FGS exposure


def test_fgs_acq1_centroids_on_the_star_not_the_brightest_pixel():
    """Real JWST FGS ACQ1 (6 ints x 2 groups, uint16): saturated star read as a ring; the
    brightest pixel jumps from (65, 97) to (62, 93) while the star stays near (64.8, 94.2)."""
    path = shared_file(FGS)
    t = measure_series(path, {"radii": [8]})
    assert t.meta["layout"] == "ramp" and len(t) == 6
    x, y = np.asarray(t["x_gauss"]), np.asarray(t["y_gauss"])
    assert np.all(np.abs(x - 64.8) < 0.5) and np.all(np.abs(y - 94.2) < 0.3)
    assert np.ptp(x) < 0.5 and np.ptp(y) < 0.3  # the star moves ~0.2 px
    with fits.open(path) as hdul:
        diff = hdul["SCI"].data[:, 1].astype(float) - hdul["SCI"].data[:, 0].astype(float)
    for k in range(6):
        by, bx = np.unravel_index(np.argmax(diff[k]), diff[k].shape)
        assert np.hypot(x[k] - bx, y[k] - by) > 1.5  # not on the brightest pixel
    for name in ("x_cc", "x_com"):
        assert np.all(np.abs(np.asarray(t[name]) - 64.8) < 0.6)
    flux = np.asarray(t["flux_r8"])
    assert (flux.max() - flux.min()) / np.median(flux) < 0.015
    # times: DATE-BEG..DATE-END split over the 6 integrations; BJD from JWST's position
    assert t.meta["time_source"].startswith("DATE-BEG/DATE-END")
    np.testing.assert_allclose(np.diff(t["mjd_utc"]) * 86400, 13.266 / 6, atol=1e-3)
    assert t.meta["bjd_source"].startswith("JWST_X")


# ---------------------------------------------------------------------- bounded memory


def test_ten_thousand_integrations_in_bounded_memory(tmp_path):
    """A 10,000 x 64 x 64 float32 cube (164 MB) is measured with far less memory: only
    ``batch_size`` integrations are ever in memory (the SCI cube is memory-mapped)."""
    n, shape = 10_000, (64, 64)
    path = tmp_path / "big_calints.fits"
    star = (PSF.render(shape, 31.4, 32.2, 5e4) + 10.0).astype(np.float32)
    header = fits.Header()
    for key, value in (
        ("SIMPLE", True),
        ("BITPIX", -32),
        ("NAXIS", 3),
        ("NAXIS1", 64),
        ("NAXIS2", 64),
        ("NAXIS3", n),
        ("MJD-OBS", 60000.0),
        ("EXPTIME", 1e4),
    ):
        header[key] = value  # fmt: skip
    noise = np.random.default_rng(0).normal(0, 3, (500, *shape)).astype(np.float32)
    stream = fits.StreamingHDU(path, header)
    for k in range(n // 500):
        stream.write(star[None] + np.roll(noise, k, axis=0))
    stream.close()
    cube_bytes = n * shape[0] * shape[1] * 4
    options = {"radii": [5], "batch_size": 128, "target": {"x": 31.4, "y": 32.2},
               "centroid": {"box": 6, "fwhm": 2.3}, "background": {"annulus": [10, 16]}}  # fmt: skip
    tracemalloc.start()
    try:
        table = measure_series(path, options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == n and np.isfinite(table["flux_r5"]).all()
    assert peak < 40e6, f"peak {peak / 1e6:.1f} MB"
    assert peak < 0.25 * cube_bytes
    assert np.std(table["x_gauss"]) < 0.01  # and the answers are right


def test_progress_is_logged_at_most_ten_times(demo_dir, caplog):
    import logging

    from aperflow.simulate import demo_files

    path = demo_files(demo_dir)["timeseries"][0]
    with caplog.at_level(logging.INFO, logger="aperflow.timeseries"):
        measure_series(path, {"radii": [3], "batch_size": 8}, {})
    progress = [r.getMessage() for r in caplog.records if "integrations done" in r.getMessage()]
    assert 1 <= len(progress) <= 10
    assert progress[-1].endswith("200 of 200 integrations done")
