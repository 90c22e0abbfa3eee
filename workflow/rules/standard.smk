# standard mode (seed 001): per image the curve of growth (ee_profile) and the surface-
# brightness profile (sb_profile); per group (filter + subarray) their means over dithers,
# the aperture corrections from a reference EE and the total count rate; per subarray one
# table of totals over filters; plots for the report.


include: "standard_common.smk"


rule ee_profile:
    input:
        image=get_image_path,
    output:
        table="results/{dataset}/ee/{image}.ecsv",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/ee_profile/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/ee_profile/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_profile.py"


rule sb_profile:
    input:
        image=get_image_path,
    output:
        table="results/{dataset}/sb/{image}.ecsv",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        image_options=get_image_options(),
    log:
        "logs/{dataset}/sb_profile/{image}.log",
    benchmark:
        "logs/benchmarks/{dataset}/sb_profile/{image}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_profile.py"


rule ee_mean:
    input:
        tables=get_standard_tables("ee"),
    output:
        table="results/{dataset}/ee_mean/{group}.ecsv",
    params:
        kind="ee",
    log:
        "logs/{dataset}/ee_mean/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/ee_mean/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_mean.py"


rule sb_mean:
    input:
        tables=get_standard_tables("sb"),
    output:
        table="results/{dataset}/sb_mean/{group}.ecsv",
    params:
        kind="sb",
    log:
        "logs/{dataset}/sb_mean/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/sb_mean/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_mean.py"


rule apcorr:
    input:
        mean="results/{dataset}/ee_mean/{group}.ecsv",
        reference=get_reference_file,
    output:
        table="results/{dataset}/apcorr/{group}.ecsv",
    params:
        options=lambda wildcards: get_options(wildcards.dataset),
        spec=get_reference_spec,
    log:
        "logs/{dataset}/apcorr/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/apcorr/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_apcorr.py"


rule total_flux:
    input:
        tables=get_subarray_apcorr,
    output:
        table="results/{dataset}/totals/{subarray}.ecsv",
    log:
        "logs/{dataset}/total_flux/{subarray}.log",
    benchmark:
        "logs/benchmarks/{dataset}/total_flux/{subarray}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_totals.py"


rule plot_standard_ee:
    input:
        mean="results/{dataset}/ee_mean/{group}.ecsv",
        apcorr="results/{dataset}/apcorr/{group}.ecsv",
    output:
        report(
            "results/{dataset}/plots/ee/{group}.png",
            caption="../report/standard_ee.rst",
            category="{dataset} standard",
            subcategory="encircled energy",
        ),
    params:
        kind="ee",
    log:
        "logs/{dataset}/plot_standard_ee/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_standard_ee/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_plot.py"


rule plot_standard_sb:
    input:
        mean="results/{dataset}/sb_mean/{group}.ecsv",
    output:
        report(
            "results/{dataset}/plots/sb/{group}.png",
            caption="../report/standard_sb.rst",
            category="{dataset} standard",
            subcategory="surface brightness",
        ),
    params:
        kind="sb",
    log:
        "logs/{dataset}/plot_standard_sb/{group}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_standard_sb/{group}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_plot.py"


rule plot_standard_totals:
    input:
        totals="results/{dataset}/totals/{subarray}.ecsv",
    output:
        report(
            "results/{dataset}/plots/totals/{subarray}.png",
            caption="../report/standard_totals.rst",
            category="{dataset} standard",
            subcategory="total count rates",
        ),
    params:
        kind="totals",
    log:
        "logs/{dataset}/plot_standard_totals/{subarray}.log",
    benchmark:
        "logs/benchmarks/{dataset}/plot_standard_totals/{subarray}.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/standard_plot.py"
