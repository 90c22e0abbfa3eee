"""Rule total_flux: one table of total count rates (and Jy, AB mag) per subarray."""

from aperflow.apcorr import totals_table
from aperflow.logs import job_logger
from aperflow.tables import provenance, read_table, write_table

log = job_logger(snakemake.log, "total_flux")
table = totals_table([read_table(p) for p in snakemake.input.tables])
table.meta.update(provenance(subarray=snakemake.wildcards.subarray, inputs=list(snakemake.input)))
for row in table:
    log.info(
        "%s: %.6g +- %.3g %s -> %.4g %s, mag %.4f (%s)", row["filter"], row["countrate"],
        row["countrate_err"], row["countrate_unit"], row["flux"], row["flux_unit"], row["mag"],
        row["mag_system"],
    )  # fmt: skip
write_table(table, snakemake.output.table)
