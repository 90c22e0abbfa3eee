"""Rule forced: the data set's regions measured on one image. An image that cannot be
opened gives an empty table whose metadata say why, so one bad image never stops the
others; regions off the image and unusable region lines are logged."""

from aperflow.batches import timed
from aperflow.forced import forced_options
from aperflow.images import ImageError
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.steps import ImageStep, forced_image, preload

log = job_logger(snakemake.log, snakemake.rule)
preload(snakemake.rule)  # imports before the timed work
options = forced_options(snakemake.params.options)
step = ImageStep(snakemake.input.image, snakemake.params.image_options, log, catch=(ImageError,))
with timed(snakemake.rule, snakemake.wildcards.image):
    targets = read_targets(
        list(snakemake.input.regions), list(snakemake.input.coordinates),
        options["default_radius_arcsec"],
    )  # fmt: skip
    forced_image(step, targets, snakemake.output.table, options)
