# forced mode: input functions, the final targets and the config checks (the rules are in
# forced.smk, which includes this file; kept apart so that rule files hold only rules).
import re

from aperflow.batches import (
    batch_mem_mb,
    batch_runtime,
    batch_size,
    image_list_path,
    listed_sizes_mb,
    plan_batches,
    rule_name,
)

FORCED_DATASETS = datasets_of_mode("forced")
# Imported only when needed: astropy's units and coordinates take ~1 s, paid by every
# Snakemake start (twice per submission on SLURM).
if FORCED_DATASETS:
    from aperflow.forced import assign_bands, forced_options

for _name in FORCED_DATASETS:
    _opts = get_options(_name)
    if not (_opts.get("regions") or _opts.get("coordinates")):
        raise WorkflowError(
            f"config error: datasets.{_name}: mode 'forced' needs 'regions' (DS9 files) "
            "or 'coordinates' (CSV/ECSV lists)"
        )
    try:
        forced_options(_opts)
    except ValueError as _exc:
        raise WorkflowError(f"config error: datasets.{_name}: {_exc}") from None

# execution.batch_size > 1: each forced data set's images in batches (aperflow.batches), one
# job per batch (forced.smk) writing the same per-image tables, plots and logs.
FORCED_BATCHES = (
    {name: plan_batches(DATASETS[name].images, batch_size(config)) for name in FORCED_DATASETS}
    if batch_size(config) > 1
    else {}
)

# Per-image forced tables share results/{dataset}/forced/ with the data set's catalog:
# the image wildcard of the one-image rules accepts only the image ids of the forced data
# sets that are not batched.
FORCED_IMAGES = (
    "|".join(
        sorted(
            re.escape(i)
            for name in FORCED_DATASETS
            if name not in FORCED_BATCHES
            for i in DATASETS[name].images
        )
    )
    or "(?!)"
)


def _as_list(value):
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def forced_regions(dataset):
    """The DS9 region files of a forced data set."""
    return _as_list(get_options(dataset).get("regions"))


def forced_coordinates(dataset):
    """The coordinate lists (CSV/ECSV) of a forced data set."""
    return _as_list(get_options(dataset).get("coordinates"))


def get_forced_regions(wildcards):
    """Input function: :func:`forced_regions` of the job's data set."""
    return forced_regions(wildcards.dataset)


def get_forced_coordinates(wildcards):
    """Input function: :func:`forced_coordinates` of the job's data set."""
    return forced_coordinates(wildcards.dataset)


def get_forced_bands(dataset):
    """Filter label -> sorted image ids of a data set (from the inventory; files without a
    FILTER keyword take it from their name with ``forced.filter_from_name``)."""
    inv = get_inventory()
    rows = inv[inv["dataset"] == dataset].to_dict("records")
    pattern = forced_options(get_options(dataset)).get("filter_from_name")
    bands = {}
    for image, band in assign_bands(rows, pattern).items():
        bands.setdefault(band, []).append(image)
    return {band: sorted(images) for band, images in sorted(bands.items())}


def get_forced_band_tables(wildcards):
    """The per-image forced tables of one filter of a data set."""
    images = get_forced_bands(wildcards.dataset).get(wildcards.band, [])
    return [f"results/{wildcards.dataset}/forced/{image}.ecsv" for image in images]


def get_forced_filter_tables(wildcards):
    """Every per-filter catalog of a data set."""
    bands = get_forced_bands(wildcards.dataset)
    return [f"results/{wildcards.dataset}/forced/filters/{band}.ecsv" for band in bands]


def forced_archive_active(dataset):
    """True when the MAST download step is switched on for the data set."""
    archive = forced_options(get_options(dataset)).get("archive") or {}
    return bool(archive.get("activate"))


def get_forced_targets(dataset):
    """Final targets of a forced data set: the catalogs, the per-filter tables, plots."""
    out = [
        f"results/{dataset}/forced/{dataset}.ecsv",
        f"results/{dataset}/forced/{dataset}.parquet",
        f"results/{dataset}/plots/forced_fluxes.png",
    ]
    out += [f"results/{dataset}/forced/filters/{band}.ecsv" for band in get_forced_bands(dataset)]
    out += [f"results/{dataset}/plots/forced/{image}.png" for image in get_images(dataset)]
    if forced_archive_active(dataset):
        out.append(f"results/{dataset}/forced/archive.ecsv")
    return out


MODE_TARGETS["forced"] = get_forced_targets
