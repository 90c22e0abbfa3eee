# timeseries mode (seed 002): per file, every integration's time, background, centroids
# (cross-correlation + 2-D Gaussian fit + centre of mass) and fluxes at several radii; per
# data set the light curve sorted by time, its precision per radius and the plots.

include: "timeseries_common.smk"


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
    # A long segment can use more: --set-threads timeseries_frames=2 (same table).
    threads: 1
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
