"""Rule lightcurve: the per-integration tables of a data set joined, sorted by time and
normalised, and the precision per aperture radius."""

from aperflow.logs import job_logger
from aperflow.tables import read_table, write_table
from aperflow.timeseries import light_curve, precision

log = job_logger(snakemake.log, snakemake.rule)
tables = []
for path in snakemake.input.tables:
    table = read_table(path)
    if table.meta.get("error"):
        log.warning("%s left out: %s", path, table.meta["error"])
        continue
    tables.append(table)
lc = light_curve(tables)
prec = precision(lc)
lc.meta["best_radius"] = prec.meta["best_radius"]
log.info(
    "%d integrations from %d files, sorted by %s; %d duplicate times",
    len(lc), len(tables), lc.meta["time_column"], lc.meta["n_duplicate_times"],
)  # fmt: skip
for row in prec:
    log.info(
        "r=%g px: ptp %.1f ppm, std %.1f ppm, expected %.1f ppm (photon %.1f)%s",
        row["radius"], row["ptp_ppm"], row["std_ppm"], row["expected_ppm"],
        row["photon_ppm"], "  <- best" if row["best"] else "",
    )  # fmt: skip
write_table(lc, snakemake.output.table, parquet=snakemake.output.parquet)
write_table(prec, snakemake.output.precision)
