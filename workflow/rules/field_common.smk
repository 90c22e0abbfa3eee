# Input functions and targets of the field rules (field.smk).

def get_field_apcorr(wildcards):
    """The aperture-correction table of a field data set as an input ([] when none)."""
    path = (get_options(wildcards.dataset).get("photometry") or {}).get("apcorr")
    return [path] if path else []


def get_field_group_files(stage, ext="ecsv"):
    """Input function: the per-image ``stage`` outputs of a group's images."""

    def inner(wildcards):
        images = get_group_images(wildcards.dataset, wildcards.group)
        return [f"results/{wildcards.dataset}/{stage}/{image}.{ext}" for image in images]

    return inner


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
