# Input functions and targets of the timeseries rules (timeseries.smk).

TIMESERIES_PLOTS = {
    "lightcurve": ("timeseries_lightcurve.rst", "light curves"),
    "centroids": ("timeseries_centroids.rst", "centroids and widths"),
    "flux_vs_centroid": ("timeseries_flux_vs_centroid.rst", "flux vs centroid"),
    "scatter_matrix": ("timeseries_scatter_matrix.rst", "scatter matrix"),
    "precision": ("timeseries_precision.rst", "precision"),
}


def timeseries_datasets_pattern():
    """Regex of the time-series data sets: these rules never match another mode's files."""
    return "|".join(datasets_of_mode("timeseries")) or "NO_TIMESERIES_DATASET"


def get_timeseries_frames(wildcards):
    """The per-integration tables of every usable file of a data set (after inventory)."""
    return [
        f"results/{wildcards.dataset}/timeseries/{image}.ecsv"
        for image in get_images(wildcards.dataset)
    ]


def get_timeseries_targets(dataset):
    """Final targets of a time-series data set: light curve, precision and plots."""
    return [
        f"results/{dataset}/lightcurve.ecsv",
        f"results/{dataset}/lightcurve.parquet",
        f"results/{dataset}/lightcurve_precision.ecsv",
    ] + [f"results/{dataset}/plots/timeseries_{name}.png" for name in TIMESERIES_PLOTS]


MODE_TARGETS["timeseries"] = get_timeseries_targets
