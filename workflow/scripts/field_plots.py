"""Rules plot_field_*: per-group figures for the report (magnitude errors, positions of
all vs kept sources per image, background maps).

A group of a large program holds hundreds of images: the one-panel-per-image figures show
the first MAX_PANELS of them (by name; the title says so), and the magnitude-error figure
shows every image's sources as one series instead of one legend entry per image."""

from pathlib import Path

from astropy.table import vstack

from aperflow.background import read_background
from aperflow.batches import timed
from aperflow.datasets import image_id
from aperflow.logs import job_logger
from aperflow.photometry import radius_label
from aperflow.plots.field import plot_mag_error, plot_positions, plot_sky_maps
from aperflow.tables import read_table

MAX_PANELS = 12

log = job_logger(snakemake.log, snakemake.rule)
kind = snakemake.params.kind
group = snakemake.wildcards.group
label = (snakemake.params.options.get("catalog") or {}).get("plot_radius")
label = radius_label(label) if isinstance(label, int | float) else label
out = snakemake.output[0]
paths = snakemake.input.backgrounds if kind == "sky" else snakemake.input.tables
title = group
if kind != "magerr" and len(paths) > MAX_PANELS:
    title = f"{group}: the first {MAX_PANELS} of {len(paths)} images"
    paths = paths[:MAX_PANELS]
with timed(snakemake.rule, group):
    if kind == "sky":
        backgrounds = [read_background(p) for p in paths]
        plot_sky_maps(backgrounds, [image_id(p) for p in paths], out, title)
    else:
        tables = [read_table(p) for p in paths]
        names = [Path(p).stem for p in paths]
        measured = [t for t in tables if len(t)]
        if kind == "magerr" and len(tables) > MAX_PANELS and measured:
            tables = [vstack(measured, metadata_conflicts="silent")]
            names = [f"{len(measured)} images"]
        plot = plot_mag_error if kind == "magerr" else plot_positions
        plot(tables, names, out, title, label)
log.info("%s: %s plot of %d images written", group, kind, len(paths))
