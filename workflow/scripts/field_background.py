"""Rule background: the sky background map and its RMS of one image (FITS: BKG, RMS).
An image that cannot be used gives a 'failed' background whose note says why, so that
detection and photometry write empty tables and the other images go on."""

import numpy as np

from aperflow.background import Background, background_of_image, write_background
from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger

log = job_logger(snakemake.log, snakemake.rule)
options = snakemake.params.options
path = snakemake.input.image
try:
    image = open_image(path, **snakemake.params.image_options)
    bkg = background_of_image(image, options.get("background"), options.get("mask_zeros", True))
except (ImageError, ValueError) as exc:
    log.error("%s: no background: %s", path, exc)
    nan = np.full((1, 1), np.nan, np.float32)
    bkg = Background(nan, nan, np.nan, np.nan, "failed", f"{path}: {exc}")
else:
    log.info(
        "%s: background %s = %.5g, rms %.4g (%s)",
        path,
        bkg.method,
        bkg.median,
        bkg.std,
        bkg.note,
    )
write_background(bkg, snakemake.output.fits, image=str(path))
