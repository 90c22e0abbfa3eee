# aperflow: aperture photometry of astronomical images.
# Thin on purpose: the config is validated once, the rules live in workflow/rules/, and all
# real work is done by the aperflow package (src/aperflow/).
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/inventory.smk"
include: "workflow/rules/field.smk"
include: "workflow/rules/standard.smk"
include: "workflow/rules/timeseries.smk"
include: "workflow/rules/forced.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/resources.smk"


rule all:
    input:
        BATCH_TARGETS,
        get_final_output,
    default_target: True


# The problems of the run (unreadable files, job warnings and failures) in one table,
# written whether the run succeeded or not (with --keep-going the other jobs finish).
onsuccess:
    from aperflow.problems import write_problems

    write_problems("results/problems.ecsv")


onerror:
    from aperflow.problems import write_problems

    write_problems("results/problems.ecsv")
