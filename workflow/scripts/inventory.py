"""Checkpoint inventory: one row per input image, read from the headers."""

from aperflow.datasets import Dataset
from aperflow.inventory import build_inventory
from aperflow.logs import job_logger
from aperflow.tables import write_table

log = job_logger(snakemake.log, "inventory")
datasets = {
    name: Dataset(name, spec["mode"], {}, {}, spec["images"])
    for name, spec in snakemake.params.datasets.items()
}
table = build_inventory(datasets, workers=snakemake.threads)
bad = [row["image"] for row in table if row["error"]]
log.info("%d images, %d left out%s", len(table), len(bad), f": {', '.join(bad)}" if bad else "")
write_table(table, snakemake.output.table)
