"""Plots of the forced mode: the regions over each image, and fluxes per filter."""

from aperflow.batches import timed
from aperflow.forced import forced_options
from aperflow.images import ImageError
from aperflow.logs import job_logger
from aperflow.plots.forced import plot_fluxes
from aperflow.steps import ImageStep, forced_regions_plot, preload
from aperflow.tables import read_table

log = job_logger(snakemake.log, snakemake.rule)
out = snakemake.output[0]
plots = forced_options(snakemake.params.options)["plots"]
if snakemake.rule == "plot_forced_regions":
    preload(snakemake.rule)  # imports before the timed work
    image_options = snakemake.params.image_options
    step = ImageStep(snakemake.input.image, image_options, log, catch=(ImageError,))
    with timed(snakemake.rule, snakemake.wildcards.image):
        forced_regions_plot(step, snakemake.input.table, out, plots)
else:
    with timed(snakemake.rule, snakemake.wildcards.dataset):
        plot_fluxes(read_table(snakemake.input.catalog), out, max_regions=plots["max_regions"])
    log.info("wrote %s", out)
