"""Detection: the FWHM table, FWHM measurement, the three finders, and the real files."""

from __future__ import annotations

import glob

import numpy as np
import pytest
from astropy.table import Table
from conftest import REAL, shared_file
from scipy.spatial import cKDTree

from aperflow.background import background_of_image, estimate_background
from aperflow.detection import (
    detect_image,
    estimate_fwhm,
    find_sources,
    fwhm_table,
    lookup_fwhm,
    resolve_fwhm,
)
from aperflow.images import open_image

#: seed 000's dictionary, verbatim
SEED_FILTERS = [
    "F070W",
    "F090W",
    "F115W",
    "F140M",
    "F150W2",
    "F150W",
    "F162M",
    "F164N",
    "F182M",
    "F187N",
    "F200W",
    "F210M",
    "F212N",
    "F250M",
    "F277W",
    "F300M",
    "F322W2",
    "F323N",
    "F335M",
    "F356W",
    "F360M",
    "F405N",
    "F410M",
    "F430M",
    "F444W",
    "F460M",
    "F466N",
    "F470N",
    "F480M",
]
SEED_FWHM = [
    0.987,
    1.103,
    1.298,
    1.553,
    1.628,
    1.770,
    1.801,
    1.494,
    1.990,
    2.060,
    2.141,
    2.304,
    2.341,
    1.340,
    1.444,
    1.585,
    1.547,
    1.711,
    1.760,
    1.830,
    1.901,
    2.165,
    2.179,
    2.300,
    2.302,
    2.459,
    2.507,
    2.535,
    2.574,
]


def test_fwhm_table_holds_every_nircam_value_of_seed_000_and_miri():
    table = fwhm_table()
    for filt, fwhm in zip(SEED_FILTERS, SEED_FWHM, strict=True):
        value, note = lookup_fwhm("NIRCAM", filt, table=table)
        assert value == fwhm, filt
        assert "seed 000" in note
    # MIRI from JDox (commissioning): F770W 0.269" = 2.445 px at 0.11"/px
    assert lookup_fwhm("MIRI", "F770W")[0] == 2.445
    assert lookup_fwhm("NIRCAM", "F999W")[0] is None
    # a resampled grid: the FWHM in arcsec over the image's own pixel scale
    value, note = lookup_fwhm("NIRCAM", "F444W", pixel_scale=0.03)
    assert value == pytest.approx(2.302 * 0.063 / 0.03, rel=2e-3) and "arcsec" in note
    assert lookup_fwhm("NIRCAM", "F444W", pixel_scale=0.0630)[0] == 2.302
    assert len(table) == 29 + 9


def _field(n=40, size=200, fwhm=2.5, seed=1):
    from aperflow.psf import MoffatPSF

    rng = np.random.default_rng(seed)
    x = rng.uniform(15, size - 15, n)
    y = rng.uniform(15, size - 15, n)
    keep = np.ones(n, bool)
    d, j = cKDTree(np.c_[x, y]).query(np.c_[x, y], k=2)
    keep &= d[:, 1] > 8  # resolvable stars only
    x, y = x[keep], y[keep]
    flux = rng.uniform(2000, 20000, x.size)
    image = MoffatPSF(fwhm, beta=3.0, radius=15).render((size, size), x, y, flux)
    image += rng.normal(0, 2.0, image.shape)
    return image, x, y, flux


@pytest.mark.parametrize("method", ["dao", "iraf", "segmentation"])
def test_finders_recover_every_star_with_accurate_centroids(method):
    image, x, y, _ = _field()
    src = find_sources(image, 2.0, fwhm=2.5, method=method, threshold=5.0)
    d, _ = cKDTree(np.c_[src["x"], src["y"]]).query(np.c_[x, y])
    assert np.all(d < 0.5), (method, np.sort(d)[-3:])
    assert len(src) == len(x)
    assert np.median(d) < 0.1
    assert list(src.colnames) == [
        "id",
        "x",
        "y",
        "flux",
        "peak",
        "sharpness",
        "roundness1",
        "roundness2",
        "npix",
    ]
    assert list(src["id"]) == list(range(1, len(src) + 1))
    assert np.all(np.diff(src["flux"]) <= 0)  # brightest first


def test_noise_alone_gives_an_empty_table_with_the_columns():
    rng = np.random.default_rng(0)
    src = find_sources(rng.normal(0, 1, (150, 150)), 1.0, fwhm=2.0, threshold=6.0)
    assert len(src) == 0 and "sharpness" in src.colnames
    masked = find_sources(np.zeros((20, 20)), 1.0, fwhm=2.0, mask=np.ones((20, 20), bool))
    assert len(masked) == 0


def test_masked_pixels_are_not_detected():
    image, x, y, _ = _field()
    mask = np.zeros(image.shape, bool)
    iy, ix = int(round(y[0])), int(round(x[0]))
    mask[iy - 6 : iy + 7, ix - 6 : ix + 7] = True
    src = find_sources(image, 2.0, fwhm=2.5, mask=mask)
    d, _ = cKDTree(np.c_[src["x"], src["y"]]).query([x[0], y[0]])
    assert d > 3 and len(src) == len(x) - 1


def test_estimate_fwhm_measures_the_psf():
    """The FWHM of the best-fitting Gaussian (11x11 px) of bright isolated stars: exact for
    Gaussian stars; for a Moffat (beta 3) with wings it comes out ~15 % wider."""
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(4)
    size = 300
    yy, xx = np.mgrid[0:size, 0:size]
    image = rng.normal(0.0, 1.0, (size, size))
    for cx, cy in rng.uniform(20, size - 20, (25, 2)):  # pixel-integrated Gaussians
        image += CircularGaussianPRF(flux=5000.0, x_0=cx, y_0=cy, fwhm=3.0)(xx, yy)
    assert estimate_fwhm(image, 1.0) == pytest.approx(3.0, rel=0.02)
    moffat, *_ = _field(n=60, fwhm=3.0, seed=4)
    assert estimate_fwhm(moffat, 2.0) == pytest.approx(3.0, rel=0.2)


def test_bad_method_and_fwhm_are_refused():
    with pytest.raises(ValueError, match="method"):
        find_sources(np.zeros((10, 10)), 1.0, fwhm=2.0, method="sextractor")
    with pytest.raises(ValueError, match="FWHM"):
        find_sources(np.zeros((10, 10)), 1.0, fwhm=0.0)


def test_demo_image_detections_match_the_truth(demo_dir):
    path = sorted((demo_dir / "field").glob("*nrcb1_cal.fits"))[0]
    image = open_image(path)
    truth = Table.read(str(path).replace(".fits", "_truth.ecsv"))
    bkg = background_of_image(image, {"method": "2d", "box_size": 64})
    src = detect_image(image, bkg, {})
    assert src.meta["fwhm_px"] == 2.141 and "seed 000" in src.meta["fwhm_from"]
    d, i = cKDTree(np.c_[truth["x"], truth["y"]]).query(np.c_[src["x"], src["y"]])
    assert np.all(d < 1.0)  # no false detection
    assert np.median(d) < 0.05
    # sky positions from the WCS agree with the truth's
    dra = (src["ra"] - truth["ra"][i]) * np.cos(np.deg2rad(truth["dec"][i])) * 3600
    ddec = (src["dec"] - truth["dec"][i]) * 3600
    assert np.median(np.hypot(dra, ddec)) < 0.005  # arcsec (0.15 px)


def test_real_miri_i2d_files_have_no_point_source():
    """Extended emission only: nothing is detected (the zero-filled border of the i2d is
    masked; without that, its edge gives spurious 'stars')."""
    paths = sorted(glob.glob(str(REAL / "jwst_miri_sub128_i2d" / "*_i2d.fits")))
    if len(paths) < 2:
        pytest.skip("../shared/data/real/jwst_miri_sub128_i2d is not here")
    for path in paths:
        image = open_image(path)
        bkg = background_of_image(image, {})
        src = detect_image(image, bkg, {})
        assert len(src) == 0, path
        assert "MIRI" in src.meta["fwhm_from"]
        # seed 000 masks zeros; the unmasked border is what a naive run would detect
        naive = find_sources(
            image.data - estimate_background(image.data, image.mask).background,
            estimate_background(image.data, image.mask).rms,
            fwhm=src.meta["fwhm_px"],
            method="iraf",
        )
        assert len(naive) >= len(src)


def test_real_ground_image_fwhm_is_measured_and_stars_found():
    image = open_image(shared_file("real/ground_thumbnail/thumbnail-image.fit.gz"))
    bkg = background_of_image(image, {})
    fwhm, note = resolve_fwhm(image, background=bkg)
    assert "measured" in note and 0.5 < fwhm < 1.5  # a decimated thumbnail: ~0.6 px
    src = detect_image(image, bkg, {})
    assert src.meta["kernel_fwhm_px"] == 1.5  # the kernel floor for undersampled images
    assert 40 <= len(src) <= 200
    # the two bright stars near (83, 89.5) and (77.5, 110) are found
    d, _ = cKDTree(np.c_[src["x"], src["y"]]).query([[82.9, 89.5], [77.5, 110.0]])
    assert np.all(d < 1.0)
    with pytest.raises(ValueError, match="set field.detection.fwhm"):
        resolve_fwhm(image)  # no table entry and nothing to measure with


def test_suppress_close_is_greedy_brightest_first():
    from aperflow.detection import suppress_close

    # a chain A > B > C, each 2 px from the next: B goes (next to A), C stays (A is 4 px)
    x = np.array([0.0, 2.0, 4.0, 50.0, 51.0])
    y = np.zeros(5)
    keep = suppress_close(x, y, 3.0)
    assert keep.tolist() == [True, False, True, True, False]
    assert suppress_close(x, y, 0.0).all()


def test_min_separation_drops_the_fainter_of_close_detections():
    image, x, y, _ = _field()
    all_ = find_sources(image, 2.0, fwhm=2.5)
    some = find_sources(image, 2.0, fwhm=2.5, min_separation=30.0)
    assert 0 < len(some) < len(all_)
    d = np.hypot(*(np.subtract.outer(some[c], some[c]) for c in ("x", "y")))
    assert d[np.triu_indices(len(some), 1)].min() >= 30.0
    assert some["flux"][0] == all_["flux"][0]  # the brightest is always kept


def _crowded(shape=(1024, 600), n=1500, seed=3, fwhm=2.5):
    """Gaussian stars on a flat sky (background subtracted), noise 1; a star next to each
    7-strip edge, so strips meet at sources."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    edges = np.linspace(0, ny, 8)[1:-1]
    y = np.concatenate([rng.uniform(3, ny - 3, n), edges + rng.uniform(-0.6, 0.6, edges.size)])
    x = rng.uniform(3, nx - 3, y.size)
    flux = 10 ** rng.uniform(1.5, 4.0, y.size)
    yy, xx = np.mgrid[0:ny, 0:nx]
    image = rng.normal(0.0, 1.0, shape)
    sigma = fwhm / 2.3548
    for xi, yi, fi in zip(x, y, flux, strict=True):
        iy, ix = int(yi), int(xi)
        sl = (slice(max(iy - 7, 0), iy + 8), slice(max(ix - 7, 0), ix + 8))
        r2 = (xx[sl] - xi) ** 2 + (yy[sl] - yi) ** 2
        image[sl] += fi * np.exp(-0.5 * r2 / sigma**2) / (2 * np.pi * sigma**2)
    return image


#: find_sources' defaults, as photutils keywords
_DAO_OPTIONS = {
    "sharpness_range": (0.2, 1.0),
    "roundness_range": (-1.0, 1.0),
    "exclude_border": True,
    "min_separation": 0.0,
}


@pytest.mark.parametrize("method", ["dao", "iraf"])
def test_strips_on_threads_give_the_single_call_table(method):
    image = _crowded()
    rms = np.full(image.shape, 1.0)
    rms[:, :40] = 1.5  # a threshold map, not a constant
    mask = np.zeros(image.shape, bool)
    mask[140:150, 100:300] = True  # across the first strip edge (146)
    mask[500, :] = True
    for m in (None, mask):
        one = find_sources(image, rms, fwhm=2.5, method=method, mask=m)
        assert len(one) > 1000
        for workers in (2, 3, 7):
            many = find_sources(image, rms, fwhm=2.5, method=method, mask=m, workers=workers)
            assert len(many) == len(one), (workers, len(many), len(one))
            for name in one.colnames:
                got, want = np.asarray(many[name], float), np.asarray(one[name], float)
                message = f"{name} workers={workers}"
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10, err_msg=message)


def test_single_call_equals_photutils_daostarfinder_itself():
    from photutils.detection import DAOStarFinder

    image = _crowded(seed=5)
    mask = np.zeros(image.shape, bool)
    mask[300:320, :] = True
    ours = find_sources(image, 1.0, fwhm=2.5, mask=mask, workers=2)
    finder = DAOStarFinder(5.0, 2.5, **_DAO_OPTIONS)
    ref = finder.find_stars(np.where(mask, 0.0, image), mask=mask)
    ref = ref[np.lexsort((ref["x_centroid"], ref["y_centroid"], -ref["flux"]))]
    assert len(ours) == len(ref)
    names = {"x": "x_centroid", "y": "y_centroid"}
    for col in ("x", "y", "flux", "peak", "sharpness", "roundness1", "roundness2"):
        want = ref[names.get(col, col)]
        np.testing.assert_allclose(ours[col], want, rtol=1e-12, atol=1e-10, err_msg=col)


def test_n_brightest_keeps_the_brightest_as_photutils():
    from photutils.detection import DAOStarFinder

    image = _crowded(seed=6)
    ours = find_sources(image, 1.0, fwhm=2.5, n_brightest=50, workers=2)
    finder = DAOStarFinder(5.0, 2.5, n_brightest=50, **_DAO_OPTIONS)
    ref = finder.find_stars(image)
    assert len(ours) == 50
    np.testing.assert_allclose(np.sort(ours["flux"]), np.sort(ref["flux"]), rtol=1e-12)
