"""Rule forced_archive (off by default): download from MAST the images that cover the
data set's regions into ``forced.archive.outdir/<dataset>/``, reusing files already there.
Point the data set's ``files`` at that folder; new files join at the next run."""

from pathlib import Path

from aperflow.archive import fetch_images
from aperflow.forced import forced_options
from aperflow.logs import job_logger
from aperflow.regions import read_targets
from aperflow.tables import provenance, write_table

log = job_logger(snakemake.log, snakemake.rule)
options = forced_options(snakemake.params.options)
archive = options["archive"]
outdir = Path(archive["outdir"]) / snakemake.wildcards.dataset
targets = read_targets(
    list(snakemake.input.regions), list(snakemake.input.coordinates),
    options["default_radius_arcsec"],
)  # fmt: skip
for problem in targets.problems:
    log.warning("%s", problem)
table = fetch_images(targets, outdir, archive)
n_new = int((table["status"] == "downloaded").sum()) if len(table) else 0
log.info("%d products in %s: %d downloaded, %d reused", len(table), outdir, n_new,
         int((table["status"] == "reused").sum()) if len(table) else 0)  # fmt: skip
if n_new:
    log.warning("new files in %s: run the workflow again to measure them", outdir)
table.meta.update(provenance(outdir=str(outdir), archive={k: v for k, v in archive.items()}))
write_table(table, snakemake.output.table)
