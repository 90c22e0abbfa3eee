"""Rules plot_field_*: per-group figures for the report (magnitude errors, positions of
all vs kept sources per image, background maps)."""

from pathlib import Path

from aperflow.background import read_background
from aperflow.batches import timed
from aperflow.datasets import image_id
from aperflow.logs import job_logger
from aperflow.photometry import radius_label
from aperflow.plots.field import plot_mag_error, plot_positions, plot_sky_maps
from aperflow.tables import read_table

log = job_logger(snakemake.log, snakemake.rule)
kind = snakemake.params.kind
group = snakemake.wildcards.group
label = (snakemake.params.options.get("catalog") or {}).get("plot_radius")
label = radius_label(label) if isinstance(label, int | float) else label
out = snakemake.output[0]
with timed(snakemake.rule, group):
    if kind == "sky":
        paths = snakemake.input.backgrounds
        backgrounds = [read_background(p) for p in paths]
        plot_sky_maps(backgrounds, [image_id(p) for p in paths], out, group)
    else:
        paths = snakemake.input.tables
        tables = [read_table(p) for p in paths]
        plot = plot_mag_error if kind == "magerr" else plot_positions
        plot(tables, [Path(p).stem for p in paths], out, group, label)
log.info("%s: %s plot of %d images written", group, kind, len(paths))
