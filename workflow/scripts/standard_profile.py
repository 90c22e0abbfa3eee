"""Rules ee_profile / sb_profile: curve of growth or SB profile of the standard star in
one image. A file that cannot be measured gives a table of NaNs whose metadata say why
(the group mean leaves it out), so one bad image never stops the others."""

from aperflow.images import ImageError, open_image
from aperflow.logs import job_logger
from aperflow.profiles import ProfileError, ee_profile, failed_profile, sb_profile
from aperflow.tables import write_table

log = job_logger(snakemake.log, snakemake.rule)
kind = "ee" if snakemake.rule == "ee_profile" else "sb"
path = snakemake.input.image
try:
    image = open_image(path, **snakemake.params.image_options)
    measure = ee_profile if kind == "ee" else sb_profile
    table = measure(image, snakemake.params.options)
except (ImageError, ProfileError) as exc:
    log.error("%s", exc)
    table = failed_profile(kind, snakemake.params.options, str(path), str(exc))
else:
    m = table.meta
    log.info(
        "%s: star at (%.3f, %.3f) [0-based], sky %.4g +- %.4g from %d px, core: %d saturated,"
        " %d bad",
        path, m["x"], m["y"], m["sky"], m["sky_std"], m["n_sky"], m["n_core_saturated"],
        m["n_core_bad"],
    )  # fmt: skip
    if m["centroid_flags"]:
        log.warning("%s: centroid failed or moved too far; the target position was used", path)
    if kind == "ee":
        log.info(
            "%s: %d pixels repaired (%s) at x=%s y=%s; %d could not be repaired",
            path, m["n_repaired"], m["repair_method"], m["repaired_x"], m["repaired_y"],
            m["n_repair_failed"],
        )  # fmt: skip
write_table(table, snakemake.output.table)
