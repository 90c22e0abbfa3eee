"""Rules ee_mean / sb_mean: mean profile over the dithers of one group (meanflux1 /
meanSB1); images whose profile failed are left out and named in the log."""

from aperflow.logs import job_logger
from aperflow.profiles import mean_profile_of_files
from aperflow.tables import write_table

log = job_logger(snakemake.log, snakemake.rule)
table = mean_profile_of_files(list(snakemake.input.tables), snakemake.params.kind, log)
write_table(table, snakemake.output.table)
