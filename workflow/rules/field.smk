# field mode (seed 000, first half of seed 003): per image the background (map + RMS),
# the detected sources and the multi-radius aperture photometry; per group (the dithers of
# one instrument/detector/filter/pupil/subarray) the merged catalog, a DS9 region file and
# the plots for the report.


include: "field_common.smk"


rule background:
    input:
        image=get_image_path,
    output:
        fits="results/{dataset}/background/{image}.fits",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/background/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/background/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_background.py"


rule detect:
    input:
        image=get_image_path,
        background="results/{dataset}/background/{image}.fits",
    output:
        table="results/{dataset}/sources/{image}.ecsv",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/detect/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/detect/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_detect.py"


rule photometry:
    input:
        image=get_image_path,
        sources="results/{dataset}/sources/{image}.ecsv",
        apcorr=get_field_apcorr,
    output:
        table="results/{dataset}/photometry/{image}.ecsv",
        parquet="results/{dataset}/photometry/{image}.parquet",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/photometry/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/photometry/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_photometry.py"


rule catalog:
    input:
        tables=get_field_group_files("photometry"),
    output:
        table="results/{dataset}/catalogs/{group}.ecsv",
        parquet="results/{dataset}/catalogs/{group}.parquet",
        regions="results/{dataset}/catalogs/{group}.reg",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/catalog/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/catalog/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_catalog.py"


rule plot_field_magerr:
    input:
        tables=get_field_group_files("photometry"),
    output:
        report(
            "results/{dataset}/plots/field/{group}_magerr.png",
            caption="../report/field_magerr.rst",
            category="{dataset} field",
            subcategory="magnitude errors",
        ),
    params:
        kind="magerr",
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/plot_field_magerr/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_field_magerr/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_plots.py"


rule plot_field_positions:
    input:
        tables=get_field_group_files("photometry"),
    output:
        report(
            "results/{dataset}/plots/field/{group}_positions.png",
            caption="../report/field_positions.rst",
            category="{dataset} field",
            subcategory="source positions",
        ),
    params:
        kind="positions",
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/plot_field_positions/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_field_positions/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_plots.py"


rule plot_field_sky:
    input:
        backgrounds=get_field_group_files("background", "fits"),
    output:
        report(
            "results/{dataset}/plots/field/{group}_sky.png",
            caption="../report/field_sky.rst",
            category="{dataset} field",
            subcategory="sky maps",
        ),
    params:
        kind="sky",
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/plot_field_sky/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_field_sky/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_plots.py"


rule plot_field_detections:
    input:
        image=get_image_path,
        table="results/{dataset}/photometry/{image}.ecsv",
    output:
        report(
            "results/{dataset}/plots/field/{image}_detections.png",
            caption="../report/field_detections.rst",
            category="{dataset} field",
            subcategory="detections",
        ),
    params:
        images=get_image_options(),
    log:
        "logs/{dataset}/plot_field_detections/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_field_detections/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_detections.py"
