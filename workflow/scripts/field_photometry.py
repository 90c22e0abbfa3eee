"""Rule photometry: multi-radius aperture photometry of one image at its detected sources
(one row per source; ECSV + Parquet). A failed image gives an empty table that says why."""

from astropy.table import Table

from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger
from aperflow.photometry import measure_from_options
from aperflow.tables import read_table, write_table

log = job_logger(snakemake.log, snakemake.rule)
options = snakemake.params.options
path = snakemake.input.image
sources = read_table(snakemake.input.sources)
apcorr = snakemake.input.apcorr[0] if snakemake.input.apcorr else None
try:
    if "error" in sources.meta:
        raise ValueError(sources.meta["error"])
    image = open_image(path, **snakemake.params.image_options)
    table = measure_from_options(image, sources, options, apcorr)
except (ImageError, ValueError) as exc:
    log.error("%s: no photometry: %s", path, exc)
    table = Table(meta={"image": str(path), "error": str(exc)})
else:
    m = table.meta
    log.info(
        "%s: %d sources, radii %s px, annulus %s px (%s), sky %s, %s magnitudes (%s)",
        path,
        len(table),
        m["radii_px"],
        m["annulus_px"],
        m["annulus_from"],
        m["sky_statistic"],
        m["magnitude_system"],
        m["calibration"],
    )
    if len(table) == 0:
        log.warning("%s: no sources to measure: empty photometry table", path)
write_table(table, snakemake.output.table, snakemake.output.parquet)
