"""Config checks that a JSON schema cannot express, run when the workflow is parsed.

The schemas (``workflow/schemas/*.schema.yaml``) refuse a misspelled key, a wrong type, an
empty radius list or a non-positive radius. What needs two keys at once is checked here,
on each data set's merged options (the global mode block updated by the data set's own),
so that nothing runs with a wrong sky annulus:

* ``field``: at least one aperture radius among ``radii``, ``radii_arcsec`` and
  ``radii_fwhm``; the sky annulus must satisfy ``inner < outer`` and start outside the
  largest aperture when both are known in the same unit (pixels, or FWHM multiples).
  Radii and annulus in different units (arcsec, FWHM, the apcorr table's ``skyin``) are
  only known per image: :func:`aperflow.photometry.measure_image` refuses that image.
* ``timeseries``: the option ranges of :class:`aperflow.timeseries.TimeseriesOptions` and
  an annulus (``background.method: annulus``) outside the largest radius.
* ``forced``: :func:`aperflow.forced.forced_options`, and an annulus in units of the
  region's size (``annulus_unit: scale``) that starts outside the region (inner > 1).
* ``standard``: the sky annulus is built at ``max(radii) + sky_gap``, outside the
  apertures by construction; nothing to compare.

An annulus overlapping the aperture puts the star's own light into its sky, so the flux is
too low by an amount nobody would notice in the tables: it is refused, not flagged.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["check_dataset_options"]

#: Sky annulus of the field mode when neither the config nor an apcorr table gives one.
FIELD_DEFAULT_ANNULUS = (10.0, 15.0)
#: Aperture radii of the field mode when the config has no ``radii`` key.
FIELD_DEFAULT_RADII = (3.0,)


def _key(name: str, spec: Mapping, mode: str, *path: str) -> str:
    """Config key of an option: ``datasets.<name>.<mode>.<path>`` when the data set's own
    block sets it, else the global ``<mode>.<path>``."""
    block = spec.get(mode) or {}
    for part in path:
        if not isinstance(block, Mapping) or part not in block:
            return ".".join((mode, *path))
        block = block[part]
    return ".".join(("datasets", name, mode, *path))


def _fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def _check_field(name: str, spec: Mapping, options: Mapping) -> list[str]:
    phot = options.get("photometry") or {}

    def key(*path: str) -> str:
        return _key(name, spec, "field", "photometry", *path)

    radii = phot.get("radii")
    radii = FIELD_DEFAULT_RADII if radii is None else list(radii)
    arcsec, fwhm = list(phot.get("radii_arcsec") or []), list(phot.get("radii_fwhm") or [])
    if not (radii or arcsec or fwhm):
        return [
            f"{key('radii')}, {key('radii_arcsec')} and {key('radii_fwhm')} are all empty: "
            "configure at least one aperture radius"
        ]
    annulus, annulus_fwhm = phot.get("annulus"), phot.get("annulus_fwhm")
    if annulus is not None:
        given, unit, where, largest, rkey = annulus, "px", key("annulus"), radii, key("radii")
    elif annulus_fwhm is not None:
        given, unit, where = annulus_fwhm, "FWHM", key("annulus_fwhm")
        largest, rkey = fwhm, key("radii_fwhm")
    elif phot.get("apcorr"):
        return []  # the apcorr table's skyin/skyout per filter: checked per image
    else:
        given, unit, largest, rkey = FIELD_DEFAULT_ANNULUS, "px", radii, key("radii")
        where = f"{key('annulus')} is null, so the default"
    return _annulus_problems(where, given, unit, rkey, largest)


def _annulus_problems(where: str, annulus, unit: str, rkey: str, radii) -> list[str]:
    inner, outer = (float(v) for v in annulus)
    if not 0 <= inner < outer:
        return [f"{where} {_fmt(annulus)} {unit}: the inner radius must be smaller than the outer"]
    if radii and inner <= max(float(r) for r in radii):
        return [
            f"{where} {_fmt(annulus)} {unit} starts inside the largest aperture radius "
            f"{max(float(r) for r in radii):g} {unit} of {rkey}: the sky would include the "
            "star's own light; make the inner radius larger than every aperture radius"
        ]
    return []


def _check_timeseries(name: str, spec: Mapping, options: Mapping) -> list[str]:
    from aperflow.timeseries import TimeseriesOptions

    try:
        opts = TimeseriesOptions.from_mapping(options)
    except (TypeError, ValueError) as exc:
        return [str(exc)]
    if opts.background_method != "annulus":
        return []
    where = _key(name, spec, "timeseries", "background", "annulus")
    return _annulus_problems(
        where, opts.annulus, "px", _key(name, spec, "timeseries", "radii"), opts.radii
    )


def _check_forced(name: str, spec: Mapping, options: Mapping) -> list[str]:
    from aperflow.forced import forced_options

    try:
        opts = forced_options(options)
    except (TypeError, ValueError) as exc:
        return [str(exc)]
    bkg = opts["background"]
    inner = float(bkg["annulus"][0])
    if bkg["annulus_unit"] == "scale" and inner <= 1.0:
        where = _key(name, spec, "forced", "background", "annulus")
        return [
            f"{where} {_fmt(bkg['annulus'])} (annulus_unit: scale, multiples of each region's "
            "size) starts inside the region: the sky would include the source's own light; "
            "make the inner value larger than 1"
        ]
    return []


_CHECKS = {"field": _check_field, "timeseries": _check_timeseries, "forced": _check_forced}


def check_dataset_options(name: str, mode: str, options: Mapping, spec: Mapping) -> list[str]:
    """Problems of one data set's merged options that the schema cannot see.

    Parameters
    ----------
    name : str
        Data-set name (for the config keys in the messages).
    mode : str
        Its mode.
    options : Mapping
        Its merged options (:func:`aperflow.datasets.mode_options`).
    spec : Mapping
        Its own config entry (tells a data-set override from the global block).

    Returns
    -------
    list of str
        One message per problem, naming the config key(s); empty when the options are fine.
    """
    check = _CHECKS.get(mode)
    return [] if check is None else check(name, spec, options)
