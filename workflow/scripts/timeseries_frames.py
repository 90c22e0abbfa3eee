"""Rule timeseries_frames: time, background, centroids and fluxes of every integration of
one file. A file that cannot be measured gives an empty table whose metadata say why (the
light curve leaves it out), so one bad file never stops the others."""

from aperflow.images import ImageError
from aperflow.logs import job_logger
from aperflow.tables import write_table
from aperflow.timeseries import failed_series, measure_series, summarise_series

log = job_logger(snakemake.log, snakemake.rule)
path = snakemake.input.image
try:
    table = measure_series(
        path, snakemake.params.options, snakemake.params.image_options, workers=snakemake.threads
    )
except (ImageError, ValueError) as exc:
    log.error("%s", exc)
    table = failed_series(path, str(exc))
else:
    for level, message in summarise_series(table):
        log.log(level, "%s: %s", path, message)
write_table(table, snakemake.output.table, parquet=snakemake.output.parquet)
