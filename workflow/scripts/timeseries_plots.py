"""Rule timeseries_plots: light curves, centroids, flux vs centroid, scatter matrix and
precision of one time-series data set."""

from aperflow.logs import job_logger
from aperflow.plots.timeseries import plot_all
from aperflow.tables import read_table
from aperflow.timeseries import TimeseriesOptions

log = job_logger(snakemake.log, snakemake.rule)
opts = TimeseriesOptions.from_mapping(snakemake.params.options)
plot_all(
    read_table(snakemake.input.table),
    read_table(snakemake.input.precision),
    dict(snakemake.output.items()),
    bin_size=opts.plot_bin,
    max_points=opts.plot_max_points,
)
log.info("wrote %s", ", ".join(snakemake.output))
