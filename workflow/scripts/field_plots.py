"""Rules plot_field_*: per-group figures for the report (magnitude errors, positions of
all vs kept sources per image, background maps).

A group of a large program holds hundreds of images: the one-panel-per-image figures show
the first 12 of them (by name, the only ones the rules pass in; the title says so),
and the magnitude-error figure shows every image's sources as one series instead of one
legend entry per image, read from a few columns of each image's Parquet table (seconds for
thousands of images, where astropy's reading of each file's metadata takes a minute)."""

from pathlib import Path

from aperflow.background import read_background
from aperflow.batches import timed
from aperflow.datasets import image_id
from aperflow.logs import job_logger
from aperflow.photometry import radius_label
from aperflow.plots.field import one_series, plot_mag_error, plot_positions, plot_sky_maps
from aperflow.tables import read_table

MAX_SERIES = 12  # more images than this: one series in the magnitude-error plot


log = job_logger(snakemake.log, snakemake.rule)
kind = snakemake.params.kind
group = snakemake.wildcards.group
label = (snakemake.params.options.get("catalog") or {}).get("plot_radius")
label = radius_label(label) if isinstance(label, int | float) else label
out = snakemake.output[0]
paths = snakemake.input.backgrounds if kind == "sky" else snakemake.input.tables
# The one-panel-per-image plots get only their first images (field_common.smk).
n_images = snakemake.params.get("n_images", len(paths))
title = (
    group if n_images == len(paths) else f"{group}: the first {len(paths)} of {n_images} images"
)
with timed(snakemake.rule, group):
    if kind == "sky":
        backgrounds = [read_background(p) for p in paths]
        plot_sky_maps(backgrounds, [image_id(p) for p in paths], out, title)
    elif (
        kind == "magerr"
        and len(paths) > MAX_SERIES
        and (table := one_series(paths, label)) is not None
    ):
        series = f"{len(set(table['image']))} images"
        plot_mag_error([table], [series], out, title, label)
        log.info("%s: one series of the sources of %s", group, series)
    else:
        tables = [read_table(p) for p in paths]
        names = [Path(p).stem for p in paths]
        plot = plot_mag_error if kind == "magerr" else plot_positions
        plot(tables, names, out, title, label)
log.info("%s plot of %d images written: %s", kind, len(paths), title)
