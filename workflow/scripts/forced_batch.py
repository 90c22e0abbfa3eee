"""Rules forced_batch_*: the forced table and the regions plot of a batch of images in one
job (execution.batch_size > 1). Each image's files and logs are those of the one-image
rules; an image that fails gets its failed outputs and the others go on."""

from aperflow.batches import batch_members, member_log_path, run_batch
from aperflow.forced import forced_options
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.steps import ForcedMember, preload, run_forced_member

log = job_logger(snakemake.log, snakemake.rule)
out, params = snakemake.output, snakemake.params
steps = ("forced", "plot_forced_regions")
preload(*steps)  # imports before the timed work
options = forced_options(params.options)
# Read once for the batch; each member's log still lists the unusable region lines.
targets = read_targets(
    list(snakemake.input.regions), list(snakemake.input.coordinates),
    options["default_radius_arcsec"],
)  # fmt: skip
members = [
    ForcedMember(
        image=image,
        path=path,
        table=out.tables[k],
        plot=out.plots[k],
        logs={step: member_log_path(params.dataset, step, image) for step in steps},
    )
    for k, image, path in batch_members(snakemake.input.images, out.tables)
]
run_batch(
    members,
    lambda m: run_forced_member(m, targets, options, params.image_options),
    log,
    "no forced photometry",
)
