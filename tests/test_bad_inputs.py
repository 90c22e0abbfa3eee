"""Bad inputs of issue 8 that the other tests do not cover, fed to the real workflow.

* Config (``snakemake -n`` and the same checks in-process): empty or non-positive radius
  lists in every mode, and sky annuli inside the apertures or with inner >= outer.
* One small workflow run (:func:`bad_run`) with three data sets that covers the rest:
  a field image with a NaN block, a DQ-flagged block and two stars whose sky annuli are
  blanked, beside a clean dither, a dither without BUNIT and one with ``BUNIT = 'FOO'``;
  standard-star dithers with the star at the image edge, just off it, and a target off
  the footprint; a forced data set whose coordinate list has no ``dec`` column.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from conftest import REPO, run_snakemake, snakemake_command
from photutils.aperture import CircularAperture
from snakemake.utils import validate

from aperflow import flags as F
from aperflow.datasets import ConfigError, resolve_datasets

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


# ------------------------------------------------------------------ config: radii, annuli

#: (description, change of the default config, text the error must contain). Schema
#: errors name the key through jsonschema's path; the rest are aperflow.validation's.
BAD_CONFIGS = [
    (
        "field radii zero",
        lambda c: c["field"]["photometry"].update(radii=[0.0, 2.0]),
        "['field']['photometry']['radii'][0]",
    ),
    (
        "field radii_arcsec negative (data-set block)",
        lambda c: c["datasets"]["demo_field"]["field"]["photometry"].update(radii_arcsec=[-0.1]),
        "['photometry']['radii_arcsec'][0]",
    ),
    (
        "field radii_fwhm zero",
        lambda c: c["field"]["photometry"].update(radii_fwhm=[0]),
        "['field']['photometry']['radii_fwhm'][0]",
    ),
    (
        "field: every radius list empty",
        lambda c: c["datasets"]["demo_field"]["field"]["photometry"].update(
            radii=[], radii_fwhm=[]
        ),
        "datasets.demo_field.field.photometry.radii, field.photometry.radii_arcsec and "
        "datasets.demo_field.field.photometry.radii_fwhm are all empty",
    ),
    ("standard radii empty", lambda c: c["standard"].update(radii=[]), "['standard']['radii']"),
    (
        "standard radii negative",
        lambda c: c["standard"].update(radii=[-1, 2]),
        "['standard']['radii'][0]",
    ),
    (
        "standard SB radii empty",
        lambda c: c["standard"]["sb"].update(radii=[]),
        "['standard']['sb']['radii']",
    ),
    (
        "timeseries radii empty",
        lambda c: c["timeseries"].update(radii=[]),
        "['timeseries']['radii']",
    ),
    (
        "timeseries radii zero",
        lambda c: c["timeseries"].update(radii=[0, 3]),
        "['timeseries']['radii'][0]",
    ),
    (
        "forced default radius zero",
        lambda c: c["forced"].update(default_radius_arcsec=0),
        "['forced']['default_radius_arcsec']",
    ),
    (
        "field annulus inside the apertures",
        lambda c: c["field"]["photometry"].update(annulus=[4.0, 8.0]),
        "field.photometry.annulus [4, 8] px starts inside the largest aperture radius 5 px of "
        "datasets.demo_field.field.photometry.radii",
    ),
    (
        "field annulus inner = largest radius",
        lambda c: c["datasets"]["demo_field"]["field"]["photometry"].update(annulus=[5, 9]),
        "datasets.demo_field.field.photometry.annulus [5, 9] px starts inside",
    ),
    (
        "field annulus inner >= outer",
        lambda c: c["field"]["photometry"].update(annulus=[12.0, 10.0]),
        "field.photometry.annulus [12, 10] px: the inner radius must be smaller than the outer",
    ),
    (
        "field annulus_fwhm inside radii_fwhm",
        lambda c: c["datasets"]["demo_field"]["field"]["photometry"].update(
            annulus_fwhm=[1.5, 5.0]
        ),
        "annulus_fwhm [1.5, 5] FWHM starts inside the largest aperture radius 2 FWHM",
    ),
    (
        "field default annulus inside a large radius",
        lambda c: c["datasets"]["demo_field"]["field"]["photometry"].update(
            radii=[3, 12], apcorr=None
        ),
        "field.photometry.annulus is null, so the default [10, 15] px starts inside the "
        "largest aperture radius 12 px",
    ),
    (
        "timeseries annulus inside the apertures",
        lambda c: c["timeseries"]["background"].update(annulus=[6, 20]),
        "timeseries.background.annulus [6, 20] px starts inside the largest aperture radius 8 px",
    ),
    (
        "timeseries annulus inner >= outer",
        lambda c: c["timeseries"]["background"].update(annulus=[20, 12]),
        "timeseries.background.annulus must be [inner, outer] with inner < outer",
    ),
    (
        "forced annulus inside the region",
        lambda c: c["forced"]["background"].update(annulus=[0.8, 3.0]),
        "forced.background.annulus [0.8, 3] (annulus_unit: scale",
    ),
    (
        "forced annulus inner >= outer",
        lambda c: c["forced"]["background"].update(annulus=[3.0, 2.0]),
        "forced.background.annulus [3.0, 2.0]: need 0 < inner < outer",
    ),
]


def _check_in_process(config: dict) -> str:
    """What the workflow does before any job: schema validation, then the data sets."""
    from aperflow.simulate import demo_outputs

    try:
        validate(copy.deepcopy(config), str(SCHEMA), set_default=False)
        resolve_datasets(config, expected=[str(p) for p in demo_outputs("resources/demo")])
    except ConfigError as exc:
        return str(exc)
    except Exception as exc:  # snakemake's WorkflowError carries the jsonschema message
        return f"{exc} {getattr(exc, '__cause__', '')}"
    return ""


@pytest.mark.parametrize("what, change, message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_radii_and_annuli_are_refused_naming_the_key(what, change, message):
    assert _check_in_process(_config()) == "", "the default config must pass"
    config = _config()
    change(config)
    error = _check_in_process(config)
    assert message in error, f"{what}: {error}"


def test_snakemake_n_refuses_them_before_anything_runs(tmp_path):
    """The same refusals from the real command line, one per mode and kind (run side by
    side), with the key in the message and no job started."""
    cases = {
        "field_schema": (BAD_CONFIGS[1][1], "radii_arcsec"),
        "standard_empty": (BAD_CONFIGS[4][1], "should be non-empty"),
        "field_annulus": (BAD_CONFIGS[10][1], BAD_CONFIGS[10][2]),
        "timeseries_annulus": (BAD_CONFIGS[15][1], BAD_CONFIGS[15][2]),
        "forced_annulus": (BAD_CONFIGS[17][1], BAD_CONFIGS[17][2]),
    }
    procs = {}
    for name, (change, _) in cases.items():
        work = tmp_path / name
        (work / "config").mkdir(parents=True)
        config = _config()
        change(config)
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = snakemake_command(work, work / "config" / "config.yaml", "-n")
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name, proc in procs.items():
        out = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode != 0, f"{name} was accepted:\n{out[-2000:]}"
        assert cases[name][1] in out, f"{name}:\n{out[-2000:]}"
        assert "Building DAG" not in out and not (tmp_path / name / "results").exists()


def test_annulus_inside_radii_of_another_unit_fails_that_image(demo_dir):
    """Radii in arcsec and an annulus in pixels are compared only per image (pixel scale):
    the config passes, the image's photometry is refused with a message naming it."""
    from aperflow.images import open_image
    from aperflow.photometry import measure_image

    config = _config()
    phot = config["datasets"]["demo_field"]["field"]["photometry"]
    phot.update(radii=[2.0], radii_fwhm=[], radii_arcsec=[0.2], annulus=[5.0, 10.0])
    assert _check_in_process(config) == ""
    path = demo_dir / "field" / f"{FIELD_D1}.fits"
    sources = Table({"x": [100.0], "y": [100.0]})
    with pytest.raises(ValueError) as err:
        measure_image(open_image(path), sources, radii=[2.0], radii_arcsec=[0.2], annulus=[5, 10])
    assert f"{path}: sky annulus 5-10 px (config (px)) starts inside the largest aperture " in str(
        err.value
    )
    assert "radius 6.43 px (0.2 arcsec)" in str(err.value)
    measure_image(open_image(path), sources, radii=[2.0], radii_arcsec=[0.1], annulus=[5, 10])


# -------------------------------------------------------------- one small workflow run

FIELD_D1, FIELD_D2, FIELD_D3 = (f"jw01234001001_01101_0000{k}_nrcb1_cal" for k in (1, 2, 3))
FIELD_LONG = "jw01234001001_02101_00001_nrcblong_cal"
MASKED, NOBUNIT, FOOBUNIT = "masked_nrcb1_cal", "nobunit_nrcb1_cal", "foobunit_nrcblong_cal"
STD_D1, STD_D2 = "jw0109001002_01101_00001_nis_rate", "jw0109001002_02101_00001_nis_rate"
STD_EDGE, STD_OFFEDGE, STD_OFFSKY = "edge_nis_rate", "offedge_nis_rate", "offsky_nis_rate"
FORCED_IMAGE = "hst_demo_acs_wfc_f606w_drc"
#: Blocks made bad in the masked field image, [y0:y1, x0:x1]: NaN in SCI, and DO_NOT_USE
#: in DQ (the image model makes those NaN too). They cover stars and their annuli.
NAN_BLOCK = (slice(150, 180), slice(150, 200))
DQ_BLOCK = (slice(120, 160), slice(104, 130))
#: Stars (truth ids) whose sky annulus (10-15 px) is blanked by a ring 7 < r < 17 px, the
#: second with a 2x2 patch of sky left: NO_SKY and SKY_FEW_PIXELS, apertures (<= 5 px) clean.
NO_SKY_STAR, FEW_SKY_STAR = 261, 432


def _ring(shape, x, y, keep_patch: bool) -> np.ndarray:
    yy, xx = np.indices(shape)
    r = np.hypot(xx - x, yy - y)
    ring = (r > 7) & (r < 17)
    if keep_patch:  # four pixels about 12.5 px east of the star, inside the annulus
        ix, iy = int(round(x)) + 12, int(round(y))
        ring[iy : iy + 2, ix : ix + 2] = False
    return ring


def _masked_field_image(src: Path, dst: Path, truth: Table) -> np.ndarray:
    """Copy ``src`` with the NaN block, the DQ block and the two sky rings; returns the
    boolean map of the pixels made bad."""
    with fits.open(src) as hdul:
        sci, dq = hdul["SCI"].data, hdul["DQ"].data
        bad = np.zeros(sci.shape, bool)
        bad[NAN_BLOCK] = True
        for star, patch in ((NO_SKY_STAR, False), (FEW_SKY_STAR, True)):
            row = truth[truth["id"] == star][0]
            bad |= _ring(sci.shape, row["x"], row["y"], patch)
        sci[bad] = np.nan
        dq[DQ_BLOCK] |= 1  # DO_NOT_USE
        bad[DQ_BLOCK] = True
        hdul.writeto(dst)
    return bad


def _with_bunit(src: Path, dst: Path, bunit: str | None) -> None:
    with fits.open(src) as hdul:
        for hdu in hdul:
            hdu.header.remove("BUNIT", ignore_missing=True, remove_all=True)
        if bunit is not None:
            hdul["SCI"].header["BUNIT"] = bunit
        hdul.writeto(dst)


def _moved_standard(src: Path, dst: Path, shift_x: int = 0, dec_offset: float = 0.0) -> None:
    """Copy a standard-star dither with the scene rolled by ``shift_x`` pixels (the WCS
    follows, so the target still points at the star), or the WCS moved in Dec."""
    with fits.open(src) as hdul:
        for name in ("SCI", "ERR", "DQ"):
            hdul[name].data = np.roll(hdul[name].data, shift_x, axis=1)
        hdul["SCI"].header["CRPIX1"] += shift_x
        hdul["SCI"].header["CRVAL2"] += dec_offset
        hdul.writeto(dst)


@pytest.fixture(scope="module")
def bad_run(demo_dir, tmp_path_factory):
    """The workflow on three small data sets of bad inputs (module docstring), run once
    with ``--keep-going``; only the tables the tests read are asked for (no plots)."""
    from aperflow.images import open_image

    work = tmp_path_factory.mktemp("bad_inputs")
    data = work / "data"
    (data / "field").mkdir(parents=True)
    (data / "standard").mkdir()
    (data / "forced").mkdir()
    field = demo_dir / "field"
    truth = Table.read(field / f"{FIELD_D1}_truth.ecsv")
    bad = _masked_field_image(field / f"{FIELD_D1}.fits", data / "field" / f"{MASKED}.fits", truth)
    _with_bunit(field / f"{FIELD_D2}.fits", data / "field" / f"{NOBUNIT}.fits", None)
    _with_bunit(field / f"{FIELD_LONG}.fits", data / "field" / f"{FOOBUNIT}.fits", "FOO")
    shutil.copy(field / f"{FIELD_D3}.fits", data / "field" / f"{FIELD_D3}.fits")
    shutil.copy(field / "apcorr.ecsv", data / "field" / "apcorr.ecsv")
    std = demo_dir / "standard"
    for name in (STD_D1, STD_D2):
        shutil.copy(std / f"{name}.fits", data / "standard" / f"{name}.fits")
    _moved_standard(std / f"{STD_D1}.fits", data / "standard" / f"{STD_EDGE}.fits", -26)
    _moved_standard(std / f"{STD_D1}.fits", data / "standard" / f"{STD_OFFEDGE}.fits", -30)
    _moved_standard(std / f"{STD_D1}.fits", data / "standard" / f"{STD_OFFSKY}.fits", 0, 0.01)
    forced = demo_dir / "forced"
    shutil.copy(forced / f"{FORCED_IMAGE}.fits", data / "forced" / f"{FORCED_IMAGE}.fits")
    shutil.copy(forced / "regions.reg", data / "forced" / "regions.reg")
    coords = Table.read(forced / "targets.csv", format="ascii.csv")
    coords.rename_column("dec", "declination")
    coords.write(data / "forced" / "nodec.csv", format="ascii.csv")

    config = _config()
    config["demo"]["activate"] = False
    demo = config["datasets"]
    config["datasets"] = {
        "field": {
            "files": "data/field/*_cal.fits",
            "mode": "field",
            "field": {
                "photometry": {
                    **demo["demo_field"]["field"]["photometry"],
                    "apcorr": "data/field/apcorr.ecsv",
                }
            },
        },
        "std": {
            "files": "data/standard/*_rate.fits",
            "mode": "standard",
            "target": demo["demo_standard"]["target"],
        },
        "forced": {
            "files": "data/forced/*_drc.fits",
            "mode": "forced",
            "regions": "data/forced/regions.reg",
            "coordinates": "data/forced/nodec.csv",
            "forced": demo["demo_forced"]["forced"],
        },
    }
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    groups = {
        name: open_image(data / "field" / f"{name}.fits").meta.group for name in (MASKED, FOOBUNIT)
    }
    std_group = open_image(data / "standard" / f"{STD_D1}.fits").meta.group
    targets = [
        *(f"results/field/photometry/{n}.ecsv" for n in (MASKED, NOBUNIT, FOOBUNIT, FIELD_D3)),
        *(f"results/field/catalogs/{g}.ecsv" for g in groups.values()),
        f"results/std/ee_mean/{std_group}.ecsv",
        "results/forced/forced/forced.ecsv",
    ]
    proc = run_snakemake(work, "--cores", "2", "--keep-going", *targets, check=False)
    return {
        "work": work,
        "proc": proc,
        "bad": bad,
        "truth": truth,
        "groups": groups,
        "std_group": std_group,
        "config": config,
    }


def _table(run, relative: str) -> Table:
    path = run["work"] / "results" / relative
    if not path.exists():
        proc = run["proc"]
        pytest.fail(f"{relative} was not made:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return Table.read(path)


def _problems(run) -> list[str]:
    """``dataset stage item LEVEL message`` lines of results/problems.ecsv."""
    table = _table(run, "problems.ecsv")
    return [f"{r['dataset']} {r['stage']} {r['item']} {r['level']} {r['message']}" for r in table]


def _log(run, dataset: str, rule: str, item: str) -> str:
    return (run["work"] / "logs" / dataset / rule / f"{item}.log").read_text()


def test_every_job_finishes_and_problems_are_summarised(bad_run):
    proc = bad_run["proc"]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    problems = _problems(bad_run)
    assert problems, "results/problems.ecsv is empty"


# ------------------------------------------------- field: edges, masked areas, NaN sky


def _overlap(x, y, radius: float, bad: np.ndarray) -> np.ndarray:
    """Exact overlap of circles with the bad-pixel map (photutils, not aperflow's code)."""
    masks = CircularAperture(np.c_[x, y], r=radius).to_mask(method="exact")
    weighted = [m.multiply(bad.astype(float)) for m in masks]
    return np.array([0.0 if w is None else float(w.sum()) for w in weighted])


@pytest.fixture(scope="module")
def field_tables(bad_run, demo_dir):
    """The masked image's photometry from the run, and the clean image measured in-process
    with the same options at the same sources (same neighbours, same annuli)."""
    from aperflow.datasets import mode_options
    from aperflow.images import open_image
    from aperflow.photometry import measure_from_options

    sources = _table(bad_run, f"field/sources/{MASKED}.ecsv")
    masked = _table(bad_run, f"field/photometry/{MASKED}.ecsv")
    options = mode_options(bad_run["config"], "field")
    clean = measure_from_options(
        open_image(demo_dir / "field" / f"{FIELD_D1}.fits"),
        sources,
        options,
        str(demo_dir / "field" / "apcorr.ecsv"),
    )
    assert len(masked) == len(clean) > 40
    return masked, clean


def _nearest(table: Table, x: float, y: float) -> int:
    d = np.hypot(np.asarray(table["x"]) - x, np.asarray(table["y"]) - y)
    assert d.min() < 1.0, f"no source within 1 px of ({x:.1f}, {y:.1f})"
    return int(np.argmin(d))


def test_masked_apertures_are_flagged_exactly_where_bad_pixels_fall(bad_run, field_tables):
    masked, clean = field_tables
    bad = bad_run["bad"]
    x, y = np.asarray(masked["x"]), np.asarray(masked["y"])
    n_partly = 0
    for label, radius in zip(masked.meta["radii_labels"], masked.meta["radii_px"], strict=True):
        flags, before = np.asarray(masked[f"flags_{label}"]), np.asarray(clean[f"flags_{label}"])
        touched = _overlap(x, y, radius, bad)
        clear = touched == 0
        assert np.all(flags[touched > 1e-6] & F.MASKED), label
        assert np.array_equal(flags[clear] & F.MASKED, before[clear] & F.MASKED), label
        n_partly += int(np.sum(touched > 1e-6))
    assert n_partly >= 6  # the DQ block cuts one star at every radius, the NaN block one at 5 px
    # the star just above the NaN block is masked at r = 5 px only
    i = _nearest(masked, 165.4, 183.9)
    assert [bool(masked[f"flags_{lb}"][i] & F.MASKED) for lb in ("r2", "r3", "r3.5", "r5")] == [
        False, False, False, True,
    ]  # fmt: skip


def test_edge_flags_follow_the_image_border(field_tables):
    masked, _ = field_tables
    x, y = np.asarray(masked["x"]), np.asarray(masked["y"])
    ny = nx = 400
    for label, radius in zip(masked.meta["radii_labels"], masked.meta["radii_px"], strict=True):
        off = (x - radius < -0.5) | (y - radius < -0.5)
        off |= (x + radius > nx - 0.5) | (y + radius > ny - 0.5)
        edge = (np.asarray(masked[f"flags_{label}"]) & F.EDGE) != 0
        assert np.array_equal(edge, off), label
    i = _nearest(masked, 220.9, 395.9)  # a bright star 3.6 px from the top edge
    assert masked["flags_r5"][i] & F.EDGE and not masked["flags_r3.5"][i] & F.EDGE
    assert np.isfinite(masked["flux_r5"][i]) and masked["area_r5"][i] < np.pi * 25 - 1


def test_blanked_sky_annuli_give_no_sky_and_few_sky_pixels(bad_run, field_tables):
    masked, clean = field_tables
    truth = bad_run["truth"]
    rows = {sid: truth[truth["id"] == sid][0] for sid in (NO_SKY_STAR, FEW_SKY_STAR)}
    none = _nearest(masked, rows[NO_SKY_STAR]["x"], rows[NO_SKY_STAR]["y"])
    few = _nearest(masked, rows[FEW_SKY_STAR]["x"], rows[FEW_SKY_STAR]["y"])
    for label in masked.meta["radii_labels"]:
        new = np.asarray(masked[f"flags_{label}"]) & ~np.asarray(clean[f"flags_{label}"])
        assert set(np.flatnonzero(new & F.NO_SKY)) == {none}, label
        assert set(np.flatnonzero(new & F.SKY_FEW_PIXELS)) == {none, few}, label
        # their apertures are clean: no MASKED from the rings
        assert not masked[f"flags_{label}"][none] & F.MASKED
    assert masked["n_sky"][none] == 0 and 0 < masked["n_sky"][few] <= 4
    # no sky: the flux is the raw sum (not sky-subtracted), and it is said so by NO_SKY
    assert masked["flux_r3"][none] >= clean["flux_r3"][none]


def test_sources_away_from_the_bad_pixels_are_unchanged(bad_run, field_tables):
    masked, clean = field_tables
    bad = bad_run["bad"]
    x, y = np.asarray(masked["x"]), np.asarray(masked["y"])
    reach = masked.meta["annulus_px"][1] + 1.0  # annulus and a pixel of margin
    away = _overlap(x, y, reach, bad) == 0
    assert away.sum() >= 0.75 * len(masked)
    for name in masked.colnames:
        if name.startswith(("flux", "sky", "area", "flags", "n_sky", "mag")):
            a, b = np.asarray(masked[name])[away], np.asarray(clean[name])[away]
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True, err_msg=name)
    # and the affected ones did change (the test would notice a no-op)
    assert not np.allclose(masked["flux_r3"][~away], clean["flux_r3"][~away], rtol=1e-6, atol=0)


def test_catalog_means_leave_the_flagged_measurements_out(bad_run, field_tables):
    masked, _ = field_tables
    cat = _table(bad_run, f"field/catalogs/{bad_run['groups'][MASKED]}.ecsv")
    assert cat.meta["images"] == [FIELD_D3, MASKED]  # the BUNIT-less dither is left out
    truth = bad_run["truth"]
    row = truth[truth["id"] == NO_SKY_STAR][0]
    i = _nearest(masked, row["x"], row["y"])
    d = np.hypot(
        (np.asarray(cat["ra"]) - masked["ra"][i]) * np.cos(np.deg2rad(masked["dec"][i])),
        np.asarray(cat["dec"]) - masked["dec"][i],
    )
    star = cat[int(np.argmin(d))]
    assert d.min() * 3600 < 0.1 and star["n_images"] == 2
    assert star["n_r3"] == 1 and np.isfinite(star["flux_r3"])  # the clean dither alone
    assert np.median(cat["n_r3"][cat["n_images"] == 2]) == 2  # the others use both


# ------------------------------------------------------------------- BUNIT missing/unknown


def test_missing_or_unknown_bunit_runs_uncalibrated_and_says_so(bad_run, demo_dir):
    from aperflow.images import open_image

    for name, why in (
        (NOBUNIT, "BUNIT is missing"),
        (FOOBUNIT, "BUNIT 'FOO' is not a known unit"),
    ):
        table = _table(bad_run, f"field/photometry/{name}.ecsv")
        assert len(table) > 40
        assert table.meta["magnitude_system"] == "instrumental"
        assert table.meta["zeropoint"] == 0.0
        assert why in table.meta["calibration"] and "uncalibrated" in table.meta["calibration"]
        assert table["flux_r3"].unit is None  # no physical unit is claimed
        good = np.asarray(table["flux_r3"]) > 0
        assert good.sum() > 30
        mags = np.asarray(table["mag_r3"])[good]
        np.testing.assert_allclose(mags, -2.5 * np.log10(np.asarray(table["flux_r3"])[good]))
        log = _log(bad_run, "field", "photometry", name)
        assert f"WARNING aperflow.calibration: data/field/{name}.fits: {why}" in log
        assert any(
            f"field photometry {name} WARNING" in p and why in p for p in _problems(bad_run)
        )
    # native units: sums of MJy/sr pixel values, i.e. the calibrated Jy over PIXAR_SR * 1e6
    # (no pixel-area map either, so equal to within the area map's few per cent)
    native = _table(bad_run, f"field/photometry/{NOBUNIT}.ecsv")
    assert native.meta["flux_unit"] == "unknown" and not native.meta["pixel_area_applied"]
    pixar = open_image(demo_dir / "field" / f"{FIELD_D2}.fits").meta.pixar_sr
    calibrated = _table_clean_d2(demo_dir, native)
    ratio = np.asarray(native["flux_r3"]) * pixar * 1e6 / np.asarray(calibrated["flux_r3"])
    bright = np.asarray(calibrated["flux_r3"]) > 10 * np.asarray(calibrated["flux_err_r3"])
    assert np.median(ratio[bright]) == pytest.approx(1.0, abs=0.05)
    # the uncalibrated group's catalog says it, and the mixed group left the dither out
    cat = _table(bad_run, f"field/catalogs/{bad_run['groups'][FOOBUNIT]}.ecsv")
    assert cat.meta["magnitude_system"] == "instrumental" and cat.meta["flux_unit"] == "FOO"
    assert "BUNIT 'FOO'" in cat.meta["calibration"] and len(cat) > 40
    mixed = _table(bad_run, f"field/catalogs/{bad_run['groups'][MASKED]}.ecsv")
    assert mixed.meta["flux_unit"] == "Jy" and mixed.meta["magnitude_system"] == "AB"
    assert mixed.meta["left_out"][0].startswith(f"{NOBUNIT}: fluxes in 'unknown'")
    assert any(
        "field catalog" in p and f"{NOBUNIT}: fluxes in 'unknown'" in p for p in _problems(bad_run)
    )


def _table_clean_d2(demo_dir, at: Table) -> Table:
    """The calibrated dither (BUNIT MJy/sr) measured at the same sources."""
    from aperflow.images import open_image
    from aperflow.photometry import measure_image

    return measure_image(
        open_image(demo_dir / "field" / f"{FIELD_D2}.fits"), at, radii=[3.0], annulus=(10, 15)
    )


# ------------------------------------------------------- standard star off/at the edge


def test_standard_star_off_the_image_or_at_its_edge(bad_run):
    from aperflow.profiles import mean_profile

    # target off the footprint: a clear error naming the image; a NaN table flagged OFF_IMAGE
    message = f"data/standard/{STD_OFFSKY}.fits: target at pixel"
    assert f"ERROR aperflow.ee_profile: {message}" in _log(
        bad_run, "std", "ee_profile", STD_OFFSKY
    )
    assert any(f"std ee_profile {STD_OFFSKY} ERROR {message}" in p for p in _problems(bad_run))
    failed = _table(bad_run, f"std/ee/{STD_OFFSKY}.ecsv")
    assert "outside the 64x64 image" in failed.meta["error"]
    assert np.all(np.isnan(failed["flux"])) and np.all(failed["flags"] & F.OFF_IMAGE)
    # star rolled to x = 3.6: EDGE from r = 5 px (aperture past the border), not below
    edge = _table(bad_run, f"std/ee/{STD_EDGE}.ecsv")
    radius = np.asarray(edge["radius"])
    expect = edge.meta["x"] - radius < -0.5
    assert np.array_equal((np.asarray(edge["flags"]) & F.EDGE) != 0, expect)
    # star rolled to x = -0.4, just off: the centroid refuses (CENTROID), a warning names it
    off = _table(bad_run, f"std/ee/{STD_OFFEDGE}.ecsv")
    assert np.all(off["flags"] & F.CENTROID) and np.all(off["flags"] & F.EDGE)
    assert "centroid failed" in _log(bad_run, "std", "ee_profile", STD_OFFEDGE)
    # the group mean: the off-sky dither left out, the others used where they are good
    mean = _table(bad_run, f"std/ee_mean/{bad_run['std_group']}.ecsv")
    names = list(mean.meta["dithers"].values())
    assert names == [STD_EDGE, STD_D1, STD_D2, STD_OFFEDGE]
    good = [_table(bad_run, f"std/ee/{n}.ecsv") for n in (STD_D1, STD_D2)]
    ref_far = mean_profile(good, names=[STD_D1, STD_D2])
    ref_near = mean_profile([edge, *good], names=[STD_EDGE, STD_D1, STD_D2])
    far = expect
    np.testing.assert_allclose(mean["mean"][far], ref_far["mean"][far], rtol=1e-12)
    np.testing.assert_allclose(mean["mean"][~far], ref_near["mean"][~far], rtol=1e-12)
    assert np.all(mean["n_good"][~far] == 3) and np.all(mean["n_good"][far] <= 2)
    assert not np.any(mean["flags"] & (F.EDGE | F.CENTROID))
    problems = "\n".join(_problems(bad_run))
    assert f"{STD_EDGE}: left out of the mean at radii [5.0, 6.0" in problems
    assert f"{STD_OFFEDGE}: left out of the mean at radii [1.0, 2.0" in problems


# ------------------------------------------------ forced: coordinate list without a column


def test_coordinate_list_without_dec_is_named_and_the_regions_still_run(bad_run):
    message = (
        "data/forced/nodec.csv: coordinate list without column(s) dec (accepted names, any "
        "case: dec: dec, dec_deg, dej2000); found columns ['id', 'ra', 'declination']"
    )
    assert message in _log(bad_run, "forced", "forced", FORCED_IMAGE)
    assert any(f"forced forced {FORCED_IMAGE} WARNING {message}" in p for p in _problems(bad_run))
    table = _table(bad_run, f"forced/forced/{FORCED_IMAGE}.ecsv")
    assert message in table.meta["region_problems"][0]
    # the region file's 12 stars and the galaxy are measured; none of the list's 13 stars
    assert sorted(table["id"]) == sorted([f"star{k:02d}" for k in range(1, 13)] + ["galaxy"])
    assert np.all(np.isfinite(table["flux"]))
    assert len(_table(bad_run, "forced/forced/forced.ecsv")) == 13
