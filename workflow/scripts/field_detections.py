"""Rule plot_field_detections: the detections over the image with apertures and annuli
(a figure saying why when the image has no photometry)."""

from aperflow.batches import timed
from aperflow.logs import job_logger
from aperflow.steps import ImageStep, field_detections_plot, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
step = ImageStep(snakemake.input.image, snakemake.params.images, log)
image = snakemake.wildcards.image
with timed(snakemake.rule, image):
    field_detections_plot(step, snakemake.input.table, snakemake.output[0], image)
