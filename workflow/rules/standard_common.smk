# Input functions and targets of the standard rules (standard.smk). Their `subarray`
# wildcard is constrained in common.smk.


def get_standard_subarrays(dataset):
    """Subarrays of a standard data set (``NONE`` when the header names none), sorted."""
    inv = get_inventory()
    rows = inv[inv["dataset"] == dataset]
    return sorted({str(s) if str(s) not in ("", "nan") else "NONE" for s in rows["subarray"]})


def get_subarray_groups(dataset, subarray):
    """Groups (filter + subarray) of one subarray of a data set, sorted."""
    inv = get_inventory()
    rows = inv[inv["dataset"] == dataset]
    subs = rows["subarray"].astype(str).replace({"": "NONE", "nan": "NONE"})
    return sorted(set(rows.loc[subs == subarray, "group"]))


def get_group_row(dataset, group):
    """One inventory row of a group (its instrument, filter, pupil)."""
    inv = get_inventory()
    return inv[(inv["dataset"] == dataset) & (inv["group"] == group)].iloc[0]


def get_reference_spec(wildcards):
    """The ``standard.references`` entry for the group's instrument and filter, or {}."""
    from aperflow.apcorr import reference_spec

    row = get_group_row(wildcards.dataset, wildcards.group)
    refs = get_options(wildcards.dataset).get("references") or []
    return reference_spec(refs, row["instrument"], row["filter"]) or {}


def get_reference_file(wildcards):
    """The reference EE file of a group as an input (so the demo's tables are made
    first); empty when none is configured or the file neither exists nor is made."""
    spec = get_reference_spec(wildcards)
    if not spec:
        return []
    row = get_group_row(wildcards.dataset, wildcards.group)
    path = str(spec["path"]).format(filter=row["filter"].lower(), FILTER=row["filter"].upper())
    if os.path.exists(path) or os.path.normpath(path) in DEMO_OUTPUTS:
        return [path]
    return []


def get_standard_tables(stage):
    """Input function: the per-image ``stage`` tables of a group's images."""

    def inner(wildcards):
        images = get_group_images(wildcards.dataset, wildcards.group)
        return [f"results/{wildcards.dataset}/{stage}/{image}.ecsv" for image in images]

    return inner


def get_subarray_apcorr(wildcards):
    """The apcorr tables of every group of a subarray."""
    groups = get_subarray_groups(wildcards.dataset, wildcards.subarray)
    return [f"results/{wildcards.dataset}/apcorr/{g}.ecsv" for g in groups]


def get_standard_targets(dataset):
    """Final targets of a standard data set: group means, totals and plots."""
    groups = get_groups(dataset)
    subarrays = get_standard_subarrays(dataset)
    out = []
    for g in groups:
        out += [
            f"results/{dataset}/ee_mean/{g}.ecsv",
            f"results/{dataset}/sb_mean/{g}.ecsv",
            f"results/{dataset}/apcorr/{g}.ecsv",
            f"results/{dataset}/plots/ee/{g}.png",
            f"results/{dataset}/plots/sb/{g}.png",
        ]
    for s in subarrays:
        out += [f"results/{dataset}/totals/{s}.ecsv", f"results/{dataset}/plots/totals/{s}.png"]
    return out


MODE_TARGETS["standard"] = get_standard_targets
