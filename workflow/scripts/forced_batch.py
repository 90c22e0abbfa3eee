"""Rules forced_batch_*: the forced table and the regions plot of a batch of images in one
job (execution.batch_size > 1). Each image's files and logs are those of the one-image
rules; an image that fails gets its failed outputs and the others go on."""

from aperflow.batches import run_batch
from aperflow.forced import forced_options
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.steps import ForcedMember, preload, run_forced_member

log = job_logger(snakemake.log.batch, snakemake.rule)
out, logs, params = snakemake.output, snakemake.log, snakemake.params
preload("forced", "plot_forced_regions")  # imports before the timed work
options = forced_options(params.options)
# Read once for the batch; each member's log still lists the unusable region lines.
targets = read_targets(
    list(snakemake.input.regions), list(snakemake.input.coordinates),
    options["default_radius_arcsec"],
)  # fmt: skip
images = zip(params.images, params.paths, strict=True)
members = [
    ForcedMember(
        image=image,
        path=path,
        table=out.tables[k],
        plot=out.plots[k],
        logs={"forced": logs.forced[k], "plot_forced_regions": logs.plot_forced_regions[k]},
    )
    for k, (image, path) in enumerate(images)
]
run_batch(
    members,
    lambda m: run_forced_member(m, targets, options, params.image_options),
    log,
    "no forced photometry",
)
