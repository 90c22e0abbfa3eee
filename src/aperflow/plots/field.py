"""Plots of the field mode, one figure per group: magnitude vs magnitude error, source
positions per image (all detections vs the ones kept), and the sky (background) maps."""

from __future__ import annotations

import numpy as np

from aperflow import flags as F
from aperflow.photometry import radii_labels
from aperflow.plots.style import figure, save_figure, zscale_limits

__all__ = ["kept_mask", "one_series", "plot_mag_error", "plot_positions", "plot_sky_maps"]


def _label(table, label: str | None) -> str:
    labels = radii_labels(table.meta, table.colnames)
    if label and label in labels:
        return label
    return labels[0] if labels else ""


def kept_mask(table, label: str | None = None) -> np.ndarray:
    """Detections kept in the clean catalog (as seed 000 cleans): finite magnitude, a
    local sky, and none of MASKED, SATURATED, EDGE, NO_SKY at the radius ``label``."""
    label = _label(table, label)
    if not label or len(table) == 0:
        return np.zeros(len(table), bool)
    bad = F.MASKED | F.SATURATED | F.EDGE | F.NO_SKY | F.NONPOSITIVE
    flags = np.asarray(table[f"flags_{label}"], dtype=np.int64)
    return np.isfinite(np.asarray(table[f"mag_{label}"], float)) & ((flags & bad) == 0)


def _panels(n: int, height: float):
    """A figure with one panel per image (3 per row); the unused panels hidden."""
    ncols = min(max(n, 1), 3)
    nrows = int(np.ceil(max(n, 1) / ncols))
    fig, axes = figure(nrows, ncols, (4.0 * ncols, height * nrows))
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def one_series(paths, label: str | None = None):
    """Every image's sources as one table for :func:`plot_mag_error`, from Parquet files.

    Only the plotted radius's ``mag``, ``mag_err`` and ``flags`` columns of each file are
    read (:func:`aperflow.tables.stack_parquet_columns`: seconds for thousands of images),
    with the metadata of the first image that has photometry
    (:func:`aperflow.tables.read_parquet_header`); ``image`` is each row's index in
    ``paths``. None when no image has photometry.
    """
    from aperflow.tables import read_parquet_header, stack_parquet_columns

    headers = map(read_parquet_header, paths)
    ref = next((h for h in headers if h.meta.get("radii_labels")), None)
    if ref is None:
        return None
    lab = _label(ref, label)
    table = stack_parquet_columns(paths, [f"mag_{lab}", f"mag_err_{lab}", f"flags_{lab}"])
    table.meta.update(ref.meta)
    return table


def plot_mag_error(tables, names, path, title: str = "", label: str | None = None) -> None:
    """Magnitude vs magnitude error of every image of a group at one radius."""
    fig, axes = figure(1, 1, (6.4, 4.8))
    ax = axes[0, 0]
    any_point = False
    for table, name in zip(tables, names, strict=True):
        lab = _label(table, label)
        if not lab or len(table) == 0:
            continue
        keep = kept_mask(table, lab)
        ax.scatter(table[f"mag_{lab}"][keep], table[f"mag_err_{lab}"][keep], s=6, label=name)
        any_point |= bool(keep.any())
    system = tables[0].meta.get("magnitude_system", "") if tables else ""
    lab = _label(tables[0], label) if tables else ""
    ax.set_xlabel(f"mag {lab} [{system}]")
    ax.set_ylabel("mag error")
    ax.set_yscale("log")
    if any_point:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no sources", transform=ax.transAxes, ha="center")
    ax.set_title(title)
    save_figure(fig, path)


def plot_positions(tables, names, path, title: str = "", label: str | None = None) -> None:
    """Source positions per image: all detections and those kept (seed 000's figure)."""
    fig, axes = _panels(len(tables), 4.0)
    for k, (ax, table) in enumerate(zip(axes, tables, strict=True)):
        keep = kept_mask(table, label)
        ax.scatter(table["x"], table["y"], s=4, c="0.6", label=f"all ({len(table)})")
        ax.scatter(table["x"][keep], table["y"][keep], s=4, c="C1", label=f"kept ({keep.sum()})")
        ax.set_xlabel("x [px, 0-based]")
        ax.set_ylabel("y [px, 0-based]")
        ax.set_title(names[k], fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_sky_maps(backgrounds, names, path, title: str = "") -> None:
    """The background map of every image of a group (zscale), with its median and RMS."""
    fig, axes = _panels(len(backgrounds), 3.6)
    for k, (ax, bkg) in enumerate(zip(axes, backgrounds, strict=True)):
        lo, hi = zscale_limits(bkg.background)
        im = ax.imshow(bkg.background, vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(f"{names[k]}\n{bkg.method}: {bkg.median:.4g} +- {bkg.std:.3g}", fontsize=8)
        ax.grid(False)
    fig.suptitle(title)
    save_figure(fig, path)


def plot_detections(data, table, path, radius: float, annulus, title: str = "") -> None:
    """Detections over the image (zscale): each source's aperture of ``radius`` pixels and
    its sky annulus, kept sources in one colour and flagged ones in another."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle

    fig, axes = figure(1, 1, size=(7.0, 7.0))
    ax = axes[0][0]
    lo, hi = zscale_limits(data)
    ax.imshow(data, vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower", cmap="gray")
    kept = kept_mask(table)
    x, y = np.asarray(table["x"], float), np.asarray(table["y"], float)
    for sel, colour, name in ((kept, "tab:green", "kept"), (~kept, "tab:red", "flagged")):
        apertures = [Circle((xi, yi), radius) for xi, yi in zip(x[sel], y[sel], strict=True)]
        ax.add_collection(PatchCollection(apertures, facecolor="none", edgecolor=colour, lw=0.8))
        rings = [
            Circle((xi, yi), r) for xi, yi in zip(x[sel], y[sel], strict=True) for r in annulus
        ]
        ax.add_collection(
            PatchCollection(
                rings, facecolor="none", edgecolor=colour, lw=0.6, alpha=0.8, linestyle="--"
            )
        )
        ax.plot([], [], color=colour, label=f"{name} ({int(sel.sum())})")
    ax.set_xlim(-0.5, data.shape[1] - 0.5)
    ax.set_ylim(-0.5, data.shape[0] - 0.5)
    ax.set_xlabel("x [pix, 0-based]")
    ax.set_ylabel("y [pix, 0-based]")
    ax.grid(False)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"{title}\naperture r={radius:g} px, annulus {annulus[0]:g}-{annulus[1]:g} px", fontsize=9
    )
    save_figure(fig, path)
