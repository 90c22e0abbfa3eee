"""The forced mode as a user runs it: the shared demo run, and a small run with bad input
(a region outside every image, a malformed region line, an image without WCS, a corrupt
file) where everything else must still complete."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from conftest import REPO, run_snakemake

from aperflow import flags as F
from aperflow.psf import MoffatPSF

BANDS = {"F606W": 2.0, "F814W": 2.5}  # the simulator's Moffat FWHM [pix] per filter


def _demo_outputs(demo_run):
    out = demo_run / "results" / "demo_forced"
    catalog = out / "forced" / "demo_forced.ecsv"
    if not catalog.exists():
        stderr = (demo_run / "snakemake.stderr").read_text()
        pytest.fail(f"the demo run wrote no forced catalog:\n{stderr[-4000:]}")
    return out


def test_demo_run_writes_every_forced_output(demo_run):
    out = _demo_outputs(demo_run)
    for band in BANDS:
        image = f"hst_demo_acs_wfc_{band.lower()}_drc"
        assert (out / "forced" / f"{image}.ecsv").exists()
        assert (out / "forced" / "filters" / f"{band}.ecsv").exists()
        assert (out / "forced" / "filters" / f"{band}.parquet").exists()
        assert (out / "plots" / "forced" / f"{image}.png").stat().st_size > 10_000
    assert (out / "plots" / "forced_fluxes.png").stat().st_size > 10_000
    wide = Table.read(out / "forced" / "demo_forced.ecsv")
    parquet = Table.read(out / "forced" / "demo_forced.parquet")
    assert list(parquet["id"]) == list(wide["id"])
    assert np.allclose(parquet["flux_F814W"], wide["flux_F814W"], equal_nan=True)
    assert wide.meta["filters"] == ["F606W", "F814W"]  # wavelength order
    assert len(wide) == 26  # 12 region-file stars, the galaxy, 13 coordinate-list stars
    assert (wide["n_images_F606W"] == 1).all() and (wide["n_images_F814W"] == 1).all()
    assert (wide["flags_F606W"] == 0).all()
    assert str(wide["flux_F606W"].unit) == "uJy"


def test_demo_run_fluxes_match_truth(demo_run):
    """Catalog fluxes (uJy) against the simulator's truth: the galaxy ellipse within 2 %,
    the stars' aperture fluxes against truth x EE(r) within their errors."""
    out = _demo_outputs(demo_run)
    wide = Table.read(out / "forced" / "demo_forced.ecsv")
    pulls = []
    for band, fwhm in BANDS.items():
        truth = Table.read(
            demo_run
            / "resources"
            / "demo"
            / "forced"
            / f"hst_demo_acs_wfc_{band.lower()}_drc_truth.ecsv"
        )
        per_image = Table.read(out / "forced" / f"hst_demo_acs_wfc_{band.lower()}_drc.ecsv")
        zp = truth.meta["zeropoint_ab"]
        to_ujy = 10 ** (-0.4 * (zp - 23.9))
        k = [list(truth["id"]).index(i) for i in wide["id"]]
        flux, err = np.asarray(wide[f"flux_{band}"]), np.asarray(wide[f"flux_err_{band}"])
        g = list(wide["id"]).index("galaxy")
        assert flux[g] == pytest.approx(truth["flux"][k[g]] * to_ujy, rel=0.02)
        assert wide[f"mag_{band}"][g] == pytest.approx(truth["mag_ab"][k[g]], abs=0.022)
        psf = MoffatPSF(fwhm, beta=2.5, radius=20.0)
        for row, j in enumerate(k):
            if wide["kind"][row] != "circle":
                continue
            r = per_image["a_px"][list(per_image["id"]).index(wide["id"][row])]
            ee = psf.encircled_energy(r, truth["x"][j], truth["y"][j])[0]
            pulls.append((flux[row] - truth["flux"][j] * ee * to_ujy) / err[row])
    pulls = np.array(pulls)
    # the default 2-3x annulus holds ~0.7 % of a star's light (PSF wings): a small bias,
    # a fraction of sigma except for the brightest stars
    assert len(pulls) == 50 and np.abs(pulls).max() < 5.0
    assert 0.6 < pulls.std() < 1.5


def test_demo_run_logs_say_what_was_measured(demo_run):
    _demo_outputs(demo_run)
    log = (
        demo_run / "logs" / "demo_forced" / "forced" / "hst_demo_acs_wfc_f606w_drc.log"
    ).read_text()
    assert "filter F606W, 26 of 26 regions measured, AB magnitudes" in log
    assert (
        demo_run / "logs" / "benchmarks" / "demo_forced" / "forced_catalog" / "demo_forced.tsv"
    ).exists()


@pytest.fixture(scope="module")
def bad_input_run(demo_dir, tmp_path_factory):
    """A forced data set of the demo images plus an image without WCS and a corrupt file,
    with a region outside every image and a malformed region line."""
    work = tmp_path_factory.mktemp("forced_bad")
    data = work / "data"
    data.mkdir()
    forced = demo_dir / "forced"
    for band in BANDS:
        name = f"hst_demo_acs_wfc_{band.lower()}_drc.fits"
        (data / name).write_bytes((forced / name).read_bytes())
    wcs_key = re.compile(r"^(CTYPE|CRVAL|CRPIX|CDELT|CUNIT|WCSAXES|PC\d_\d|CD\d_\d)")
    with fits.open(forced / "hst_demo_acs_wfc_f606w_drc.fits") as hdul:
        for hdu in hdul:
            for key in [k for k in hdu.header if wcs_key.match(k)]:
                del hdu.header[key]
        hdul.writeto(data / "nowcs_f606w_drc.fits")
    (data / "corrupt_f814w_drc.fits").write_bytes(b"SIMPLE  = T" + b"\0" * 100)
    lines = (forced / "regions.reg").read_text().splitlines()
    lines.insert(3, 'circle(150.3,2.4,0.25") # text={faraway}')
    lines.insert(4, 'circle(150.1,two,0.25") # text={broken}')
    lines.insert(5, 'box(150.1,2.2,1",1",0) # text={square}')
    (data / "regions.reg").write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"]["activate"] = False
    config["datasets"] = {
        "bad": {
            "files": str(data / "*_drc.fits"),
            "mode": "forced",
            "regions": str(data / "regions.reg"),
            "coordinates": str(forced / "targets.csv"),
        }
    }
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(work, "--cores", "2", check=False)
    return work, proc


def test_bad_input_clear_messages_and_the_rest_completes(bad_input_run):
    work, proc = bad_input_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = work / "results" / "bad" / "forced"
    # the corrupt file is left out by the inventory, with the reason
    inventory = Table.read(work / "results" / "inventory.ecsv")
    row = inventory[inventory["image"] == "corrupt_f814w_drc"][0]
    assert "corrupt_f814w_drc.fits" in row["error"]
    assert not (out / "corrupt_f814w_drc.ecsv").exists()
    # the image without WCS: an empty table and a message naming the file
    nowcs = Table.read(out / "nowcs_f606w_drc.ecsv")
    assert len(nowcs) == 0
    assert "nowcs_f606w_drc.fits: no celestial WCS" in nowcs.meta["problems"][0]
    log = (work / "logs" / "bad" / "forced" / "nowcs_f606w_drc.log").read_text()
    assert "no celestial WCS" in log
    # the malformed and refused lines are named, with their line numbers
    log = (work / "logs" / "bad" / "forced" / "hst_demo_acs_wfc_f606w_drc.log").read_text()
    assert "regions.reg:5: malformed region" in log
    assert "regions.reg:6: shape 'box' is not supported" in log
    assert "not on this image: faraway" in log
    # every other region is measured on both good images and in the catalogs
    wide = Table.read(out / "bad.ecsv")
    assert len(wide) == 27 and "broken" not in wide["id"] and "square" not in wide["id"]
    far = wide[wide["id"] == "faraway"][0]
    assert far["n_images_F606W"] == 0 and far["flags_F606W"] & F.OFF_IMAGE
    assert np.isnan(far["flux_F814W"])
    others = wide[wide["id"] != "faraway"]
    assert (others["n_images_F606W"] == 1).all() and (others["n_images_F814W"] == 1).all()
    assert np.isfinite(others["flux_F606W"]).all()
    f606 = Table.read(out / "filters" / "F606W.ecsv")
    assert (f606["n_covering"][f606["id"] != "faraway"] == 1).all()
    catalog_log = (work / "logs" / "bad" / "forced_catalog" / "bad.log").read_text()
    assert "regions outside every image: faraway" in catalog_log
    assert (work / "results" / "bad" / "plots" / "forced" / "nowcs_f606w_drc.png").exists()
