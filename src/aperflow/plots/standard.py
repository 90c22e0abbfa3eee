"""Standard-star plots: curves of growth, surface-brightness profiles, totals per filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.plots.style import figure, save_figure

__all__ = ["plot_ee", "plot_sb", "plot_totals"]


def _dithers(table: Table, value: str) -> list[int]:
    return sorted(int(k) for k in table.meta.get("dithers", {})) or [
        int(c.rsplit("_", 1)[1]) for c in table.colnames if c.startswith(f"{value}_")
        and c.rsplit("_", 1)[1].isdigit()
    ]  # fmt: skip


def plot_ee(mean: Table, apcorr: Table | None, path: str | Path) -> None:
    """Encircled energy of every dither, their mean and the reference EE (one group).

    With a total count rate (``apcorr.meta['total']``), curves are EE fractions and the
    reference is drawn; otherwise the net count rates are drawn.
    """
    total = float(apcorr.meta.get("total", np.nan)) if apcorr is not None else np.nan
    norm = total if np.isfinite(total) and total > 0 else 1.0
    r = np.asarray(mean["radius"], dtype=float)
    fig, axes = figure(2, 1, size=(6.4, 6.4), sharex=True, height_ratios=(3, 1))
    ax, axr = axes[0, 0], axes[1, 0]
    names = mean.meta.get("dithers", {})
    for k in _dithers(mean, "flux"):
        ax.plot(r, mean[f"flux_{k}"] / norm, "o-", ms=3, lw=0.8, alpha=0.7,
                label=f"dither {k}: {Path(str(names.get(str(k), k))).name}")  # fmt: skip
    ax.errorbar(r, mean["mean"] / norm, mean["mean_err"] / norm, fmt="ks-", ms=4, label="mean")
    if apcorr is not None and np.isfinite(apcorr["ee_ref"]).any() and norm != 1.0:
        ax.plot(r, apcorr["ee_ref"], "r--", lw=1.5, label="reference EE")
        with np.errstate(invalid="ignore", divide="ignore"):
            axr.errorbar(r, 100 * (mean["mean"] / norm / apcorr["ee_ref"] - 1),
                         100 * mean["mean_err"] / norm / apcorr["ee_ref"], fmt="ks")  # fmt: skip
        axr.axhline(0, color="r", lw=1)
        lo, hi = apcorr.meta.get("radius_range", [np.nan, np.nan])
        axr.axvspan(lo, hi, color="0.85", zorder=0)
    axr.set_ylabel("mean / ref - 1 [%]")
    axr.set_xlabel("radius [pix]")
    ax.set_ylabel("EE fraction" if norm != 1.0 else f"net flux [{mean.meta.get('bunit', '')}]")
    ax.set_title(f"{mean.meta.get('group', '')}: curve of growth")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


def plot_sb(mean: Table, path: str | Path) -> None:
    """Net surface brightness per dither and the mean vs annulus radius (log scale where
    positive, with the mean's 1-sigma errors)."""
    r = np.asarray(mean["radius"], dtype=float)
    fig, axes = figure(1, 1)
    ax = axes[0, 0]
    for k in _dithers(mean, "sb"):
        ax.plot(r, mean[f"sb_{k}"], "o-", ms=3, lw=0.8, alpha=0.7, label=f"dither {k}")
    ax.errorbar(r, mean["mean"], mean["mean_err"], fmt="ks-", ms=4, label="mean")
    if np.any(np.asarray(mean["mean"]) > 0):
        ax.set_yscale("symlog", linthresh=max(float(np.nanmax(mean["mean_err"])), 1e-12))
    ax.set_xlabel("annulus radius [pix]")
    ax.set_ylabel(f"net SB [{mean.meta.get('bunit', '')} / pix]")
    ax.set_title(f"{mean.meta.get('group', '')}: surface brightness")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_totals(totals: Table, path: str | Path, subarray: str = "") -> None:
    """Total count rate (with errors) vs filter for one subarray."""
    fig, axes = figure(1, 1)
    ax = axes[0, 0]
    x = np.arange(len(totals))
    if len(totals):
        ax.errorbar(x, totals["countrate"], totals["countrate_err"], fmt="o", capsize=3)
        ax.set_xticks(x, [str(f) for f in totals["filter"]])
        unit = totals["countrate_unit"][0]
    else:
        unit = ""
        ax.text(0.5, 0.5, "no totals (no reference EE?)", ha="center", transform=ax.transAxes)
    ax.set_xlabel("filter")
    ax.set_ylabel(f"total count rate [{unit}]")
    ax.set_title(f"total count rate per filter {subarray}".strip())
    save_figure(fig, path)
