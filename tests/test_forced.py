"""Forced photometry against truth, against photutils directly, and on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from conftest import shared_file
from photutils.aperture import (
    ApertureStats,
    CircularAnnulus,
    CircularAperture,
    SkyCircularAperture,
    aperture_photometry,
)

from aperflow import flags as F
from aperflow.forced import (
    assign_bands,
    band_sort_key,
    combine_band,
    filter_wavelength_nm,
    forced_options,
    image_filter,
    image_zeropoint,
    measure_image,
    place_targets,
    wide_catalog,
)
from aperflow.images import open_image
from aperflow.photometry import clipped_std_correction
from aperflow.psf import MoffatPSF
from aperflow.regions import read_coordinates, read_ds9, read_targets

EGS = (
    "real/hst_egs_cutouts/egs_13004304_acs_f606w_cutout.fits",
    "real/hst_egs_cutouts/egs_13004304_acs_f814w_cutout.fits",
    "real/hst_egs_cutouts/egs_13004304_wfc3_f160w_cutout.fits",
)
#: The simulator's forced-mode PSF: Moffat beta 2.5, FWHM 2.0 px x this, cut at 20 px.
DEMO_FWHM = {"F606W": 2.0, "F814W": 2.5}
#: A sky annulus beyond the simulated PSF's truncation radius (21-30 px for r = 5 px), so
#: the expected aperture flux is exactly truth x EE.
CLEAN_SKY = {"background": {"method": "local", "annulus": [4.2, 6.0]}}


def _tan_wcs(center, scale_arcsec, shape, rot_deg=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(center)
    w.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    s, t = scale_arcsec / 3600, np.deg2rad(rot_deg)
    w.wcs.cd = [[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]]
    return w


def _write_hst(path, data, wcs, exptime=1000.0, photflam=7.86e-20, photplam=5921.1, filt="F606W"):
    primary = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC"})
    primary["FILTER1"], primary["FILTER2"], primary["EXPTIME"] = filt, "CLEAR2L", exptime
    sci = wcs.to_header()
    sci["BUNIT"], sci["PHOTFLAM"], sci["PHOTPLAM"] = "ELECTRONS/S", photflam, photplam
    fits.HDUList(
        [fits.PrimaryHDU(header=primary), fits.ImageHDU(data.astype(np.float32), sci, name="SCI")]
    ).writeto(path)
    return path


def _demo_truth(demo_dir, band):
    return Table.read(demo_dir / "forced" / f"hst_demo_acs_wfc_{band.lower()}_drc_truth.ecsv")


def _demo_image(demo_dir, band):
    return open_image(demo_dir / "forced" / f"hst_demo_acs_wfc_{band.lower()}_drc.fits")


@pytest.fixture(scope="module")
def demo_targets(demo_dir):
    forced = demo_dir / "forced"
    return read_targets(forced / "regions.reg", forced / "targets.csv", 0.25)


def _pulls(table, truth, fwhm):
    """(measured - truth x EE(r)) / error for the circular regions of a table."""
    psf = MoffatPSF(fwhm, beta=2.5, radius=20.0)
    stars = table[table["kind"] == "circle"]
    rows = [list(truth["id"]).index(i) for i in stars["id"]]
    ee = np.array(
        [
            psf.encircled_energy(r, truth["x"][k], truth["y"][k])[0]
            for r, k in zip(stars["a_px"], rows, strict=True)
        ]
    )
    return (np.asarray(stars["flux"]) - truth["flux"][rows] * ee) / np.asarray(stars["flux_err"])


# ------------------------------------------------------------------------- truth


def test_demo_star_fluxes_match_truth_within_errors(demo_dir, demo_targets):
    pulls = []
    for band, fwhm in DEMO_FWHM.items():
        table = measure_image(_demo_image(demo_dir, band), demo_targets, CLEAN_SKY)
        truth = _demo_truth(demo_dir, band)
        assert table.meta["filter"] == band and table.meta["off_image"] == []
        assert len(table) == 26 and (table["flags"] == 0).all()
        # positions: fk5 regions and the ICRS list land on the truth pixels
        k = [list(truth["id"]).index(i) for i in table["id"]]
        assert np.abs(table["x"] - truth["x"][k]).max() < 0.01
        assert np.abs(table["y"] - truth["y"][k]).max() < 0.01
        pulls.extend(_pulls(table, truth, fwhm))
    pulls = np.array(pulls)
    assert len(pulls) == 50
    # 50 pulls: the std is known to ~10 %, so this is a sanity band; the 0.9-1.1
    # criterion is tested on 400 stars in test_pull_distribution_large_simulation.
    assert np.abs(pulls).max() < 3.5
    assert 0.7 < pulls.std() < 1.3
    assert abs(pulls.mean()) < 0.5


def test_demo_galaxy_ellipse_recovers_injected_flux(demo_dir, demo_targets):
    for band in DEMO_FWHM:
        table = measure_image(_demo_image(demo_dir, band), demo_targets)  # default options
        truth = _demo_truth(demo_dir, band)
        g = table[table["id"] == "galaxy"][0]
        injected = truth["flux"][list(truth["id"]).index("galaxy")]
        assert g["kind"] == "ellipse"
        assert g["flux"] == pytest.approx(injected, rel=0.02)
        assert g["flux_err"] < 0.01 * injected
        # the flux-weighted centroid inside the ellipse is the galaxy's centre
        gx, gy = truth["x"][-1], truth["y"][-1]
        assert np.hypot(g["xcentroid"] - gx, g["ycentroid"] - gy) < 0.5
        c = SkyCoord(g["ra_centroid"] * u.deg, g["dec_centroid"] * u.deg)
        assert (
            c.separation(SkyCoord(truth["ra"][-1] * u.deg, truth["dec"][-1] * u.deg))
            < 0.03 * u.arcsec
        )
        # AB magnitude from PHOTFLAM/PHOTPLAM
        assert g["mag"] == pytest.approx(truth["mag_ab"][-1], abs=0.025)
        assert table.meta["mag_system"] == "AB"


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """400 stars on a 20x20 grid (50 px apart), sky left in, Poisson + read noise."""
    tmp = tmp_path_factory.mktemp("crowd")
    rng = np.random.default_rng(42)
    shape, exptime, sky, rn = (1000, 1000), 1000.0, 0.1, 5.0
    g = (np.arange(20) + 0.5) * 50.0
    x, y = (a.ravel() + rng.uniform(-0.5, 0.5, 400) for a in np.meshgrid(g, g))
    flux = 10 ** rng.uniform(0.0, 2.5, 400)  # 1-300 e/s
    psf = MoffatPSF(2.2, beta=2.5, radius=15.0)
    scene = psf.render(shape, x, y, flux) + sky
    counts = rng.poisson(scene * exptime) + rng.normal(0.0, rn, shape)
    wcs = _tan_wcs((150.0, 2.0), 0.05, shape, rot_deg=17.0)
    path = _write_hst(tmp / "crowd_f606w_drc.fits", counts / exptime, wcs, exptime)
    sky_xy = wcs.pixel_to_world(x, y)
    Table(
        {"id": [f"s{i:03d}" for i in range(400)], "ra": sky_xy.ra.deg, "dec": sky_xy.dec.deg}
    ).write(tmp / "stars.csv")
    ee = np.array([psf.encircled_energy(4.0, xi, yi)[0] for xi, yi in zip(x, y, strict=True)])
    return open_image(path), read_coordinates(tmp / "stars.csv", 0.2), flux * ee, sky


@pytest.mark.parametrize("method", ["local", "global"])
def test_pull_distribution_large_simulation(crowd, method):
    image, targets, expected, sky = crowd
    options = {"background": {"method": method, "annulus": [4.2, 6.0]}}
    options["background"]["global"] = {"method": "global", "mask_sources": True}
    table = measure_image(image, targets, options)
    assert len(table) == 400 and np.allclose(table["a_px"], 4.0)
    assert np.allclose(table["sky"], sky, atol=3e-3)
    pulls = (np.asarray(table["flux"]) - expected) / np.asarray(table["flux_err"])
    assert 0.9 < pulls.std() < 1.1, pulls.std()
    assert abs(pulls.mean()) < 0.15
    # the DAOPHOT form: the sky-noise term alone would give a much narrower error
    sky_only = np.sqrt(table["area"] * table["sky_std"] ** 2)
    bright = expected > 100
    assert (table["flux_err"][bright] > 1.5 * sky_only[bright]).all()


# --------------------------------------------------------------- real EGS cutouts


def test_egs_sky_regions_same_on_every_pixel_grid_and_equal_photutils(tmp_path):
    paths = [shared_file(p) for p in EGS]
    reg = tmp_path / "egs.reg"
    reg.write_text(
        "# Region file format: DS9 version 4.1\nfk5\n"
        'circle(214.8064,52.8148,0.3") # text={a}\n'
        'circle(214.8060,52.8146,0.2") # text={b}\n'
        'ellipse(214.8066,52.8150,0.4",0.2",30) # text={c}\n'
    )
    targets = read_ds9(reg)
    options = {"background": {"method": "none"}, "filter_from_name": r"_(f\d{3}[wmn])_"}
    tables, scales = {}, {}
    for path in paths:
        image = open_image(path)
        table = measure_image(image, targets, options)
        tables[table.meta["filter"]] = table
        scales[table.meta["filter"]] = image.pixel_scale()
        assert list(table["id"]) == ["a", "b", "c"]
        # the same sky aperture computed by photutils directly
        for row, target in zip(table[:2], targets.targets[:2], strict=True):
            r = target.region.radius.to_value(u.arcsec)
            direct = SkyCircularAperture(target.region.center, r * u.arcsec)
            data = image.data.astype(float)
            want = aperture_photometry(data, direct, wcs=image.wcs)["aperture_sum"][0]
            assert row["flux"] == pytest.approx(want, rel=1e-8)
            assert row["area"] == pytest.approx(direct.to_pixel(image.wcs).area, rel=1e-9)
            assert row["a_px"] == pytest.approx(r / image.pixel_scale(), rel=1e-5)
    assert sorted(tables) == ["F160W", "F606W", "F814W"]
    # one region file, different pixel grids: the pixel radius scales with the pixel size
    ratio = scales["F160W"] / scales["F606W"]
    assert ratio == pytest.approx(2.0, rel=1e-6)
    for k in range(3):
        assert tables["F606W"]["a_px"][k] == pytest.approx(
            ratio * tables["F160W"]["a_px"][k], rel=1e-6
        )
        assert tables["F606W"]["a_px"][k] == pytest.approx(tables["F814W"]["a_px"][k], rel=1e-9)
        area = [tables[b]["area_arcsec2"][k] for b in tables]
        assert np.ptp(area) < 1e-6 * area[0]  # the same sky area everywhere
    # the ellipse keeps its sky orientation on the rotated grids
    assert tables["F606W"]["theta_px"][2] == pytest.approx(
        tables["F160W"]["theta_px"][2], abs=1e-4
    )


def test_egs_zeropoint_from_config_gives_ab(tmp_path):
    path = shared_file(EGS[2])
    csv = tmp_path / "t.csv"
    csv.write_text("id,ra,dec\na,214.8064,52.8148\n")
    options = {"filter_from_name": r"_(f\d{3}[wmn])_", "zeropoints": {"F160W": 25.946}}
    table = measure_image(open_image(path), read_coordinates(csv, 0.3), options)
    assert table.meta["mag_system"] == "AB" and table.meta["zeropoint"] == 25.946
    assert table["mag"][0] == pytest.approx(-2.5 * np.log10(table["flux"][0]) + 25.946)
    assert table["flux_ujy"][0] == pytest.approx(table["flux"][0] * 10 ** (-0.4 * (25.946 - 23.9)))


# ------------------------------------------------------------------- bad inputs


def test_regions_outside_every_image_reported_others_complete(demo_dir, tmp_path, caplog):
    reg = tmp_path / "r.reg"
    lines = (demo_dir / "forced" / "regions.reg").read_text().splitlines()
    lines.insert(4, 'circle(150.2,2.3,0.25") # text={faraway}')
    lines.insert(5, "circle(150.2,2.3,0.25 # text={broken}")
    lines.insert(6, 'circle(150.2,abc,0.25") # text={broken2}')
    reg.write_text("\n".join(lines) + "\n")
    targets = read_ds9(reg)
    assert any(p.startswith(f"{reg}:7: malformed region") for p in targets.problems)
    assert "faraway" in targets.ids and "broken2" not in targets.ids
    tables = []
    for band in DEMO_FWHM:
        with caplog.at_level("WARNING", logger="aperflow.forced"):
            table = measure_image(_demo_image(demo_dir, band), targets)
        assert "faraway" not in table["id"] and "galaxy" in table["id"]
        assert "faraway" in table.meta["off_image"]
        tables.append(table)
    assert "not on the image: faraway" in caplog.text
    cat = combine_band(tables[:1], targets, "F606W")
    row = cat[list(cat["id"]).index("faraway")]
    assert row["n_images"] == 0 and row["flags"] & F.OFF_IMAGE and np.isnan(row["flux"])
    # "broken" lacks its closing parenthesis; the regions parser accepts it (off-image too)
    off = np.isin(cat["id"], ["faraway", "broken"])
    assert (cat["n_images"][~off] == 1).all() and (cat["n_images"][off] == 0).all()


def test_image_without_wcs_measures_pixel_regions_and_says_why(demo_dir, tmp_path):
    src = demo_dir / "forced" / "hst_demo_acs_wfc_f606w_drc.fits"
    import re

    wcs_key = re.compile(r"^(CTYPE|CRVAL|CRPIX|CDELT|CUNIT|WCSAXES|PC\d_\d|CD\d_\d)")
    with fits.open(src) as hdul:
        for hdu in hdul:
            for key in [k for k in hdu.header if wcs_key.match(k)]:
                del hdu.header[key]
        hdul.writeto(tmp_path / "nowcs_drc.fits")
    image = open_image(tmp_path / "nowcs_drc.fits")
    assert image.wcs is None
    reg = tmp_path / "mixed.reg"
    truth = _demo_truth(demo_dir, "F606W")
    reg.write_text(
        'fk5\ncircle(150.1,2.2,0.25") # text={sky}\n'
        f"image\ncircle({truth['x'][0] + 1},{truth['y'][0] + 1},5) # text={{pix}}\n"
    )
    table = measure_image(image, read_ds9(reg))
    assert list(table["id"]) == ["pix"]
    assert "no celestial WCS" in table.meta["problems"][0] and "sky" in table.meta["problems"][0]
    assert str(src.name) not in table.meta["problems"][0]  # names the file actually read
    assert np.isnan(table["ra"][0]) and table["flux"][0] > 0


def test_masked_and_edge_flags(tmp_path):
    shape = (60, 60)
    data = np.ones(shape)
    data[30, 30] = np.nan
    data[45:, 45:] = 0.0  # a drizzled product's fill where no exposure covers the sky
    path = _write_hst(tmp_path / "flat_drc.fits", data, _tan_wcs((10, 10), 0.1, shape))
    reg = tmp_path / "r.reg"
    reg.write_text(
        "image\ncircle(31,31,4) # text={hole}\ncircle(2,31,4) # text={edge}\n"
        "circle(55,55,3) # text={void}\n"
    )
    table = measure_image(open_image(path), read_ds9(reg), {"background": {"method": "none"}})
    assert table.meta["off_image"] == ["void"]
    hole, edge = table
    assert hole["flags"] & F.MASKED and not hole["flags"] & F.EDGE
    assert hole["area"] == pytest.approx(np.pi * 16 - 1.0)
    assert hole["flux"] == pytest.approx(hole["area"])  # the masked pixel is left out
    assert edge["flags"] & F.EDGE
    assert edge["area"] == pytest.approx(CircularAperture((1, 30), 4).area_overlap(data))


def test_err_form_uses_squared_overlap_weights(tmp_path):
    rng = np.random.default_rng(3)
    shape = (80, 80)
    data = rng.normal(0.0, 1.0, shape) + 5.0
    err = rng.uniform(0.5, 2.0, shape)
    wcs = _tan_wcs((10, 10), 0.1, shape)
    hdr = wcs.to_header()
    hdr["BUNIT"] = "DN/s"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(data, hdr, name="SCI"),
            fits.ImageHDU(err, hdr, name="ERR"),
        ]
    ).writeto(tmp_path / "err.fits")
    reg = tmp_path / "r.reg"
    reg.write_text("image\ncircle(40.3,40.7,6.2) # text={a}\n")
    table = measure_image(open_image(tmp_path / "err.fits"), read_ds9(reg))
    ap = CircularAperture((39.3, 39.7), 6.2)
    m = ap.to_mask(method="exact")
    var_sum = np.sum(m.data**2 * m.cutout(err**2))
    ann = CircularAnnulus((39.3, 39.7), 12.4, 18.6)
    from astropy.stats import SigmaClip

    st = ApertureStats(data, ann, sigma_clip=SigmaClip(3.0, maxiters=10))
    # sky term: clipped std de-biased (x 1/0.985 at 3 sigma), a median's variance pi/2
    sigma = st.std / clipped_std_correction(3.0)
    n_eff = st.center_aper_area.value / (np.pi / 2)
    want = np.sqrt(var_sum + ap.area**2 * sigma**2 / n_eff)
    assert clipped_std_correction(3.0) == pytest.approx(0.985, abs=1e-3)
    assert table["flux_err"][0] == pytest.approx(want, rel=1e-9)
    direct = ApertureStats(data, ap, local_bkg=st.median, sum_method="exact").sum
    assert table["flux"][0] == pytest.approx(direct, rel=1e-10)
    assert table["sky"][0] == pytest.approx(st.median)


def test_ds9_background_annulus_is_the_sky_region(tmp_path):
    shape = (80, 80)
    yy, xx = np.mgrid[0:80, 0:80]
    data = np.where(np.hypot(xx - 40, yy - 40) > 20, 3.0, 1.0)  # sky 3 only beyond 20 px
    path = _write_hst(tmp_path / "ring_drc.fits", data, _tan_wcs((10, 10), 0.1, shape))
    reg = tmp_path / "r.reg"
    reg.write_text(
        "image\ncircle(41,41,4) # text={s}\nannulus(41,41,22,30) # background text={s}\n"
        "circle(41,41,4) # text={t}\n"
    )
    s, t = measure_image(open_image(path), read_ds9(reg), {"background": {"annulus": [2, 3]}})
    assert s["sky"] == pytest.approx(3.0) and t["sky"] == pytest.approx(1.0)


def test_pixel_area_rule_on_surface_brightness(demo_dir, tmp_path):
    path = sorted((demo_dir / "field").glob("*_cal.fits"))[0]
    image = open_image(path)
    assert image.area is not None and image.is_surface_brightness
    reg = tmp_path / "p.reg"
    reg.write_text("image\ncircle(201,201,6) # text={p}\n")
    table = measure_image(image, read_ds9(reg), {"background": {"method": "none"}})
    ap = CircularAperture((200.0, 200.0), 6.0)
    want = aperture_photometry(image.data * image.area, ap, mask=image.mask)["aperture_sum"][0]
    assert table["sum"][0] == pytest.approx(want, rel=1e-6)
    assert table.meta["flux_unit"] == "Jy"
    assert table["flux"][0] == pytest.approx(want * image.meta.pixar_sr * 1e6, rel=1e-6)


def test_empty_and_no_target_tables_have_all_columns(demo_dir):
    table = measure_image(_demo_image(demo_dir, "F606W"), [])
    assert len(table) == 0 and "flux_ujy" in table.colnames and "mag_ul5" in table.colnames


# ------------------------------------------------------------------------ catalogs


def _fake(ids, flux, err, zp=23.9, flags=None, system="AB", unit="electron/s", image="i"):
    to_ujy = 10 ** (-0.4 * (zp - 23.9))
    t = Table(
        {
            "id": ids,
            "ra": np.zeros(len(ids)),
            "dec": np.zeros(len(ids)),
            "flux": np.array(flux, float),
            "flux_err": np.array(err, float),
            "flux_ujy": np.array(flux, float) * to_ujy,
            "flux_ujy_err": np.array(err, float) * to_ujy,
            "flags": np.zeros(len(ids), int) if flags is None else np.array(flags),
        }
    )
    t.meta.update(mag_system=system, zeropoint=zp, flux_unit=unit, image=f"{image}.fits")
    return t


def _targets(ids):
    from regions import CircleSkyRegion

    from aperflow.regions import Target

    return [
        Target(i, "circle", CircleSkyRegion(SkyCoord(150, 2, unit="deg"), 1 * u.arcsec), "x")
        for i in ids
    ]


def test_combine_band_is_the_inverse_variance_mean_in_microjansky():
    targets = _targets(["a", "b", "c"])
    t1 = _fake(["a", "b"], [10.0, 5.0], [1.0, 1.0], zp=25.0, image="one")
    t2 = _fake(["a"], [40.0], [2.0], zp=26.0, image="two")  # same source, other zero point
    t3 = _fake(["b"], [7.0], [0.5], zp=25.0, flags=[F.EDGE], image="three")  # excluded
    cat = combine_band([t1, t2, t3], targets, "F606W")
    a, b, c = cat
    f1, f2 = 10 * 10 ** (-0.4 * 1.1), 40 * 10 ** (-0.4 * 2.1)
    e1, e2 = 1 * 10 ** (-0.4 * 1.1), 2 * 10 ** (-0.4 * 2.1)
    w1, w2 = 1 / e1**2, 1 / e2**2
    assert a["flux"] == pytest.approx((w1 * f1 + w2 * f2) / (w1 + w2))
    assert a["flux_err"] == pytest.approx((w1 + w2) ** -0.5)
    assert a["n_images"] == 2 and a["images"] == "one,two"
    assert a["mag"] == pytest.approx(-2.5 * np.log10(a["flux"]) + 23.9)
    assert a["mag_ul5"] == pytest.approx(-2.5 * np.log10(5 * a["flux_err"]) + 23.9)
    assert b["n_images"] == 1 and b["n_covering"] == 2 and b["flags"] == 0
    assert c["n_images"] == 0 and c["flags"] & F.OFF_IMAGE and np.isnan(c["mag"])
    assert cat.meta["flux_unit"] == "uJy" and cat["flux"].unit == u.uJy


def test_combine_band_refuses_mixed_instrumental_zeropoints():
    t1 = _fake(["a"], [1.0], [0.1], zp=0.0, system="instrumental", unit="adu")
    t2 = _fake(["a"], [1.0], [0.1], zp=1.0, system="instrumental", unit="adu")
    with pytest.raises(ValueError, match="forced.zeropoints for F160W"):
        combine_band([t1, t2], _targets(["a"]), "F160W")
    cat = combine_band([t1], _targets(["a"]), "F160W")
    assert cat.meta["mag_system"] == "instrumental" and cat["mag"][0] == pytest.approx(0.0)


def test_wide_catalog_orders_filters_by_wavelength():
    targets = _targets(["a", "b"])
    bands = {
        b: combine_band([_fake(["a", "b"], [1.0, 2.0], [0.1, 0.1])], targets, b)
        for b in ("F160W", "F814W", "F606W")
    }
    wide = wide_catalog(bands)
    assert wide.meta["filters"] == ["F606W", "F814W", "F160W"]
    assert wide.colnames[:4] == ["id", "kind", "ra", "dec"]
    assert "flux_F160W" in wide.colnames and "n_images_F814W" in wide.colnames
    assert list(wide["flux_F606W"]) == pytest.approx([1.0, 2.0])


# ------------------------------------------------------------------ filters, ZPs


def test_filters_from_header_name_and_bands():
    assert image_filter("F606W", "x_f814w_drc.fits", r"_(f\d{3}w)_") == "F606W"
    assert image_filter("", "egs_acs_f814w_cutout.fits", r"_(f\d{3}[wmn])_") == "F814W"
    assert image_filter("", "egs.fits", r"_(f\d{3}w)_") == "NONE"
    rows = [
        {"image": "a", "path": "a_f814w.fits", "instrument": "ACS", "filter": "F814W"},
        {"image": "b", "path": "b_f814w.fits", "instrument": "WFC3", "filter": "F814W"},
        {"image": "c", "path": "c_f606w.fits", "instrument": "ACS", "filter": ""},
    ]
    assert assign_bands(rows, r"_(f\d{3}w)") == {"a": "ACS_F814W", "b": "WFC3_F814W", "c": "F606W"}
    assert sorted(["F160W", "F814W", "F606W", "F1130W"], key=band_sort_key) == [
        "F606W", "F814W", "F160W", "F1130W",
    ]  # fmt: skip
    assert filter_wavelength_nm("F444W", "NIRCAM") == 4440.0
    assert filter_wavelength_nm("F438W", "WFC3") == 438.0
    assert filter_wavelength_nm("F606W", "ACS", photplam=5921.1) == pytest.approx(592.11)
    assert np.isnan(filter_wavelength_nm("NONE"))
    opts = {"zeropoints": {"f814w": 25.9}, "zeropoint": 24.0}
    assert image_zeropoint("ACS_F814W", opts) == 25.9
    assert image_zeropoint("F606W", opts) == 24.0
    assert image_zeropoint("F606W", {}) is None


def test_options_are_validated():
    assert forced_options({})["background"]["annulus"] == [2.0, 3.0]
    with pytest.raises(ValueError, match="forced.background.method"):
        forced_options({"background": {"method": "sky"}})
    with pytest.raises(ValueError, match="inner < outer"):
        forced_options({"background": {"annulus": [3, 2]}})


def test_placement_converts_each_position_on_a_distorted_wcs(tmp_path):
    """With SIP distortion the scale varies; each region is converted where it lies."""
    shape = (400, 400)
    wcs = _tan_wcs((150, 2), 0.05, shape)
    hdr = wcs.to_header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    hdr["A_ORDER"] = hdr["B_ORDER"] = 2
    hdr["A_2_0"], hdr["B_0_2"] = 2e-4, 2e-4
    path = tmp_path / "sip.fits"
    hdr["BUNIT"] = "ELECTRONS/S"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(np.zeros(shape, np.float32), hdr, name="SCI")]
    ).writeto(path)
    image = open_image(path)
    sky = image.wcs.pixel_to_world([20.0, 380.0], [200.0, 200.0])
    csv = tmp_path / "t.csv"
    csv.write_text(
        f"id,ra,dec\nl,{sky.ra.deg[0]},{sky.dec.deg[0]}\nr,{sky.ra.deg[1]},{sky.dec.deg[1]}\n"
    )
    placement = place_targets(read_coordinates(csv, 1.0), image)
    radii = [g.aperture.r for g in placement.groups]
    assert len(radii) == 2 and abs(radii[0] / radii[1] - 1) > 0.02  # not one shared scale


# ---------------------------------------------------------------- archive (no network)


class _FakeMast:
    """Stands in for astroquery.mast.Observations: records calls, 'downloads' files."""

    def __init__(self):
        self.calls = []

    def query_criteria(self, **criteria):
        self.calls.append(("query", criteria))
        return Table({"obsid": ["1", "2"]})

    def get_product_list(self, obs):
        return Table(
            {
                "obs_id": ["j1", "j1", "j2"],
                "productFilename": ["j1_drc.fits", "j1_flc.fits", "j2_drc.fits"],
                "productSubGroupDescription": ["DRC", "FLC", "DRC"],
                "size": [5, 7, 5],
            }
        )

    def filter_products(self, products, **wanted):
        self.calls.append(("filter", wanted))
        keep = np.isin(
            products["productSubGroupDescription"], wanted["productSubGroupDescription"]
        )
        return products[keep]

    def download_products(self, products, download_dir, flat, cache):
        self.calls.append(("download", list(products["productFilename"])))
        from pathlib import Path

        for name in products["productFilename"]:
            (Path(download_dir) / name).write_bytes(b"12345")
        return Table(
            {
                "Local Path": [f"{download_dir}/{n}" for n in products["productFilename"]],
                "Status": ["COMPLETE"] * len(products),
            }
        )


def test_archive_queries_the_region_footprint_and_reuses_files(tmp_path):
    from aperflow.archive import fetch_images, target_footprint
    from aperflow.forced import DEFAULTS

    csv = tmp_path / "t.csv"
    csv.write_text("id,ra,dec,radius\na,150.0,2.0,1\nb,150.01,2.0,2\n")
    targets = read_coordinates(csv)
    centre, radius = target_footprint(targets, padding_arcsec=10.0)
    assert centre.ra.deg == pytest.approx(150.005, abs=1e-6)
    half_sep = 18.0 * np.cos(np.deg2rad(2.0))  # 0.005 deg of RA at dec 2
    assert radius.to_value(u.arcsec) == pytest.approx(half_sep + 2.0 + 10.0, abs=1e-3)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "j1_drc.fits").write_bytes(b"12345")  # already there, right size
    fake = _FakeMast()
    table = fetch_images(targets, tmp_path / "dl", DEFAULTS["archive"], observations=fake)
    assert list(table["filename"]) == ["j1_drc.fits", "j2_drc.fits"]
    assert list(table["status"]) == ["reused", "downloaded"]
    query = fake.calls[0][1]
    assert query["instrument_name"] == ["ACS/WFC"] and query["provenance_name"] == ["HAP-SVM"]
    assert query["dataproduct_type"] == "image" and query["calib_level"] == [3]
    assert ("download", ["j2_drc.fits"]) in fake.calls


def test_archive_without_astroquery_says_how_to_install(tmp_path):
    try:
        import astroquery  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("astroquery is installed: the missing-package message cannot show")
    from aperflow.archive import ArchiveError, fetch_images

    csv = tmp_path / "t.csv"
    csv.write_text("id,ra,dec\na,150.0,2.0\n")
    with pytest.raises(ArchiveError, match=r"pip install 'aperflow\[archive\]'"):
        fetch_images(read_coordinates(csv), tmp_path / "dl", {})


def test_failed_image_table_is_skipped_by_the_catalog(demo_dir, demo_targets):
    from aperflow.forced import failed_table

    bad = failed_table("broken_drc.fits", "broken_drc.fits: not a readable FITS file", "F606W")
    assert len(bad) == 0 and bad.meta["problems"] == ["broken_drc.fits: not a readable FITS file"]
    good = measure_image(_demo_image(demo_dir, "F606W"), demo_targets)
    cat = combine_band([bad, good], demo_targets, "F606W")
    assert (cat["n_images"] == 1).all() and cat.meta["mag_system"] == "AB"
