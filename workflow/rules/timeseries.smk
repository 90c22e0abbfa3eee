# timeseries mode (seed 002): per file, every integration's time, background, centroids
# (cross-correlation + 2-D Gaussian fit + centre of mass) and fluxes at several radii; per
# data set the light curve sorted by time, its precision per radius and the plots.

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


rule timeseries_frames:
    input:
        image=get_image_path,
    output:
        table="results/{dataset}/timeseries/{image}.ecsv",
        parquet="results/{dataset}/timeseries/{image}.parquet",
    wildcard_constraints:
        dataset=timeseries_datasets_pattern(),
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/timeseries_frames/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/timeseries_frames/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/timeseries_frames.py"


rule lightcurve:
    input:
        tables=get_timeseries_frames,
    output:
        table="results/{dataset}/lightcurve.ecsv",
        parquet="results/{dataset}/lightcurve.parquet",
        precision="results/{dataset}/lightcurve_precision.ecsv",
    wildcard_constraints:
        dataset=timeseries_datasets_pattern(),
    log:
        "logs/{dataset}/lightcurve/lightcurve.log",
    benchmark:
        "logs/benchmarks/{dataset}/lightcurve/lightcurve.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/timeseries_lightcurve.py"


rule timeseries_plots:
    input:
        table="results/{dataset}/lightcurve.ecsv",
        precision="results/{dataset}/lightcurve_precision.ecsv",
    output:
        **{
            name: report(
                f"results/{{dataset}}/plots/timeseries_{name}.png",
                caption=f"../report/{caption}",
                category="{dataset} timeseries",
                subcategory=subcategory,
            )
            for name, (caption, subcategory) in TIMESERIES_PLOTS.items()
        },
    wildcard_constraints:
        dataset=timeseries_datasets_pattern(),
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/timeseries_plots/timeseries_plots.log",
    benchmark:
        "logs/benchmarks/{dataset}/timeseries_plots/timeseries_plots.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/timeseries_plots.py"
