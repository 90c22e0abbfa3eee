"""Rule forced_catalog: one row per region, one block of columns per filter."""

import numpy as np

from aperflow.forced import wide_catalog
from aperflow.logs import job_logger
from aperflow.tables import read_table, write_table

log = job_logger(snakemake.log, snakemake.rule)
bands = {}
for path in snakemake.input.tables:
    table = read_table(path)
    bands[table.meta["filter"]] = table
wide = wide_catalog(bands)
filters = wide.meta.get("filters", [])
if filters:
    covered = np.zeros(len(wide), dtype=bool)
    for band in filters:
        covered |= np.asarray(bands[band]["n_covering"]) > 0
    outside = [str(i) for i, c in zip(wide["id"], covered, strict=True) if not c]
    if outside:
        log.warning("regions outside every image: %s", ", ".join(outside))
log.info("%d regions in %d filters: %s", len(wide), len(filters), ", ".join(filters))
write_table(wide, snakemake.output.table, parquet=snakemake.output.parquet)
