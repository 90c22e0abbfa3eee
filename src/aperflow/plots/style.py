"""Shared plot style and an atomic PNG writer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on clusters or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aperflow.tables import atomic_path  # noqa: E402

__all__ = ["figure", "save_figure", "zscale_limits"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.origin": "lower",
    "image.cmap": "viridis",
}


def figure(nrows: int = 1, ncols: int = 1, size=(6.4, 4.8), **kwargs):
    """A figure and axes in aperflow's style."""
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)


def save_figure(fig, path: str | Path) -> None:
    """Save ``fig`` as PNG atomically (no timestamps in the metadata) and close it."""
    with plt.rc_context(STYLE), atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def zscale_limits(data) -> tuple[float, float]:
    """IRAF zscale display limits of an image (astropy's ZScaleInterval), NaN-safe."""
    from astropy.visualization import ZScaleInterval

    finite = np.asarray(data)[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    return tuple(float(v) for v in ZScaleInterval().get_limits(finite))
