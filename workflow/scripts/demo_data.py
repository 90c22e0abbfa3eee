"""Rule demo_data: write the simulated demo images and their truth tables."""

from aperflow.logs import job_logger
from aperflow.simulate import simulate_demo

log = job_logger(snakemake.log, "demo_data")
written = simulate_demo(snakemake.params.outdir, seed=snakemake.params.seed)
for kind, paths in written.items():
    log.info("%s: %d images", kind, len(paths))
