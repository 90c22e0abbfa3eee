"""Time-series plots (seed 002): light curves per radius (raw, normalised, binned),
centroids and widths vs time, flux vs centroid, the scatter matrix of all per-integration
quantities and the precision per radius."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.photometry import radius_label
from aperflow.plots.style import STYLE, figure, save_figure
from aperflow.timeseries import table_radii

__all__ = [
    "bin_series",
    "plot_all",
    "plot_centroids",
    "plot_flux_vs_centroid",
    "plot_lightcurves",
    "plot_precision",
    "plot_scatter_matrix",
]


def bin_series(time, values, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of consecutive groups of ``size`` finite points, and the error of each mean
    (the standard deviation in the bin over sqrt(n); NaN for one-point bins)."""
    time = np.asarray(time, dtype=float)
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(time) & np.isfinite(values)
    time, values = time[ok], values[ok]
    nbin = int(np.ceil(len(values) / max(size, 1)))
    if nbin == 0:
        return np.array([]), np.array([]), np.array([])
    index = np.arange(len(values)) // max(size, 1)
    count = np.bincount(index, minlength=nbin)
    tmean = np.bincount(index, time, nbin) / count
    vmean = np.bincount(index, values, nbin) / count
    var = np.bincount(index, (values - vmean[index]) ** 2, nbin) / np.maximum(count - 1, 1)
    err = np.where(count > 1, np.sqrt(var / count), np.nan)
    return tmean, vmean, err


def _time(table: Table) -> tuple[np.ndarray, str]:
    """Time axis in hours from the first integration, and its label."""
    col = table.meta.get("time_column", "mjd_utc")
    t = np.asarray(table[col], dtype=float)
    t0 = np.nanmin(t) if np.isfinite(t).any() else 0.0
    name = "BJD_TDB" if col == "bjd_tdb" else "MJD UTC"
    return (t - t0) * 24.0, f"hours since {name} - 2400000.5 = {t0:.5f}"


def _usable(table: Table) -> np.ndarray:
    if "duplicate_time" in table.colnames:
        return ~np.asarray(table["duplicate_time"], dtype=bool)
    return np.ones(len(table), dtype=bool)


def plot_lightcurves(table: Table, path: str | Path, bin_size: int = 10, best=None) -> None:
    """One row per radius: the raw flux (left) and the normalised flux with its binned
    means (right)."""
    radii = table_radii(table)
    t, tlabel = _time(table)
    use = _usable(table)
    fig, axes = figure(len(radii), 2, size=(11, 1.9 * len(radii) + 1.0), sharex=True)
    unit = str(table[f"flux_{radius_label(radii[0])}"].unit or "")
    for k, radius in enumerate(radii):
        lab = radius_label(radius)
        ax_raw, ax_norm = axes[k, 0], axes[k, 1]
        ax_raw.plot(t[use], table[f"flux_{lab}"][use], ".", ms=2, color="0.3")
        ax_raw.set_ylabel(f"r={radius:g} px\nflux [{unit}]", fontsize=8)
        norm = np.asarray(table[f"norm_flux_{lab}"], dtype=float)
        ax_norm.plot(t[use], norm[use], ".", ms=2, color="0.6", label="integrations")
        tb, vb, eb = bin_series(t[use], norm[use], bin_size)
        ax_norm.errorbar(tb, vb, eb, fmt="o", ms=3, color="C0", label=f"bins of {bin_size}")
        title = "normalised" + ("  (best aperture)" if best is not None and radius == best else "")
        ax_norm.set_title(title, fontsize=8, loc="left")
        if k == 0:
            ax_norm.legend(fontsize=7, loc="lower left")
    for ax in axes[-1]:
        ax.set_xlabel(tlabel, fontsize=8)
    fig.suptitle("light curves per aperture radius")
    save_figure(fig, path)


def plot_centroids(table: Table, path: str | Path) -> None:
    """x and y centres (cross-correlation, Gaussian, centre of mass) and the Gaussian
    widths vs time."""
    t, tlabel = _time(table)
    fig, axes = figure(3, 1, size=(9, 7.5), sharex=True)
    for ax, axis in zip(axes[:2, 0], ("x", "y"), strict=True):
        for name, style in (("cc", "C1."), ("com", "C2."), ("gauss", "C0.")):
            ax.plot(t, table[f"{axis}_{name}"], style, ms=2, label=name)
        ax.set_ylabel(f"{axis} [pix, 0-based]")
        ax.legend(fontsize=7, ncol=3, loc="upper right")
    ax = axes[2, 0]
    ax.plot(t, table["sigma_x"], "C0.", ms=2, label="sigma_x")
    ax.plot(t, table["sigma_y"], "C3.", ms=2, label="sigma_y")
    ax.set_ylabel("Gaussian width [pix]")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.set_xlabel(tlabel)
    fig.suptitle("centroids and widths")
    save_figure(fig, path)


def plot_flux_vs_centroid(table: Table, path: str | Path, radius: float | None = None) -> None:
    """Normalised flux (best aperture) against the Gaussian x and y centres: the
    intra-pixel / pointing sensitivity (seed 002)."""
    radii = table_radii(table)
    radius = radius if radius is not None else radii[len(radii) // 2]
    lab = radius_label(radius)
    use = _usable(table)
    norm = np.asarray(table[f"norm_flux_{lab}"], dtype=float)
    fig, axes = figure(1, 2, size=(10, 4), sharey=True)
    for ax, axis in zip(axes[0], ("x", "y"), strict=True):
        ax.plot(np.asarray(table[f"{axis}_gauss"])[use], norm[use], ".", ms=3, alpha=0.6)
        ax.set_xlabel(f"Gaussian {axis} [pix]")
    axes[0, 0].set_ylabel(f"normalised flux, r={radius:g} px")
    fig.suptitle("flux vs centroid")
    save_figure(fig, path)


_MATRIX_COLUMNS = (
    "background", "x_cc", "y_cc", "x_gauss", "y_gauss", "sigma_x", "sigma_y", "amplitude",
)  # fmt: skip


def plot_scatter_matrix(
    table: Table, path: str | Path, radius: float | None = None, max_points: int = 2000
) -> None:
    """Every per-integration quantity against every other (pandas ``scatter_matrix``,
    histograms on the diagonal), time and the normalised flux included."""
    import matplotlib.pyplot as plt
    from pandas import DataFrame
    from pandas.plotting import scatter_matrix

    radii = table_radii(table)
    radius = radius if radius is not None else radii[len(radii) // 2]
    t, _ = _time(table)
    frame = {"time [h]": t}
    for name in _MATRIX_COLUMNS:
        frame[name] = np.asarray(table[name], dtype=float)
    frame[f"flux r{radius:g}"] = np.asarray(table[f"norm_flux_{radius_label(radius)}"], float)
    df = DataFrame(frame)[_usable(table)]
    df = df.loc[:, df.notna().any()]
    if len(df) > max_points:  # evenly spaced subset: deterministic, spans the whole series
        df = df.iloc[np.linspace(0, len(df) - 1, max_points).astype(int)]
    with plt.rc_context(STYLE):
        axes = scatter_matrix(df, figsize=(12, 12), diagonal="hist", s=4, alpha=0.5)
        fig = np.ravel(axes)[0].figure
        for ax in np.ravel(axes):
            ax.xaxis.label.set_fontsize(7)
            ax.yaxis.label.set_fontsize(7)
            ax.tick_params(labelsize=5)
    fig.suptitle("scatter matrix of the per-integration quantities")
    save_figure(fig, path)


def plot_precision(precision: Table, path: str | Path) -> None:
    """Measured scatter (point-to-point and standard deviation) and the expected noise
    (total, photon, sky + read) per aperture radius."""
    r = np.asarray(precision["radius"], dtype=float)
    fig, axes = figure(1, 1, size=(6.4, 4.5))
    ax = axes[0, 0]
    ax.plot(r, precision["ptp_ppm"], "o-", label="measured point-to-point")
    ax.plot(r, precision["std_ppm"], "s-", label="measured std")
    ax.plot(r, precision["expected_ppm"], "k--", label="expected (error model)")
    if np.isfinite(np.asarray(precision["photon_ppm"], dtype=float)).any():
        ax.plot(r, precision["photon_ppm"], ":", color="C3", label="photon")
        ax.plot(r, precision["sky_read_ppm"], ":", color="C4", label="sky + read")
    best = precision.meta.get("best_radius")
    if best is not None:
        ax.axvline(best, color="0.6", lw=1, label=f"best r={best:g} px")
    ax.set_xlabel("aperture radius [pix]")
    ax.set_ylabel("scatter per integration [ppm]")
    ax.legend(fontsize=7)
    ax.set_title("precision per aperture")
    save_figure(fig, path)


def plot_all(
    table: Table,
    precision: Table,
    paths: Mapping[str, str | Path],
    bin_size: int = 10,
    max_points: int = 2000,
) -> None:
    """All time-series plots; ``paths`` maps lightcurve, centroids, flux_vs_centroid,
    scatter_matrix and precision to output files (missing keys are skipped)."""
    best = precision.meta.get("best_radius")
    if "lightcurve" in paths:
        plot_lightcurves(table, paths["lightcurve"], bin_size, best)
    if "centroids" in paths:
        plot_centroids(table, paths["centroids"])
    if "flux_vs_centroid" in paths:
        plot_flux_vs_centroid(table, paths["flux_vs_centroid"], best)
    if "scatter_matrix" in paths:
        plot_scatter_matrix(table, paths["scatter_matrix"], best, max_points)
    if "precision" in paths:
        plot_precision(precision, paths["precision"])
