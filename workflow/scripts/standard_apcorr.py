"""Rule apcorr: aperture corrections from the reference EE and the group's total."""

from aperflow.apcorr import apcorr_of_file
from aperflow.logs import job_logger
from aperflow.tables import write_table

log = job_logger(snakemake.log, "apcorr")
table = apcorr_of_file(snakemake.input.mean, snakemake.params.spec, snakemake.params.options, log)
write_table(table, snakemake.output.table)
