"""The vectorised aperture-photometry engine: photutils agreement, geometry, sky, errors,
flags, calibration and the per-image table."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip, sigma_clipped_stats
from conftest import shared_file

from aperflow import flags as F
from aperflow.images import PIXEL_BAD, PIXEL_COSMIC_RAY, PIXEL_SATURATED, open_image
from aperflow.photometry import (
    SKY_VARIANCE_FACTOR,
    aperture_photometry,
    aperture_weights,
    clipped_stats_sorted,
    clipped_std_correction,
    flux_error,
    image_pixels,
    measure_image,
    radii_labels,
    radius_label,
    resolve_annulus,
    resolve_radii,
)

NIRCAM = "real/jwst_nircam_f444w_cal/nircam_f444w_cal_cutout.fits"


def _photutils_reference(data, mask, x, y, radii, annulus, sky_masks, sigma, maxiters):
    """aperture_photometry + ApertureStats computed directly, one source at a time where
    the annulus mask differs per source (neighbours)."""
    from photutils.aperture import (
        ApertureStats,
        CircularAnnulus,
        CircularAperture,
        aperture_photometry,
    )

    pos = np.transpose([x, y])
    med = np.empty(len(x))
    std = np.empty(len(x))
    for i in range(len(x)):
        st = ApertureStats(
            data,
            CircularAnnulus(pos[i], *annulus),
            mask=mask | sky_masks[i],
            sigma_clip=SigmaClip(sigma=sigma, maxiters=maxiters),
        )
        med[i], std[i] = st.median, st.std
    sums, areas = [], []
    for r in radii:
        aper = CircularAperture(pos, r=r)
        sums.append(np.asarray(aperture_photometry(data, aper, mask=mask)["aperture_sum"]))
        areas.append(np.asarray(ApertureStats(data, aper, mask=mask).sum_aper_area.value))
    return np.array(sums).T, np.array(areas).T, med, std


def test_sums_and_sky_equal_photutils_on_the_real_nircam_cutout():
    from photutils.detection import DAOStarFinder

    image = open_image(shared_file(NIRCAM))
    data, error, pflags = image_pixels(image)
    data = data.astype(float)
    mask = (pflags & PIXEL_BAD) != 0
    _, median, std = sigma_clipped_stats(data, mask=mask)
    found = DAOStarFinder(5 * std, 2.302)(data - median, mask=mask)
    x, y = np.asarray(found["x_centroid"]), np.asarray(found["y_centroid"])
    assert len(x) >= 15
    radii, annulus, rn = [1.5, 2.5, 3.5, 5.0], (8.0, 13.0), 4.0
    res = aperture_photometry(
        data,
        x,
        y,
        radii,
        error=error,
        pixel_flags=pflags,
        annulus=annulus,
        sky_sigma=3.0,
        sky_maxiters=5,
        neighbour_radius=rn,
        min_sky_pixels=1,
    )
    # The neighbour mask of each source: discs of radius rn (around the nearest pixel)
    # of every *other* source.
    yy, xx = np.mgrid[0 : data.shape[0], 0 : data.shape[1]]
    ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
    discs = [(xx - a) ** 2 + (yy - b) ** 2 <= rn**2 for a, b in zip(ix, iy, strict=True)]
    others = [np.any([d for j, d in enumerate(discs) if j != i], axis=0) for i in range(len(x))]
    sums, areas, med, sky_std = _photutils_reference(
        data, mask, x, y, radii, annulus, others, 3.0, 5
    )
    np.testing.assert_allclose(res.sky_median, med, rtol=1e-6)
    np.testing.assert_allclose(res.sky_std, sky_std, rtol=1e-6)
    np.testing.assert_allclose(res.raw_sum, sums, rtol=1e-6)
    np.testing.assert_allclose(res.area, areas, rtol=1e-9)
    net = sums - med[:, None] * areas
    np.testing.assert_allclose(res.flux, net, rtol=1e-6, atol=1e-6 * np.abs(net).max())
    # and the masked / DQ pixels of the real cutout do raise flags
    assert (res.flags & F.MASKED).any()


@pytest.mark.parametrize("method", ["exact", "center", "subpixel"])
def test_aperture_weights_equal_photutils_masks(method):
    from photutils.aperture import CircularAperture

    rng = np.random.default_rng(2)
    fx, fy = rng.uniform(-0.5, 0.5, 40), rng.uniform(-0.5, 0.5, 40)
    for r in (0.4, 1.0, 2.3, 3.5, 7.25):
        w = aperture_weights(fx, fy, r, method, subpixels=5)
        h = (w.shape[1] - 1) // 2
        for i in range(0, 40, 7):
            mask = CircularAperture((h + fx[i], h + fy[i]), r).to_mask(method=method, subpixels=5)
            ref = mask.to_image(w.shape[1:])
            np.testing.assert_allclose(w[i], ref, atol=1e-12)
        if method == "exact":
            np.testing.assert_allclose(w.sum(axis=(1, 2)), np.pi * r * r, rtol=1e-12)


def test_clipped_stats_equal_astropy_row_by_row():
    rng = np.random.default_rng(4)
    m, k = 200, 300
    values = rng.normal(5.0, 2.0, (m, k))
    values[:, :15] += rng.uniform(0, 80, (m, 15))  # contamination to clip
    n = rng.integers(0, k, m)
    n[:3] = [0, 1, 2]
    padded = np.sort(np.where(np.arange(k)[None] < n[:, None], values, np.inf), axis=1)
    mean, median, std, count = clipped_stats_sorted(padded, n, 3.0, 5)
    assert np.isnan(median[0]) and count[0] == 0
    for i in range(1, m):
        v = values[i, : n[i]]
        clipped = SigmaClip(sigma=3.0, maxiters=5)(v, masked=False)
        assert count[i] == clipped.size
        assert median[i] == pytest.approx(np.median(clipped), rel=1e-12)
        assert mean[i] == pytest.approx(np.mean(clipped), rel=1e-10)
        assert std[i] == pytest.approx(np.std(clipped), rel=1e-8, abs=1e-12)


def _star_image(n_side=12, spacing=50, flux=5000.0, sky=100.0, seed=7):
    from aperflow.psf import MoffatPSF

    rng = np.random.default_rng(seed)
    size = n_side * spacing
    g = np.arange(spacing / 2, size, spacing, dtype=float)
    x, y = (a.ravel() + rng.uniform(-0.5, 0.5, g.size**2) for a in np.meshgrid(g, g))
    psf = MoffatPSF(2.2, beta=2.8, radius=12.0)
    expected = psf.render((size, size), x, y, np.full(x.size, flux)) + sky
    return x, y, psf, expected, rng


def test_errors_are_honest_on_a_simulated_field():
    """(measured - true)/error has unit scatter: ERR form with exact overlap; DAOPHOT form
    with whole pixels ("center"). With exact overlap the DAOPHOT form's ``A sigma^2`` and
    ``F/g`` count partial pixels with weight w instead of w^2, so it is conservative."""
    x, y, psf, expected, rng = _star_image()
    # the EE of each star at its own pixel phase (undersampled: it matters at 0.3 %)
    ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
    radii = [2.0, 3.0, 4.0]
    truth = {
        "exact": [psf.encircled_energy(radii, a, b) for a, b in zip(x - ix, y - iy, strict=True)],
    }
    from photutils.aperture import CircularAperture
    from photutils.aperture import aperture_photometry as ap

    model = expected - 100.0
    truth["center"] = (
        np.array(
            [
                ap(model, CircularAperture(np.c_[x, y], r), method="center")["aperture_sum"]
                for r in radii
            ]
        ).T
        / 5000.0
    )
    cases = {
        "err": ("exact", {"error": np.sqrt(expected + 16.0)}),
        "daophot": ("center", {"gain": 1.0, "method": "center"}),
        "daophot-exact": ("exact", {"gain": 1.0}),
    }
    zs = {k: [] for k in cases}
    for _ in range(3):
        image = rng.poisson(expected).astype(float) + rng.normal(0.0, 4.0, expected.shape)
        for name, (kind, kw) in cases.items():
            res = aperture_photometry(image, x, y, radii, annulus=(13, 20), **kw)
            zs[name].append((res.flux - 5000.0 * np.asarray(truth[kind])) / res.flux_err)
    for name in ("err", "daophot"):
        z = np.concatenate(zs[name])
        assert np.std(z, axis=0) == pytest.approx(1.0, abs=0.07), name
        assert np.abs(np.mean(z, axis=0)).max() < 0.1, name
    z = np.concatenate(zs["daophot-exact"])
    assert np.all(np.std(z, axis=0) < 1.0) and np.all(np.std(z, axis=0) > 0.85)


def test_sky_statistics_and_error_factors():
    rng = np.random.default_rng(11)
    data = rng.normal(50.0, 3.0, (300, 300))
    x = np.array([100.3, 200.7])
    y = np.array([150.2, 99.9])
    res = {
        s: aperture_photometry(data, x, y, [3.0], annulus=(10, 20), sky_statistic=s)
        for s in ("median", "mean", "mmm")
    }
    for s, r in res.items():
        np.testing.assert_allclose(r.sky, 50.0, atol=0.6, err_msg=s)
    r = res["mmm"]
    np.testing.assert_allclose(r.sky, 3 * r.sky_median - 2 * r.sky_mean)
    assert SKY_VARIANCE_FACTOR["median"] == pytest.approx(np.pi / 2)
    assert clipped_std_correction(3.0) == pytest.approx(0.98485, abs=2e-4)
    # the median's sky term is pi/2 times the mean's (same n_sky, same noise)
    a = res["median"].area[:, 0]
    noise = res["median"].sky_std / clipped_std_correction(3.0)
    n = res["median"].n_sky
    expected = flux_error(a, noise, n / (np.pi / 2), var_sum=np.zeros(2))
    no_err = aperture_photometry(data, x, y, [3.0], annulus=(10, 20), gain=None)
    daophot = flux_error(a, noise, n / (np.pi / 2))
    np.testing.assert_allclose(no_err.flux_err[:, 0], daophot, rtol=1e-12)
    assert np.all(expected < daophot)


def test_flags_edges_masks_and_few_sky_pixels():
    data = np.full((100, 100), 10.0)
    pflags = np.zeros(data.shape, np.uint8)
    pflags[50, 50] |= PIXEL_SATURATED
    pflags[20, 80] |= PIXEL_COSMIC_RAY
    pflags[80, 20] |= PIXEL_BAD
    data[80, 20] = np.nan
    x = np.array([50.0, 80.0, 20.0, 1.0, 75.0, 250.0])
    y = np.array([50.0, 20.0, 80.0, 40.0, 75.0, 40.0])
    data[70:81, 70:81] = 0.0  # a hole...
    pflags[65:86, 65:86] |= PIXEL_BAD  # ...whose annulus is masked too
    res = aperture_photometry(data, x, y, [3.0], pixel_flags=pflags, annulus=(8, 12))
    f = res.flags[:, 0]
    assert f[0] & F.SATURATED and not f[0] & F.MASKED
    assert f[1] & F.COSMIC_RAY
    assert f[2] & F.MASKED and res.area[2, 0] == pytest.approx(np.pi * 9 - 1, abs=1e-9)
    assert f[3] & F.EDGE and res.area[3, 0] < np.pi * 9
    assert f[4] & F.MASKED and f[4] & F.NONPOSITIVE
    assert f[5] & F.OFF_IMAGE and np.isnan(res.flux[5, 0])
    # a clean constant sky: net flux 0 exactly and flagged non-positive
    assert res.flux[0, 0] == pytest.approx(0.0, abs=1e-9)
    few = aperture_photometry(data, x[:1], y[:1], [3.0], annulus=(8, 8.5), min_sky_pixels=40)
    assert few.flags[0, 0] & F.SKY_FEW_PIXELS and not few.flags[0, 0] & F.NO_SKY
    none = aperture_photometry(
        data, [75.0], [75.0], [2.0], pixel_flags=pflags, annulus=(3, 5), min_sky_pixels=1
    )
    assert none.flags[0, 0] & F.NO_SKY and none.n_sky[0] == 0


def test_neighbours_are_masked_out_of_the_annulus():
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, (120, 120))
    yy, xx = np.mgrid[0:120, 0:120]
    data += 2000.0 * np.exp(-((xx - 72) ** 2 + (yy - 60) ** 2) / (2 * 1.2**2))  # neighbour
    x, y = np.array([60.0, 72.0]), np.array([60.0, 60.0])
    plain = aperture_photometry(
        data, x, y, [3.0], annulus=(9, 15), sky_statistic="mean", sky_sigma=50.0
    )
    masked = aperture_photometry(
        data,
        x,
        y,
        [3.0],
        annulus=(9, 15),
        sky_statistic="mean",
        sky_sigma=50.0,
        neighbour_radius=5.0,
    )
    assert plain.sky[0] > 1.0  # the neighbour's core biases an unclipped mean...
    assert abs(masked.sky[0]) < 0.2  # ...and is gone with the mask
    assert masked.n_sky[0] < plain.n_sky[0]
    # a source's own disc is not masked from its own annulus
    assert masked.n_sky[1] > 0.8 * plain.n_sky[1]
    # discs reaching into the annuli (radius 10 > r_in - 1) are counted per source: the
    # neighbour's disc is still masked, the source's own disc is not
    wide = aperture_photometry(
        data,
        x,
        y,
        [3.0],
        annulus=(9, 15),
        sky_statistic="mean",
        sky_sigma=50.0,
        neighbour_radius=10.0,
    )
    yy, xx = np.mgrid[0:120, 0:120]
    for i, j in ((0, 1), (1, 0)):
        d_own = np.hypot(xx - x[i], yy - y[i])
        other = np.hypot(xx - x[j], yy - y[j]) <= 10.0
        expected = ((d_own >= 9) & (d_own < 15) & ~other).sum()
        assert wide.n_sky[i] == expected
    assert abs(wide.sky[0]) < 0.2


def test_empty_source_list_gives_empty_results():
    res = aperture_photometry(np.zeros((50, 50)), [], [], [2.0, 3.0], annulus=(5, 8))
    assert res.flux.shape == (0, 2) and res.sky.shape == (0,)


def test_bad_arguments_are_refused():
    data = np.zeros((20, 20))
    with pytest.raises(ValueError, match="method"):
        aperture_photometry(data, [5.0], [5.0], [2.0], method="gauss")
    with pytest.raises(ValueError, match="positive"):
        aperture_photometry(data, [5.0], [5.0], [0.0])
    with pytest.raises(ValueError, match="inner < outer"):
        aperture_photometry(data, [5.0], [5.0], [2.0], annulus=(5, 3))
    with pytest.raises(ValueError, match="same column"):
        resolve_radii([3.0, 3.001])
    with pytest.raises(ValueError, match="pixel scale"):
        resolve_radii(radii_arcsec=[0.1])


def test_radii_resolution_in_pixels_arcsec_and_fwhm():
    radii, labels, origins = resolve_radii([3.5, 3], [0.2], [2.0], fwhm=2.0, pixel_scale=0.063)
    np.testing.assert_allclose(radii, [3.5, 3.0, 0.2 / 0.063, 4.0])
    assert labels == ["r3.5", "r3", "r3.17", "r4"]
    assert origins == ["3.5 px", "3 px", "0.2 arcsec", "2 FWHM"]


def test_annulus_choice_follows_apcorr_unless_configured(caplog):
    class Table_:
        skyin, skyout, source = 8.0, 13.0, "crds.ecsv"

    assert resolve_annulus(apcorr=Table_())[0] == (8.0, 13.0)
    assert resolve_annulus()[0] == (10.0, 15.0)
    assert resolve_annulus(annulus_fwhm=[4, 6], fwhm=2.0)[0] == (8.0, 12.0)
    with caplog.at_level("WARNING"):
        assert resolve_annulus([10, 15], apcorr=Table_())[0] == (10.0, 15.0)
    assert "wing share" in caplog.text or "PSF-wing share" in caplog.text


def test_measure_image_on_the_real_cutout_calibrates_to_jy():
    from astropy.table import Table

    path = shared_file(NIRCAM)
    image = open_image(path)
    sources = Table({"x": [49.2, 10.0], "y": [50.7, 90.0], "sharpness": [0.5, 0.6]})
    t = measure_image(image, sources, radii=[2.0, 3.0], annulus=(8, 13), fwhm=2.302)
    data, _, pflags = image_pixels(image)
    raw = aperture_photometry(
        data,
        sources["x"],
        sources["y"],
        [2.0, 3.0],
        annulus=(8, 13),
        error=image.error * image.area,
        pixel_flags=pflags,
        neighbour_radius=2 * 2.302,
    )
    factor = 1e6 * image.meta.pixar_sr  # MJy/sr x sr -> Jy
    np.testing.assert_allclose(t["flux_r2"], raw.flux[:, 0] * factor, rtol=1e-12)
    np.testing.assert_allclose(t["flux_err_r3"], raw.flux_err[:, 1] * factor, rtol=1e-12)
    assert str(t["flux_r2"].unit) == "Jy"
    good = t["flux_r3"] > 0
    np.testing.assert_allclose(
        t["mag_r3"][good], -2.5 * np.log10(t["flux_r3"][good]) + 8.90, rtol=1e-12
    )
    np.testing.assert_allclose(
        t["mag_lim5_r3"], -2.5 * np.log10(5 * t["flux_err_r3"]) + 8.90, rtol=1e-12
    )
    assert t.meta["magnitude_system"] == "AB"
    assert t.meta["pixel_area_applied"] is True
    assert np.all(np.isfinite(t["ra"])) and t["ra"].unit == "deg"
    for col in (
        "id",
        "x",
        "y",
        "sky_median",
        "sky_std",
        "n_sky",
        "area_r2",
        "flags_r3",
        "mag_err_r2",
        "mag_lim3_r2",
        "sky_r3",
        "roundness1",
    ):
        assert col in t.colnames
    vega = measure_image(image, sources, radii=[2.0], annulus=(8, 13), vega_offset=1.5)
    np.testing.assert_allclose(vega["mag_r2"], t["mag_r2"] - 1.5, rtol=1e-12)
    assert vega.meta["magnitude_system"] == "Vega"


def test_measure_image_without_err_uses_the_daophot_form(tmp_path):
    image = open_image(shared_file("real/ground_thumbnail/thumbnail-image.fit.gz"))
    from astropy.table import Table

    sources = Table({"x": [139.7, 82.9], "y": [201.1, 89.5]})
    t = measure_image(image, sources, radii=[3.0], gain=1.5)
    assert "DAOPHOT" in t.meta["error_model"] and "g=1.5" in t.meta["error_model"]
    assert np.all(t["flux_r3"] > 0) and np.all(t["flux_err_r3"] > np.sqrt(t["flux_r3"] / 1.5))
    assert t.meta["magnitude_system"] == "instrumental"


def test_options_with_aperture_corrections_on_a_demo_image(demo_dir, caplog):
    from aperflow.apcorr import load_apcorr_table
    from aperflow.background import background_of_image
    from aperflow.detection import detect_image
    from aperflow.photometry import measure_from_options

    path = sorted((demo_dir / "field").glob("*nrcblong_cal.fits"))[0]
    apcorr_path = demo_dir / "field" / "apcorr.ecsv"
    image = open_image(path)
    sources = detect_image(image, background_of_image(image, {}), {})
    options = {"photometry": {"radii": [2.5, 3.0], "radii_fwhm": [2.0]}}
    t = measure_from_options(image, sources, options, apcorr_path)
    table = load_apcorr_table(apcorr_path, "F444W", "CLEAR")
    assert t.meta["annulus_px"] == [table.skyin, table.skyout]
    assert t.meta["radii_labels"] == ["r2.5", "r3", "r4.6"]  # 2 x 2.302 px
    corr, _ = table.correction(np.array(t.meta["radii_px"]))
    for label, c in zip(t.meta["radii_labels"], corr, strict=True):
        np.testing.assert_allclose(t[f"flux_total_{label}"], t[f"flux_{label}"] * c, rtol=1e-12)
    assert t.meta["apcorr"]["apcorr"] == pytest.approx(list(corr))
    # another annulus is honoured, with a warning about the wing share
    with caplog.at_level("WARNING"):
        other = {"photometry": {"radii": [3.0], "annulus": [12, 18]}}
        t2 = measure_from_options(image, sources, other, apcorr_path)
    assert t2.meta["annulus_px"] == [12.0, 18.0] and "PSF-wing share" in caplog.text


def test_radii_labels_from_metadata_else_from_the_error_columns():
    assert [radius_label(r) for r in (3, 3.5, 9.654)] == ["r3", "r3.5", "r9.65"]
    columns = ["id", "flux_r3", "flux_err_r3", "flux_err_r10.5", "flags_r3"]
    # The metadata's order wins (a table written by measure_image has both).
    assert radii_labels({"radii_labels": ["r10.5", "r3"]}, columns) == ["r10.5", "r3"]
    assert radii_labels({}, columns) == ["r3", "r10.5"]
    assert radii_labels({"radii_labels": []}, ["id", "error"]) == []  # a failed image's table
