"""Plots of the forced mode: the regions over each image, and fluxes per filter."""

from pathlib import Path

from aperflow.forced import forced_options
from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger
from aperflow.plots.forced import plot_fluxes, plot_message, plot_regions
from aperflow.tables import read_table

log = job_logger(snakemake.log, snakemake.rule)
out = snakemake.output[0]
plots = forced_options(snakemake.params.options)["plots"]
if snakemake.rule == "plot_forced_regions":
    table = read_table(snakemake.input.table)
    title = Path(snakemake.input.image).name
    try:
        image = open_image(snakemake.input.image, **snakemake.params.image_options)
    except ImageError as exc:
        log.error("%s", exc)
        plot_message(out, title, str(exc))
    else:
        plot_regions(
            image.data, table, out, title=f"{title} ({table.meta.get('filter', '')})",
            max_regions=plots["max_regions"], cutout_scale=plots["cutout_scale"],
        )  # fmt: skip
else:
    plot_fluxes(read_table(snakemake.input.catalog), out, max_regions=plots["max_regions"])
log.info("wrote %s", out)
