# Execution: the rules that stay on the submitting machine under a cluster executor, and the
# image lists of the batches (execution.batch_size > 1).
# Include this file LAST in the Snakefile (after every rule file): it keeps only the names of
# rules that exist, so the list may name steps a configuration does not have (demo_data
# exists only with demo.activate, forced_archive only when a data set asks for it), and it
# reads the batches that field.smk and forced.smk planned.
# Resources, groups and the scheduler are in the profiles (profiles/slurm/config.yaml): the
# command line cannot mark a rule local, so this is the rule-side piece.

# One list of image files per batch: the batch rule's input instead of its B images, which
# would cost Snakemake 5 B^2 metadata operations per batch (aperflow.batches.image_list_path).
# A trivial shell job, kept local.
BATCH_LIST_RULES = []
# One output of each batch job, a target of `all` from the start: a batch needs neither the
# inventory nor another batch (an unreadable image gets its failed outputs, as any failed
# member), so the batches start at once instead of after the inventory checkpoint, which
# decides only the per-group steps. Under SLURM that is ~25 s less with both CPUs idle.
BATCH_TARGETS = []
# Each batch's image files by its image list (also what its --nice is computed from,
# common.smk), for every batch even where only some are defined.
BATCH_FILES = {}
for _dataset, _batches in sorted({**FIELD_BATCHES, **FORCED_BATCHES}.items()):
    for _index, _images in enumerate(_batches):
        _batch = rule_name(DATASETS[_dataset].mode, _dataset, _index)
        _list = image_list_path(_dataset, _images[0])
        BATCH_FILES[_list] = [DATASETS[_dataset].images[image] for image in _images]
        if defines_batch_rule(_batch):
            BATCH_TARGETS.append(workflow.get_rule(_batch).output[0])
        if not defines_batch_rule(f"{_batch}_images"):
            continue
        BATCH_LIST_RULES.append(f"{_batch}_images")

        rule:
            name:
                BATCH_LIST_RULES[-1]
            input:
                BATCH_FILES[_list],
            output:
                _list,
            priority: PRIORITY_BATCH  # with its batch, before the group steps (common.smk)
            log:
                f"logs/{_dataset}/batch_images/{_images[0]}.log",
            benchmark:
                f"logs/benchmarks/{_dataset}/batch_images/{_images[0]}.tsv"
            conda:
                "../../envs/aperflow.yaml"
            shell:
                "printf '%s\\n' {input:q} > {output:q} 2> {log:q}"


# Each SLURM job costs 5-12 s of start-up and a status poll (seconds to minutes) before
# what needs it can start; these steps are cheaper than that (the field group plots read 12
# images, or a few columns of each image's Parquet table; the field catalog reads a few
# columns of each, ~2 ms an image), or (the archive query) need the network that compute
# nodes often lack.
DEFAULT_LOCALRULES = [
    "demo_data",
    "inventory",
    "forced_archive",
    "catalog",
    "plot_field_magerr",
    "plot_field_positions",
    "plot_field_sky",
]
LOCALRULES = sorted(
    set(EXECUTION.get("localrules", DEFAULT_LOCALRULES))
    & {rule.name for rule in workflow.rules}
)

workflow.localrules(*LOCALRULES, *BATCH_LIST_RULES)
