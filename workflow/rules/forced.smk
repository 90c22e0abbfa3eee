# forced mode (seeds 004 and 003's forced part): DS9 regions and coordinate lists measured
# on every image of a data set that covers them. Per image (forced), per filter
# (forced_filter: weighted means over that filter's images), per data set (forced_catalog:
# one row per region, one column block per filter), plots, and an optional MAST download
# (forced_archive, off by default). With execution.batch_size > 1 the per-image rules are
# replaced, for the batched data sets, by one rule per batch of images (end of this file).
include: "forced_common.smk"


rule forced:
    input:
        image=get_image_path,
        regions=get_forced_regions,
        coordinates=get_forced_coordinates,
    output:
        table="results/{dataset}/forced/{image}.ecsv",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    wildcard_constraints:
        image=FORCED_IMAGES,
    log:
        "logs/{dataset}/forced/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/forced/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/forced_image.py"


rule forced_filter:
    input:
        tables=get_forced_band_tables,
        regions=get_forced_regions,
        coordinates=get_forced_coordinates,
    output:
        table="results/{dataset}/forced/filters/{band}.ecsv",
        parquet="results/{dataset}/forced/filters/{band}.parquet",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
    wildcard_constraints:
        band=r"[^/]+",
    log:
        "logs/{dataset}/forced_filter/{band}.log",
    benchmark:
        "logs/benchmarks/{dataset}/forced_filter/{band}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/forced_filter.py"


rule forced_catalog:
    input:
        tables=get_forced_filter_tables,
    output:
        table=report(
            "results/{dataset}/forced/{dataset}.ecsv",
            caption="../report/forced_catalog.rst",
            category="{dataset} forced",
            subcategory="catalog",
        ),
        parquet="results/{dataset}/forced/{dataset}.parquet",
    log:
        "logs/{dataset}/forced_catalog/{dataset}.log",
    benchmark:
        "logs/benchmarks/{dataset}/forced_catalog/{dataset}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/forced_catalog.py"


rule plot_forced_regions:
    input:
        image=get_image_path,
        table="results/{dataset}/forced/{image}.ecsv",
    output:
        report(
            "results/{dataset}/plots/forced/{image}.png",
            caption="../report/forced_regions.rst",
            category="{dataset} forced",
            subcategory="regions on each image",
        ),
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    wildcard_constraints:
        image=FORCED_IMAGES,
    log:
        "logs/{dataset}/plot_forced_regions/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_forced_regions/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/forced_plots.py"


rule plot_forced_fluxes:
    input:
        catalog="results/{dataset}/forced/{dataset}.ecsv",
    output:
        report(
            "results/{dataset}/plots/forced_fluxes.png",
            caption="../report/forced_fluxes.rst",
            category="{dataset} forced",
            subcategory="fluxes per filter",
        ),
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
    log:
        "logs/{dataset}/plot_forced_fluxes/{dataset}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_forced_fluxes/{dataset}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/forced_plots.py"


if any(forced_archive_active(name) for name in FORCED_DATASETS):

    rule forced_archive:
        input:
            regions=get_forced_regions,
            coordinates=get_forced_coordinates,
        output:
            table="results/{dataset}/forced/archive.ecsv",
        params:
            options=lambda wildcards: get_options(wildcards.dataset),
        log:
            "logs/{dataset}/forced_archive/{dataset}.log",
        benchmark:
            "logs/benchmarks/{dataset}/forced_archive/{dataset}.tsv"
        conda:
            "../../envs/aperflow.yaml"
        script:
            "../scripts/forced_archive.py"


# One rule per batch (execution.batch_size > 1): the forced table and the regions plot of
# its images in one job, writing exactly the files and logs of the one-image rules (the same
# step functions, aperflow.steps); see the batch rules at the end of field.smk for why the
# images come through a list file and their logs are not declared.
for _dataset, _batches in FORCED_BATCHES.items():
    for _index, _images in enumerate(_batches):
        if not defines_batch_rule(rule_name("forced", _dataset, _index)):
            continue

        rule:
            name:
                rule_name("forced", _dataset, _index)
            input:
                # The images through their list (resources.smk): see image_list_path.
                images=image_list_path(_dataset, _images[0]),
                regions=forced_regions(_dataset),
                coordinates=forced_coordinates(_dataset),
            output:
                tables=[f"results/{_dataset}/forced/{image}.ecsv" for image in _images],
                plots=[
                    report(
                        f"results/{_dataset}/plots/forced/{image}.png",
                        caption="../report/forced_regions.rst",
                        category=f"{_dataset} forced",
                        subcategory="regions on each image",
                    )
                    for image in _images
                ],
            params:
                dataset=_dataset,
                options=get_options(_dataset),
                image_options=get_image_options(),
            priority: PRIORITY_BATCH  # common.smk
            resources:
                # Members run one after the other: the largest image sets the memory.
                mem_mb=lambda wildcards, input, attempt: batch_mem_mb(
                    listed_sizes_mb(input.images), attempt
                ),
                runtime=lambda wildcards, input, attempt: batch_runtime(
                    listed_sizes_mb(input.images), attempt
                ),
                slurm_extra=get_batch_slurm_extra,  # its --nice: longest first (common.smk)
            log:
                # Plus, undeclared, each image's step logs (aperflow.batches.member_log_path).
                f"logs/{_dataset}/forced_batch/{_images[0]}.log",
            benchmark:
                f"logs/benchmarks/{_dataset}/forced_batch/{_images[0]}.tsv"
            conda:
                "../../envs/aperflow.yaml"
            script:
                "../scripts/forced_batch.py"
