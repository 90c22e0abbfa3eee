"""Rule forced: the data set's regions measured on one image. An image that cannot be
opened gives an empty table whose metadata say why, so one bad image never stops the
others; regions off the image and unusable region lines are logged."""

from aperflow.forced import failed_table, forced_options, image_filter, measure_image
from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.tables import write_table

log = job_logger(snakemake.log, snakemake.rule)
options = forced_options(snakemake.params.options)
path = snakemake.input.image
targets = read_targets(
    list(snakemake.input.regions), list(snakemake.input.coordinates),
    options["default_radius_arcsec"],
)  # fmt: skip
for problem in targets.problems:
    log.warning("%s", problem)
try:
    image = open_image(path, **snakemake.params.image_options)
except ImageError as exc:
    log.error("%s", exc)
    band = image_filter("", path, options.get("filter_from_name"))
    table = failed_table(path, str(exc), band)
else:
    table = measure_image(image, targets, options)
    m = table.meta
    log.info(
        "%s: filter %s, %d of %d regions measured, %s magnitudes (zero point %.4f: %s)",
        path, m["filter"], len(table), len(targets), m["mag_system"], m["zeropoint"],
        m["calibration"],
    )  # fmt: skip
    if m["off_image"]:
        log.info("not on this image: %s", ", ".join(m["off_image"]))
table.meta["region_problems"] = list(targets.problems)
write_table(table, snakemake.output.table)
