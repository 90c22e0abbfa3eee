"""Rule plot_field_detections: the detections over the image with apertures and annuli."""

from aperflow.images import open_image
from aperflow.logs import job_logger
from aperflow.plots.field import plot_detections
from aperflow.tables import read_table

log = job_logger(snakemake.log, snakemake.rule)
image = open_image(snakemake.input.image, **snakemake.params.images)
table = read_table(snakemake.input.table)
radius = float(table.meta["radii_px"][0])
annulus = [float(r) for r in table.meta["annulus_px"]]
plot_detections(image.data, table, snakemake.output[0], radius, annulus, snakemake.wildcards.image)
log.info("%s: %d sources drawn", snakemake.wildcards.image, len(table))
