"""Rule detect: sources of one image (DAOFIND / starfind / segmentation) on the
background-subtracted pixels. A failed image or background gives an empty table whose
metadata say why; an image without point sources gives an empty table and a clear log line.
"""

from aperflow.background import read_background
from aperflow.detection import detect_image, find_sources
from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger
from aperflow.tables import write_table

log = job_logger(snakemake.log, snakemake.rule)
options = snakemake.params.options
det = options.get("detection") or {}
path = snakemake.input.image
bkg = read_background(snakemake.input.background)
try:
    if bkg.method == "failed":
        raise ValueError(bkg.note)
    image = open_image(path, **snakemake.params.image_options)
    sources = detect_image(image, bkg, det, options.get("mask_zeros", True))
except (ImageError, ValueError) as exc:
    log.error("%s: no detection: %s", path, exc)
    sources = find_sources([[0.0]], 1.0, fwhm=1.0)[:0]
    sources.meta["error"] = str(exc)
else:
    m = sources.meta
    if len(sources) == 0:
        log.warning(
            "%s: no point sources above %.3g sigma (FWHM %.3g px, %s): empty source list",
            path,
            m["threshold_sigma"],
            m["fwhm_px"],
            m["method"],
        )
    else:
        log.info(
            "%s: %d sources above %.3g sigma with %s, FWHM %.3g px (%s)",
            path,
            len(sources),
            m["threshold_sigma"],
            m["method"],
            m["fwhm_px"],
            m["fwhm_from"],
        )
write_table(sources, snakemake.output.table)
