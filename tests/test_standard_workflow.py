"""End-to-end: the standard mode of the default demo run against the simulator's truth.

Reads the shared ``demo_run`` (one full default workflow run per session).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from aperflow.tables import read_table

DATASET = "demo_standard"
FILTERS = ["F115W", "F200W", "F277W", "F444W"]
SUBARRAYS = ["SUB128", "SUB64"]


def _need(run: Path, relative: str) -> Path:
    path = run / relative
    if not path.exists():
        stderr = (run / "snakemake.stderr").read_text()[-3000:]
        pytest.fail(f"{relative} was not made by the demo run; snakemake said:\n{stderr}")
    return path


def _groups(run: Path) -> list[Path]:
    _need(run, f"results/{DATASET}/totals/SUB64.ecsv")
    groups = sorted((run / "results" / DATASET / "apcorr").glob("*.ecsv"))
    assert len(groups) == 8, [g.name for g in groups]
    return groups


def _truths(run: Path, mean: Table) -> list[Table]:
    demo = run / "resources" / "demo" / "standard"
    return [Table.read(demo / f"{image}_truth.ecsv") for image in mean.meta["dithers"].values()]


def _ee_vs_truth(run: Path):
    """Per group: radius, measured mean EE fraction (mean count rate / measured total),
    its error, and the truth (mean over the group's dithers of the true EE fraction)."""
    out = {}
    for path in _groups(run):
        ap = read_table(path)
        mean = read_table(_need(run, f"results/{DATASET}/ee_mean/{path.name}"))
        truth = _truths(run, mean)
        r = np.asarray(ap["radius"])
        true = np.mean([np.interp(r, t["radius"], t["ee_fraction"]) for t in truth], axis=0)
        out[path.stem] = (
            r,
            np.asarray(ap["ee_measured"]),
            np.asarray(ap["ee_measured_err"]),
            true,
        )
    return out


def test_every_standard_output_is_made(demo_run):
    for stage in ("ee_mean", "sb_mean", "apcorr"):
        assert len(list((demo_run / "results" / DATASET / stage).glob("*.ecsv"))) == 8, stage
    for kind in ("ee", "sb"):
        assert len(list((demo_run / "results" / DATASET / "plots" / kind).glob("*.png"))) == 8
        assert len(list((demo_run / "results" / DATASET / kind).glob("*.ecsv"))) == 16
    for sub in SUBARRAYS:
        _need(demo_run, f"results/{DATASET}/totals/{sub}.ecsv")
        assert _need(demo_run, f"results/{DATASET}/plots/totals/{sub}.png").stat().st_size > 5000


def test_mean_ee_matches_true_ee_where_the_data_allow(demo_run):
    """The mean EE (mean net count rate / measured total count rate) matches the true EE
    fraction of the pixel-integrated noiseless star within 0.5 % at every radius from 3 to
    10 px in every filter and subarray, and at 12 and 15 px within 3 of its own sigmas."""
    for group, (r, ee, err, true) in _ee_vs_truth(demo_run).items():
        dev = ee / true - 1
        inner = (r >= 3) & (r <= 10)
        assert np.all(np.abs(dev[inner]) < 0.005), (
            group,
            dict(zip(r[inner], dev[inner], strict=True)),
        )
        outer = r > 10
        assert np.all(np.abs(ee - true)[outer] < 3 * err[outer]), (group, dev[outer], err[outer])


def test_mean_ee_within_half_percent_at_every_radius_from_3px(demo_run):
    """The issue's criterion as stated (worst deviation 0.34 % with the demo's seed)."""
    for group, (r, ee, _, true) in _ee_vs_truth(demo_run).items():
        sel = r >= 3
        assert np.all(np.abs(ee[sel] / true[sel] - 1) < 0.005), group


def _truth_of(run: Path, filt: str, sub: str) -> tuple[Table, Path]:
    demo = run / "resources" / "demo" / "standard"
    for path in sorted(demo.glob("*_truth.ecsv")):
        t = Table.read(path)
        if t.meta["filter"] == filt and t.meta["subarray"] == sub:
            return t, Path(str(path).replace("_truth.ecsv", ".fits"))
    raise AssertionError(f"no truth for {filt} {sub}")


def test_total_countrate_recovers_injected_within_1_percent(demo_run):
    for sub in SUBARRAYS:
        totals = read_table(_need(demo_run, f"results/{DATASET}/totals/{sub}.ecsv"))
        assert sorted(totals["filter"]) == FILTERS
        for row in totals:
            truth, _ = _truth_of(demo_run, row["filter"], sub)
            injected = truth.meta["total_countrate"]
            assert abs(row["countrate"] / injected - 1) < 0.01, (sub, row["filter"])
            # an honest error bar: the miss is within 3 sigma, and the error is not huge
            assert abs(row["countrate"] - injected) < 3 * row["countrate_err"], row["filter"]
            assert row["countrate_err"] / injected < 0.01
            assert row["n_radii"] == 6 and row["throughput"] == 1.0 and row["flags"] == 0


def test_totals_in_jansky_and_ab_from_the_header(demo_run):
    """Jy = DN/s x PHOTMJSR [MJy/sr per DN/s] x 1e6 x PIXAR_SR; AB = -2.5 log10(Jy) + 8.90."""
    for sub in SUBARRAYS:
        totals = read_table(_need(demo_run, f"results/{DATASET}/totals/{sub}.ecsv"))
        for row in totals:
            _, image = _truth_of(demo_run, row["filter"], sub)
            head = fits.getheader(image, "SCI")
            jy = row["countrate"] * head["PHOTMJSR"] * 1e6 * head["PIXAR_SR"]
            assert row["flux_unit"] == "Jy" and row["mag_system"] == "AB"
            assert row["flux"] == pytest.approx(jy, rel=1e-9)
            assert row["mag"] == pytest.approx(-2.5 * np.log10(jy) + 8.90, abs=1e-9)
            assert row["mag_err"] == pytest.approx(
                1.0857362 * row["countrate_err"] / row["countrate"], rel=1e-6
            )


def test_dq_flagged_pixels_are_repaired_and_reported(demo_run):
    """Every DQ-flagged pixel between the core and the largest radius is in the image's
    list of repaired pixels, and the log says so."""
    for path in sorted((demo_run / "results" / DATASET / "ee").glob("*.ecsv")):
        t = read_table(path)
        image = demo_run / t.meta["image"]
        dq = fits.getdata(image, "DQ")
        iy, ix = np.nonzero(dq)
        r = np.hypot(ix - t.meta["x"], iy - t.meta["y"])
        inside = (r >= 5) & (r <= 15)
        repaired = set(zip(t.meta["repaired_x"], t.meta["repaired_y"], strict=True))
        assert set(zip(ix[inside].tolist(), iy[inside].tolist(), strict=True)) <= repaired
        assert t.meta["n_repaired"] == len(repaired) >= inside.sum()
        assert t.meta["n_core_bad"] == 0 and t.meta["n_sky"] > 400
        log = demo_run / "logs" / DATASET / "ee_profile" / f"{path.stem}.log"
        assert f"{t.meta['n_repaired']} pixels repaired (surface)" in log.read_text()


def test_sb_means_fall_with_radius_near_the_star(demo_run):
    for path in sorted((demo_run / "results" / DATASET / "sb_mean").glob("*.ecsv")):
        sb = read_table(path)
        assert list(sb["radius"]) == [5, 9, 13, 17, 21, 25]
        assert sb["mean"][0] > sb["mean"][1] > 0  # 5 px and 9 px: star well above sky
        assert np.all(np.abs(sb["mean"][2:]) < 5 * sb["mean_err"][2:] + 0.02 * sb["mean"][0])
