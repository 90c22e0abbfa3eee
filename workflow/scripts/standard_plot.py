"""Plots of the standard mode: curves of growth, SB profiles, totals per subarray."""

from aperflow.logs import job_logger
from aperflow.plots.standard import plot_ee, plot_sb, plot_totals
from aperflow.tables import read_table

log = job_logger(snakemake.log, snakemake.rule)
out = snakemake.output[0]
kind = snakemake.params.kind
if kind == "ee":
    plot_ee(read_table(snakemake.input.mean), read_table(snakemake.input.apcorr), out)
elif kind == "sb":
    plot_sb(read_table(snakemake.input.mean), out)
else:
    plot_totals(read_table(snakemake.input.totals), out, snakemake.wildcards.subarray)
log.info("wrote %s", out)
