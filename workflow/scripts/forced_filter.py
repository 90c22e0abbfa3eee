"""Rule forced_filter: per-filter catalog, the inverse-variance mean of every region over
the images of that filter which cover it."""

from aperflow.forced import combine_band, forced_options
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.tables import read_table, write_table

log = job_logger(snakemake.log, snakemake.rule)
options = forced_options(snakemake.params.options)
band = snakemake.wildcards.band
targets = read_targets(
    list(snakemake.input.regions), list(snakemake.input.coordinates),
    options["default_radius_arcsec"],
)  # fmt: skip
tables = [read_table(p) for p in snakemake.input.tables]
for t in tables:
    for problem in t.meta.get("problems") or []:
        log.warning("%s", problem)
catalog = combine_band(tables, targets, band, options["exclude_flags"])
outside = [str(i) for i, n in zip(catalog["id"], catalog["n_covering"], strict=True) if n == 0]
if outside:
    log.warning(
        "filter %s: %d region(s) on no image of this filter: %s", band, len(outside),
        ", ".join(outside),
    )  # fmt: skip
log.info(
    "filter %s: %d images, %d regions, %d measured (%s)", band, len(tables), len(catalog),
    int((catalog["n_images"] > 0).sum()), catalog.meta["mag_system"],
)  # fmt: skip
write_table(catalog, snakemake.output.table, parquet=snakemake.output.parquet)
