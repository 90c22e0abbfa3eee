"""Data sets from the config: which files, in which mode, with which options.

A run is configured by ``datasets``, each a set of files and a mode::

    datasets:
      ngc346: {files: "data/ngc346/*_cal.fits", mode: field}

File patterns are resolved here, in Python, and sorted, never by Snakemake's
``glob_wildcards``: the workflow, its reruns and its tests all see the same list. Files
that a rule will create (the built-in demo data) are passed as ``expected`` so that a
pattern matches them before they exist.
"""

from __future__ import annotations

import copy
import fnmatch
import glob
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aperflow.validation import check_dataset_options

__all__ = [
    "MODES",
    "ConfigError",
    "canonical",
    "check_duplicate_keys",
    "Dataset",
    "deep_merge",
    "image_id",
    "mode_options",
    "resolve_datasets",
    "resolve_files",
]

MODES = ("field", "standard", "timeseries", "forced")
_FITS_SUFFIX = re.compile(r"\.(fits?|fts)(\.(gz|fz|bz2))?$", re.IGNORECASE)


class ConfigError(ValueError):
    """The config cannot be run; the message names the key and the problem."""


@dataclass
class Dataset:
    """One configured data set: its name, mode, options and resolved images.

    ``images`` maps an image id (the file name without ``.fits[.gz]``) to its path.
    """

    name: str
    mode: str
    options: dict
    spec: dict = field(repr=False)
    images: dict[str, str] = field(default_factory=dict)


def check_duplicate_keys(path: str | os.PathLike) -> None:
    """Refuse a YAML config whose mappings repeat a key (e.g. two data sets of one name):
    YAML loaders silently keep the last one, which would drop a data set unseen.

    Raises
    ------
    ConfigError
        Naming the file, the key and the line of the repeated key.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{path}: key {key!r} appears twice (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}); the second would silently replace the first"
                )
            seen[key] = key_node.start_mark.line + 1
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    with open(path) as stream:
        yaml.load(stream, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def image_id(path: str | os.PathLike) -> str:
    """Image id of a file: its name without the FITS suffix (``x_cal.fits.gz`` -> ``x_cal``)."""
    return _FITS_SUFFIX.sub("", Path(path).name)


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares a rule's params by their text; sorted keys make options that only
    differ in the order of the config file's keys the same, so they rerun nothing.
    """
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def mode_options(config: Mapping, name: str) -> dict:
    """Options of data set ``name``: the global block of its mode updated by the data set's
    own block of the same name (``datasets.<name>.<mode>``), plus the data set's keys;
    keys sorted (:func:`canonical`)."""
    spec = config["datasets"][name]
    mode = spec["mode"]
    options = deep_merge(config.get(mode, {}) or {}, spec.get(mode, {}) or {})
    for key, value in spec.items():
        if key not in ("files", "mode", *MODES):
            options[key] = copy.deepcopy(value)
    return canonical(options)


def resolve_files(
    patterns: str | Iterable[str], expected: Iterable[str] = (), base: str = "."
) -> list[str]:
    """Sorted, unique files matching glob ``patterns`` (relative to ``base``).

    ``expected`` are paths that do not exist yet but will (outputs of a rule); those that
    match a pattern are included.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    expected = [os.path.normpath(p) for p in expected]
    found: set[str] = set()
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        found.update(
            os.path.relpath(p, base) if not os.path.isabs(pattern) else p
            for p in glob.glob(full, recursive=True)
            if os.path.isfile(p)
        )
        norm = os.path.normpath(pattern)
        found.update(p for p in expected if fnmatch.fnmatchcase(p, norm))
    return sorted(os.path.normpath(p) for p in found)


def resolve_datasets(
    config: Mapping, expected: Iterable[str] = (), base: str = "."
) -> dict[str, Dataset]:
    """Resolve every configured data set into a :class:`Dataset`.

    Raises
    ------
    ConfigError
        When a data set's pattern matches no file, a mode is unknown, two files of one
        data set share an image id, or its options fail
        :func:`aperflow.validation.check_dataset_options` (e.g. a sky annulus inside the
        apertures).
    """
    datasets = config.get("datasets") or {}
    if not datasets:
        raise ConfigError("config key 'datasets' is empty: configure at least one data set")
    expected = list(expected)
    out = {}
    for name in sorted(datasets):
        spec = datasets[name]
        mode = spec.get("mode")
        if mode not in MODES:
            raise ConfigError(f"datasets.{name}.mode: {mode!r} is not one of {', '.join(MODES)}")
        files = resolve_files(spec.get("files", []), expected, base)
        if not files:
            raise ConfigError(
                f"datasets.{name}.files: {spec.get('files')!r} matches no file "
                f"(relative to {os.path.abspath(base)})"
            )
        images: dict[str, str] = {}
        for path in files:
            key = image_id(path)
            if key in images:
                raise ConfigError(
                    f"datasets.{name}.files: {images[key]} and {path} have the same name "
                    f"{key!r}; outputs are named after it, so rename one or split the data set"
                )
            images[key] = path
        options = mode_options(config, name)
        problems = check_dataset_options(name, mode, options, spec)
        if problems:
            raise ConfigError(f"datasets.{name}: " + "; ".join(problems))
        out[name] = Dataset(name, mode, options, dict(spec), images)
    return out
