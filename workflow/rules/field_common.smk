# Input functions, targets and batches of the field rules (field.smk).
import re
from pathlib import Path

from aperflow.batches import (
    batch_mem_mb,
    batch_runtime,
    batch_size,
    file_workers,
    image_list_path,
    image_threads,
    image_workers,
    listed_sizes_mb,
    plan_batches,
    rule_name,
)

FIELD_DATASETS = datasets_of_mode("field")

# execution.batch_size > 1: each field data set's images in batches (aperflow.batches), one
# job per batch writing the same per-image files; the one-image rules then take only the
# field data sets that are not batched (none, as the size is global; "(?!)" never matches).
FIELD_BATCHES = (
    {name: plan_batches(DATASETS[name].images, batch_size(config)) for name in FIELD_DATASETS}
    if batch_size(config) > 1
    else {}
)
FIELD_PER_IMAGE = (
    "|".join(re.escape(name) for name in FIELD_DATASETS if name not in FIELD_BATCHES) or "(?!)"
)


# Threads of the background, detection and photometry of an image file of 32 MB or more
# (aperflow.batches.image_workers): the scheduler reserves them, and the scripts use them
# whatever cores Snakemake grants, so that the outputs never depend on --cores.
IMAGE_THREADS = image_threads(config)


def get_image_threads(wildcards, input):
    """Threads of a per-image field job (1 until the image exists, e.g. the demo's)."""
    return file_workers(input.image, IMAGE_THREADS)


def get_batch_threads(wildcards, input):
    """Threads of a field batch job: those of its largest image (1 while its image list is
    not written, e.g. in a dry run: Snakemake takes the threads again when it runs it)."""
    if not Path(input.images).exists():
        return 1
    return image_workers(listed_sizes_mb(input.images), IMAGE_THREADS)


def field_apcorr(dataset):
    """The aperture-correction table of a field data set as an input list ([] when none)."""
    path = (get_options(dataset).get("photometry") or {}).get("apcorr")
    return [path] if path else []


def get_field_apcorr(wildcards):
    """Input function: :func:`field_apcorr` of the job's data set."""
    return field_apcorr(wildcards.dataset)


def field_batch_files(dataset, images, stage, ext):
    """The per-image ``stage`` files of a batch's images (what the one-image rules write)."""
    return [f"results/{dataset}/{stage}/{image}.{ext}" for image in images]


# The one-panel-per-image group plots show the first MAX_PANELS images of a group (by name).
MAX_PANELS = 12


def get_field_group_files(stage, ext="ecsv", first=None):
    """Input function: the per-image ``stage`` outputs of a group's images (the ``first``
    of them by name, when given: what a plot of the first images reads, so that the
    other images neither rerun it nor cost Snakemake a lookup each)."""

    def inner(wildcards):
        images = get_group_images(wildcards.dataset, wildcards.group)[:first]
        return [f"results/{wildcards.dataset}/{stage}/{image}.{ext}" for image in images]

    return inner


def get_group_size(wildcards):
    """Params function: the number of usable images of a group (in a plot's title)."""
    return len(get_group_images(wildcards.dataset, wildcards.group))


def get_field_targets(dataset):
    """Final targets of a field data set: per group the catalog, regions and plots; per
    image the detections plot."""
    out = []
    for g in get_groups(dataset):
        out += [
            f"results/{dataset}/catalogs/{g}.ecsv",
            f"results/{dataset}/catalogs/{g}.reg",
            f"results/{dataset}/plots/field/{g}_magerr.png",
            f"results/{dataset}/plots/field/{g}_positions.png",
            f"results/{dataset}/plots/field/{g}_sky.png",
        ]
    out += [f"results/{dataset}/plots/field/{image}_detections.png" for image in get_images(dataset)]
    return out


MODE_TARGETS["field"] = get_field_targets
