"""Rule background: the sky background map and its RMS of one image (FITS: BKG, RMS).
An image that cannot be used gives a 'failed' background whose note says why, so that
detection and photometry write empty tables and the other images go on."""

from aperflow.batches import timed
from aperflow.logs import job_logger
from aperflow.steps import ImageStep, field_background, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
step = ImageStep(snakemake.input.image, snakemake.params.image_options, log)
with timed(snakemake.rule, snakemake.wildcards.image):
    field_background(step, snakemake.output.fits, snakemake.params.options)
