"""Rule photometry: multi-radius aperture photometry of one image at its detected sources
(one row per source; ECSV + Parquet). A failed image gives an empty table that says why."""

from aperflow.batches import timed
from aperflow.logs import job_logger
from aperflow.steps import field_photometry, job_step, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
params = snakemake.params
step = job_step(snakemake.input.image, params.image_options, log, params.image_threads)
apcorr = snakemake.input.apcorr[0] if snakemake.input.apcorr else None
out = snakemake.output
with timed(snakemake.rule, snakemake.wildcards.image):
    field_photometry(step, snakemake.input.sources, apcorr, out.table, out.parquet, params.options)
