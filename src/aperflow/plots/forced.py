"""Forced-photometry plots: every region over a cutout of each image, and the flux of
every region per filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from aperflow.plots.style import figure, save_figure, zscale_limits

__all__ = ["plot_fluxes", "plot_message", "plot_regions"]


def plot_message(path: str | Path, title: str, message: str) -> None:
    """A figure that only says why there is no plot (a failed image, no region on it)."""
    fig, axes = figure(1, 1, size=(6.4, 2.4))
    ax = axes[0, 0]
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
    save_figure(fig, path)


def _patches(row):
    """Matplotlib patches of the region (and its sky annulus) in cutout coordinates."""
    from matplotlib.patches import Ellipse

    theta = float(row["theta_px"])
    ratio = float(row["b_px"]) / float(row["a_px"]) if row["a_px"] > 0 else 1.0
    x, y = float(row["x"]), float(row["y"])
    out = [Ellipse((x, y), 2 * row["a_px"], 2 * row["b_px"], angle=theta, fill=False,
                   color="red", lw=1.2)]  # fmt: skip
    if row["a_in_px"] > 0:
        out.append(Ellipse((x, y), 2 * row["a_in_px"], 2 * row["a_in_px"] * ratio, angle=theta,
                           fill=False, color="red", lw=1.2))  # fmt: skip
    for key in ("sky_in_px", "sky_out_px"):
        a = float(row[key])
        if np.isfinite(a) and a > 0:
            out.append(Ellipse((x, y), 2 * a, 2 * a * ratio, angle=theta, fill=False,
                               color="white", lw=0.8, ls="--"))  # fmt: skip
    return out


def plot_regions(
    data: np.ndarray,
    table: Table,
    path: str | Path,
    title: str = "",
    max_regions: int = 36,
    cutout_scale: float = 1.3,
) -> None:
    """Each region of ``table`` (a per-image forced table) over a zscale cutout.

    Parameters
    ----------
    data : ndarray
        The image pixels.
    table : Table
        :func:`aperflow.forced.measure_image` output (``x, y, a_px, b_px, a_in_px,
        theta_px, sky_in_px, sky_out_px, xcentroid, ycentroid``).
    path : str or Path
        The PNG to write.
    title : str
        Figure title (the image name).
    max_regions : int
        At most this many regions are drawn (the first ones), the title says so.
    cutout_scale : float
        Cutout half-size in units of the largest drawn radius (sky annulus included).
    """
    n_all = len(table)
    if n_all == 0:
        plot_message(path, title, "no region on this image")
        return
    rows = table[: int(max_regions)]
    n = len(rows)
    ncols = int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    fig, axes = figure(nrows, ncols, size=(2.4 * ncols, 2.4 * nrows + 0.4))
    ny, nx = data.shape
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        row = rows[k]
        reach = np.nanmax([row["a_px"], row["sky_out_px"]])
        half = max(int(np.ceil(cutout_scale * reach)), 5)
        x0, y0 = int(round(float(row["x"]))), int(round(float(row["y"])))
        xs = slice(max(x0 - half, 0), min(x0 + half + 1, nx))
        ys = slice(max(y0 - half, 0), min(y0 + half + 1, ny))
        cut = data[ys, xs]
        lo, hi = zscale_limits(cut)
        extent = (xs.start - 0.5, xs.stop - 0.5, ys.start - 0.5, ys.stop - 0.5)
        ax.imshow(cut, vmin=lo, vmax=hi, cmap="gray", origin="lower", extent=extent)
        for patch in _patches(row):
            ax.add_patch(patch)
        ax.plot(row["xcentroid"], row["ycentroid"], "+", color="cyan", ms=6)
        ax.set_xlim(x0 - half - 0.5, x0 + half + 0.5)
        ax.set_ylim(y0 - half - 0.5, y0 + half + 0.5)
        flag = f" f={int(row['flags'])}" if row["flags"] else ""
        ax.set_title(f"{row['id']}  S/N {row['snr']:.1f}{flag}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.grid(False)
    shown = f" (first {n} of {n_all})" if n < n_all else ""
    fig.suptitle(f"{title}{shown}: region (red), sky annulus (white), centroid (+)", fontsize=9)
    save_figure(fig, path)


def plot_fluxes(wide: Table, path: str | Path, max_regions: int = 36) -> None:
    """Magnitude of every region per filter (wide catalog); 3-sigma upper limits (open
    down-triangles) where S/N < 3."""
    bands = list(wide.meta.get("filters") or [])
    if not bands or len(wide) == 0:
        plot_message(path, "forced photometry", "no filter or no region to plot")
        return
    waves = wide.meta.get("wavelength_nm") or {}
    x = np.array([waves.get(b) or np.nan for b in bands], dtype=float)
    use_wave = np.isfinite(x).all() and len(set(x)) == len(x)
    xpos = x if use_wave else np.arange(len(bands), dtype=float)
    rows = wide[: int(max_regions)]
    fig, axes = figure(1, 1, size=(7.0, 4.8))
    ax = axes[0, 0]
    for row in rows:
        mag = np.array([row[f"mag_{b}"] for b in bands], dtype=float)
        err = np.array([row[f"mag_err_{b}"] for b in bands], dtype=float)
        snr = np.array([row[f"snr_{b}"] for b in bands], dtype=float)
        ul = np.array([row[f"mag_ul3_{b}"] for b in bands], dtype=float)
        det = np.isfinite(mag) & (snr >= 3)
        (line,) = ax.plot(xpos[det], mag[det], "-", lw=0.8, alpha=0.8)
        ax.errorbar(xpos[det], mag[det], err[det], fmt="o", ms=3, color=line.get_color(),
                    label=str(row["id"]))  # fmt: skip
        lim = ~det & np.isfinite(ul)
        ax.plot(xpos[lim], ul[lim], "v", mfc="none", color=line.get_color(), ms=6)
    ax.invert_yaxis()
    ax.set_xticks(xpos, bands)
    if use_wave:
        ax.set_xscale("log")
        ax.set_xticks(xpos, [f"{b}\n{w:.0f} nm" for b, w in zip(bands, x, strict=True)])
        ax.minorticks_off()
    systems = set((wide.meta.get("mag_system") or {}).values())
    ax.set_ylabel(f"magnitude ({'/'.join(sorted(s for s in systems if s)) or 'AB'})")
    shown = f" (first {len(rows)} of {len(wide)})" if len(rows) < len(wide) else ""
    ax.set_title(f"forced photometry per filter{shown}; open triangles: 3-sigma limits")
    if len(rows) <= 15:
        ax.legend(fontsize=7, ncols=2)
    save_figure(fig, path)
