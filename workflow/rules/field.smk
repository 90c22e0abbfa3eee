# field mode (seed 000, first half of seed 003): per image the background (map + RMS),
# the detected sources and the multi-radius aperture photometry; per group (the dithers of
# one instrument/detector/filter/pupil/subarray) the merged catalog, a DS9 region file and
# the plots for the report. With execution.batch_size > 1 the per-image rules are replaced,
# for the batched data sets, by one rule per batch of images (at the end of this file).


include: "field_common.smk"


rule background:
    input:
        image=get_image_path,
    output:
        fits="results/{dataset}/background/{image}.fits",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
        image_threads=IMAGE_THREADS,
    wildcard_constraints:
        dataset=FIELD_PER_IMAGE,
    threads: get_image_threads
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
        image_threads=IMAGE_THREADS,
    wildcard_constraints:
        dataset=FIELD_PER_IMAGE,
    threads: get_image_threads
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
        image_threads=IMAGE_THREADS,
    wildcard_constraints:
        dataset=FIELD_PER_IMAGE,
    threads: get_image_threads
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
        # Parquet: read fast (field_catalog.py).
        tables=get_field_group_files("photometry", "parquet"),
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
        # Parquet: the script reads a few columns of each (field_plots.py).
        tables=get_field_group_files("photometry", "parquet"),
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
        tables=get_field_group_files("photometry", first=MAX_PANELS),
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
        n_images=get_group_size,
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
        backgrounds=get_field_group_files("background", "fits", first=MAX_PANELS),
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
        n_images=get_group_size,
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
    wildcard_constraints:
        dataset=FIELD_PER_IMAGE,
    log:
        "logs/{dataset}/plot_field_detections/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_field_detections/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/field_detections.py"


# One rule per batch (execution.batch_size > 1): the four per-image steps of its images in
# one job, writing exactly the files and logs of the one-image rules above (the same step
# functions, aperflow.steps). Outputs cannot be a variable list per wildcard, so each batch
# is its own rule with an explicit list; the batches are known at parse time (the data
# sets' resolved globs) and chosen so that a new image changes only its own batch. Their
# images come in through one list file per batch (rules in resources.smk), and neither the
# images nor their logs are listed in params or log: Snakemake copies a job's inputs, params
# and logs into the metadata of each of its outputs, which would grow as B^2 per batch.
for _dataset, _batches in FIELD_BATCHES.items():
    for _index, _images in enumerate(_batches):
        if not defines_batch_rule(rule_name("field", _dataset, _index)):
            continue

        rule:
            name:
                rule_name("field", _dataset, _index)
            input:
                # The images through their list (resources.smk): see image_list_path.
                images=image_list_path(_dataset, _images[0]),
                apcorr=field_apcorr(_dataset),
            # The outputs asked for most come first. Snakemake finds which rule makes a file
            # by matching the file against the rule's outputs one by one (Rule.is_producer),
            # so a lookup costs the file's place in this list: with B images a batch pays
            # ~B^2 matches per kind of output asked for. The group catalog and the magnitude-
            # error plot each ask for every Parquet table, `all` for every detections plot;
            # the rest are asked for a dozen times. Parquet last cost ~4x as much: 16 s of
            # Snakemake's DAG update after the inventory at 5000 images in batches of 2000.
            output:
                parquet=field_batch_files(_dataset, _images, "photometry", "parquet"),
                plots=[
                    report(
                        f"results/{_dataset}/plots/field/{image}_detections.png",
                        caption="../report/field_detections.rst",
                        category=f"{_dataset} field",
                        subcategory="detections",
                    )
                    for image in _images
                ],
                photometry=field_batch_files(_dataset, _images, "photometry", "ecsv"),
                backgrounds=field_batch_files(_dataset, _images, "background", "fits"),
                sources=field_batch_files(_dataset, _images, "sources", "ecsv"),
            params:
                dataset=_dataset,
                options=get_options(_dataset),
                image_options=get_image_options(),
                image_threads=IMAGE_THREADS,
            threads: get_batch_threads
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
                f"logs/{_dataset}/field_batch/{_images[0]}.log",
            benchmark:
                f"logs/benchmarks/{_dataset}/field_batch/{_images[0]}.tsv"
            conda:
                "../../envs/aperflow.yaml"
            script:
                "../scripts/field_batch.py"
