"""Rule detect: sources of one image (DAOFIND / starfind / segmentation) on the
background-subtracted pixels. A failed image or background gives an empty table whose
metadata say why; an image without point sources gives an empty table and a clear log line.
"""

from aperflow.batches import timed
from aperflow.logs import job_logger
from aperflow.steps import field_detect, job_step, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
params = snakemake.params
step = job_step(snakemake.input.image, params.image_options, log, params.image_threads)
with timed(snakemake.rule, snakemake.wildcards.image):
    field_detect(step, snakemake.input.background, snakemake.output.table, params.options)
