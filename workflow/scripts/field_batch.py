"""Rules field_batch_*: background, detect, photometry and the detections plot of a batch of
images in one job (execution.batch_size > 1). Each image's files and logs are those of the
one-image rules; an image that fails gets its failed outputs and the others go on."""

from aperflow.batches import batch_members, member_log_path, run_batch
from aperflow.logs import job_logger
from aperflow.steps import FieldMember, preload, run_field_member

log = job_logger(snakemake.log, snakemake.rule)
out, params = snakemake.output, snakemake.params
steps = ("background", "detect", "photometry", "plot_field_detections")
preload(*steps)  # imports before the timed work
members = [
    FieldMember(
        image=image,
        path=path,
        background=out.backgrounds[k],
        sources=out.sources[k],
        photometry=out.photometry[k],
        parquet=out.parquet[k],
        plot=out.plots[k],
        logs={step: member_log_path(params.dataset, step, image) for step in steps},
    )
    for k, image, path in batch_members(snakemake.input.images, out.photometry)
]
apcorr = snakemake.input.apcorr[0] if snakemake.input.apcorr else None
run_batch(
    members,
    lambda m: run_field_member(
        m, params.options, params.image_options, apcorr, params.image_threads
    ),
    log,
    "no photometry",
)
