"""Rule background: the sky background map and its RMS of one image (FITS: BKG, RMS).
An image that cannot be used gives a 'failed' background whose note says why, so that
detection and photometry write empty tables and the other images go on."""

from aperflow.batches import timed
from aperflow.logs import job_logger
from aperflow.steps import field_background, job_step, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
params = snakemake.params
step = job_step(snakemake.input.image, params.image_options, log, params.image_threads)
with timed(snakemake.rule, snakemake.wildcards.image):
    field_background(step, snakemake.output.fits, params.options)
