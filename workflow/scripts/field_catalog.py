"""Rule catalog: the photometry tables of one group (dithers) merged by sky position into
one row per star with weighted-mean fluxes; ECSV + Parquet and a DS9 region file. The
per-image tables are read from their Parquet files (aperflow.catalog.merge_catalog_files:
seconds for thousands of images, where astropy's reading takes a minute)."""

from pathlib import Path

import numpy as np

from aperflow.batches import timed
from aperflow.catalog import merge_catalog_files, write_regions
from aperflow.logs import job_logger
from aperflow.tables import write_table

log = job_logger(snakemake.log, snakemake.rule)
cat_opts = dict(snakemake.params.options.get("catalog") or {})
region_radius = cat_opts.pop("region_radius_arcsec", 0.2)
cat_opts.pop("plot_radius", None)
with timed(snakemake.rule, snakemake.wildcards.group):
    paths = list(snakemake.input.tables)
    catalog = merge_catalog_files(paths, [Path(p).stem for p in paths], **cat_opts)
    catalog.meta["group"] = snakemake.wildcards.group
    write_table(catalog, snakemake.output.table, snakemake.output.parquet)
    write_regions(catalog, snakemake.output.regions, radius_arcsec=region_radius)
if len(catalog) == 0:
    log.warning(
        "group %s: no sources in any of its %d images: empty catalog",
        snakemake.wildcards.group,
        len(paths),
    )
else:
    label = catalog.meta["radii_labels"][0]
    rchi2 = np.asarray(catalog[f"rchi2_{label}"], float)
    rchi2 = np.nanmedian(rchi2) if np.isfinite(rchi2).any() else np.nan
    log.info(
        "group %s: %d stars from %d detections in %d images; median reduced chi2 at %s: %.3g",
        snakemake.wildcards.group,
        len(catalog),
        catalog.meta["n_detections"],
        len(paths),
        label,
        rchi2,
    )
