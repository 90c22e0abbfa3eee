"""Batches of images per workflow job.

Snakemake pays for every job: scheduling, and for a ``script:`` job a Python start-up with
the astropy/photutils imports (1-2 s); on SLURM every submission adds ``sbatch`` + ``srun``
+ a Snakemake start-up (5-12 s). With thousands of small images that costs more than the
photometry. With ``execution.batch_size`` > 1 the per-image rules of a data set become one
job per batch of images (``workflow/rules/field.smk``, ``forced.smk``) that writes the very
same per-image files and logs as the one-image jobs, through the same step functions
(:mod:`aperflow.steps`). This module decides which images go together
(:func:`plan_batches`) and gives each member of a batch its own log, timing line and
failure isolation (:func:`member_log`, :func:`timed`), so that one bad image never costs
the others their outputs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "allowed_rules",
    "batch_mem_mb",
    "batch_members",
    "batch_nice",
    "batch_runtime",
    "batch_size",
    "file_size_mb",
    "file_workers",
    "image_threads",
    "image_workers",
    "image_list_path",
    "listed_sizes_mb",
    "member_log",
    "member_log_path",
    "plan_batches",
    "read_image_list",
    "read_timings",
    "rule_name",
    "run_batch",
    "timed",
]

#: Logger of the timing lines (INFO, so never a problem in ``results/problems.ecsv``).
TIMING_LOGGER = "aperflow.timing"


def batch_size(config: Mapping) -> int:
    """``execution.batch_size`` of a workflow config (1, one job per image, when absent)."""
    return int((config.get("execution") or {}).get("batch_size", 1) or 1)


#: Image files from this size (MB) up get ``execution.image_threads`` threads in their
#: background, detection and photometry; smaller ones one (threads cost more than they
#: gain on a small image, and the cores are better spent on other images' jobs).
THREADS_MIN_MB = 32.0


def image_threads(config: Mapping) -> int:
    """``execution.image_threads`` of a workflow config (2 when absent)."""
    return int((config.get("execution") or {}).get("image_threads", 2) or 1)


def image_workers(sizes_mb: Iterable[float], threads: int) -> int:
    """Threads of a per-image field step: ``threads`` when the largest of the image files
    (sizes in MB) is at least :data:`THREADS_MIN_MB`, else 1.

    A function of the files and the config only, never of the cores Snakemake grants, so
    that the outputs of a rerun are identical whatever ``--cores`` (the detection's strips
    move ``y`` in the last bit).
    """
    return int(threads) if max(sizes_mb, default=0.0) >= THREADS_MIN_MB else 1


def file_size_mb(path: str | Path) -> float:
    """Size of a file in MB (1e6 bytes)."""
    return Path(path).stat().st_size / 1e6


def _size_mb_or_zero(path: str | Path) -> float:
    """:func:`file_size_mb`, 0 for a file that does not exist (yet: a demo image before it
    is made; or never: its step then reports the missing file). One ``stat``."""
    try:
        return file_size_mb(path)
    except (FileNotFoundError, NotADirectoryError):
        return 0.0


def file_workers(path: str | Path, threads: int) -> int:
    """:func:`image_workers` of one image file; 1 when it does not exist."""
    return image_workers([_size_mb_or_zero(path)], threads)


def allowed_rules(argv: Sequence[str]) -> frozenset[str] | None:
    """The rule names after ``--allowed-rules`` in a Snakemake command line, or None.

    A cluster job runs Snakemake again to run its job (twice under the SLURM plugin: in
    the allocation and under ``srun``), with ``--allowed-rules`` naming the job's rules.
    With 5000 batched images the batch rules cost each of these Snakemake starts ~1 s
    (their outputs, and the DAG's lookups among them); knowing the allowed rules, the
    workflow defines only the batch rules the job runs (``workflow/rules/common.smk``).
    None (define every rule) when the option is absent or empty.
    """
    names: list[str] = []
    for k, arg in enumerate(argv):
        if arg.startswith("--allowed-rules="):
            names.append(arg.split("=", 1)[1])
        elif arg == "--allowed-rules":
            for value in argv[k + 1 :]:
                if value.startswith("-"):
                    break
                names.append(value)
    return frozenset(names) or None


def rule_name(mode: str, dataset: str, index: int) -> str:
    """Name of the ``index``-th batch rule of a data set, e.g. ``field_batch_ngc346_0``."""
    return f"{mode}_batch_{re.sub(r'[^A-Za-z0-9_]', '_', dataset)}_{index}"


def _boundary(image: str, size: int) -> bool:
    # A stable hash (not Python's salted hash()): the same image starts a batch on every
    # machine and in every run.
    digest = hashlib.blake2b(image.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size == 0


def _split(run: list[str], size: int) -> list[list[str]]:
    """``run`` in the fewest near-equal consecutive parts of at most ``size``."""
    parts = np.array_split(np.arange(len(run)), math.ceil(len(run) / size))
    return [run[part[0] : part[-1] + 1] for part in parts]


def plan_batches(images: Iterable[str], size: int) -> list[list[str]]:
    """Cut image ids into batches of at most ``size`` that stay put when images come and go.

    The ids are sorted; a new *run* starts at every image whose name hashes to a multiple
    of ``size`` (content-defined boundaries, about one image in ``size``), and a run longer
    than ``size`` is cut into the fewest near-equal parts of at most ``size`` images.
    A boundary depends only on that image's own name, so adding or removing an image
    changes only the batches of the run it falls in: the other batches keep their members,
    and Snakemake reruns nothing of them. (Cutting the sorted list every ``size`` images
    would shift every later batch.) The price: batches hold about 0.6 ``size`` images on
    average, so there are about 1.6 N / ``size`` of them.

    Parameters
    ----------
    images : iterable of str
        Image ids (duplicates are ignored).
    size : int
        Largest batch (>= 1; 1 puts every image alone).

    Returns
    -------
    list of list of str
        The batches in sorted order, each sorted; together every id once.
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, not {size}")
    ids = sorted(set(images))
    runs: list[list[str]] = []
    for image in ids:
        if not runs or _boundary(image, size):
            runs.append([])
        runs[-1].append(image)
    return [part for run in runs for part in _split(run, size)]


def image_list_path(dataset: str, first: str) -> str:
    """The list of a batch's image files (one path a line), named by its first image.

    A batch job reads its images through this one small file (written by a trivial local
    rule from the images) instead of declaring them all as its inputs: Snakemake records,
    for every output of a job, a checksum or at least four ``stat`` calls per input, so a
    job with B images as inputs and 5 B outputs would cost it 5 B^2 of them (10-15 us each
    without checksums, ~150 us with the default checksum of sub-MB files). A changed image
    still reruns its batch: the list is rewritten (newer), so the batch is out of date.
    """
    return f"results/{dataset}/batches/{first}.txt"


def read_image_list(image_list: str | Path) -> list[str]:
    """The image files named in an image list (:func:`image_list_path`), in batch order."""
    return [line for line in Path(image_list).read_text().splitlines() if line]


def listed_sizes_mb(image_list: str | Path) -> list[float]:
    """Sizes (MB) of the files named in an image list (:func:`image_list_path`).

    Cached per list file and modification time: Snakemake asks up to three times per batch
    job (its threads, memory and runtime), a ``stat`` of every image each time. A changed
    image rewrites its list (the list rule's input), so the cache never serves old sizes.
    """
    path = Path(image_list)
    return list(_listed_sizes_mb(str(path.resolve()), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _listed_sizes_mb(path: str, mtime_ns: int) -> tuple[float, ...]:
    return tuple(file_size_mb(p) for p in read_image_list(path))


def batch_members(image_list: str | Path, outputs: Sequence[str]) -> list[tuple[int, str, str]]:
    """(index, image id, file) of each image of a batch, from its image list.

    ``outputs`` is one of the batch rule's per-image output lists, ``<image>.<ext>`` in
    the order of the image list (the rule writes both from one sorted batch); the names are
    checked, so that no image can get another's files.
    """
    from aperflow.datasets import image_id

    paths = read_image_list(image_list)
    ids = [image_id(p) for p in paths]
    stems = [Path(o).stem for o in outputs]
    if ids != stems:
        raise ValueError(f"{image_list}: images {ids} do not match the outputs {stems}")
    return [(k, image, path) for k, (image, path) in enumerate(zip(ids, paths, strict=True))]


def member_log_path(dataset: str, step: str, image: str) -> str:
    """The log of one image's step: the log file its one-image job would write.

    A batch job writes these without declaring them to Snakemake as its logs: Snakemake
    stores a job's whole log list in the metadata record of every output, so 4 B logs in
    each of 5 B records would again grow as B^2 per batch.
    """
    return f"logs/{dataset}/{step}/{image}.log"


def batch_mem_mb(sizes_mb: Sequence[float], attempt: int = 1) -> int:
    """Memory of a batch job (MB): the profile's per-image rule for its largest member.

    Members run one after the other, so a batch needs what its largest image needs
    (``4 x size + 1000`` MB: the float64 planes and the background map), not the sum.
    """
    largest = max(sizes_mb, default=0.0)
    return int(max(4 * largest + 1000, 1000) * attempt)


def batch_runtime(sizes_mb: Sequence[float], attempt: int = 1) -> int:
    """Runtime request of a batch job (minutes): 3 + per member 3 s + 1 min per 100 MB.

    Generous for the small images that batches are for (~0.3 s each for a 128 x 128 field
    image with its plot), so a slow node does not kill the job; must fit the partition's
    ``MaxTime`` (lower ``execution.batch_size`` if not).
    """
    minutes = 3 + sum(0.05 + s / 100 for s in sizes_mb)
    return int(math.ceil(minutes * attempt))


def batch_nice(batches: Mapping[str, Sequence[str | Path]]) -> dict[str, int]:
    """SLURM ``--nice`` of each batch job: the minutes by which its runtime request falls
    short of the longest batch's (0 for the longest).

    Snakemake submits the ready batches at once in an arbitrary order, and SLURM starts
    pending jobs by priority, i.e. in submission order among equals. With these values it
    starts the longest pending batch first whatever that order (the longest-first rule
    that makes a set of jobs finish together), as soon as a CPU frees, instead of
    Snakemake holding the batches back and submitting the next only when its status
    check sees a job end (seconds to a minute later). A value is at most the longest
    request in minutes (~110 for 2000 small images): it lowers the priority of one's
    shorter batches that much, which on a shared cluster also yields that much to others.

    Parameters
    ----------
    batches
        Each batch's image files, by any key (a file not made yet counts as 0 MB).

    Returns
    -------
    dict
        The ``--nice`` value of each key.
    """
    runtimes = {
        key: batch_runtime([_size_mb_or_zero(p) for p in paths]) for key, paths in batches.items()
    }
    longest = max(runtimes.values(), default=0)
    return {key: longest - minutes for key, minutes in runtimes.items()}


def _handler(path: str | Path) -> logging.Handler:
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    return handler


@contextmanager
def member_log(path: str | Path, name: str) -> Iterator[logging.Logger]:
    """Log to ``path`` while a batch works on one member's step.

    ``path`` is the log file the one-image job of that step would write (e.g.
    ``logs/<dataset>/background/<image>.log``), so the logs, and the problems that
    :mod:`aperflow.problems` reads from them, are the same with and without batches. The
    ``aperflow`` loggers and Python warnings go there only (the batch's own log keeps its
    summary); warnings are shown again for every member, as each one-image job would.

    Parameters
    ----------
    path : str or Path
        The member's log file (overwritten).
    name : str
        The step (rule) name; the logger is ``aperflow.<name>``.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = _handler(path)
    loggers = [logging.getLogger("aperflow"), logging.getLogger("py.warnings")]
    saved = [(list(lg.handlers), lg.level) for lg in loggers]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.setLevel(logging.INFO)
    try:
        # Re-setting the filter resets the "shown once" registries: each member sees the
        # warnings a job of its own would.
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield logging.getLogger(f"aperflow.{name}")
    finally:
        for lg, (handlers, level) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)
        handler.close()


@contextmanager
def timed(step: str, item: str) -> Iterator[None]:
    """Log how long the block took: ``INFO aperflow.timing: <step> <item> <seconds> s``.

    Every per-image step (batched or not) and every aggregation script writes one such
    line to its log; ``benchmarks/workflow.py`` sums them as the time spent inside the
    aperflow functions (the rest of the wall time is the workflow's own cost).
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        logging.getLogger(TIMING_LOGGER).info("%s %s %.4f s", step, item, seconds)


def run_batch(
    members: Sequence, run: Callable[[object], bool], log: logging.Logger, failure: str
) -> list[str]:
    """Run a batch job's members one after the other; return the ids of those that failed.

    Parameters
    ----------
    members : sequence
        Objects with an ``image`` id (e.g. :class:`aperflow.steps.FieldMember`).
    run : callable
        Does one member's steps (each into the member's own logs, catching its errors);
        returns False when the member has no result.
    log : logging.Logger
        The batch job's log: one INFO line per member and a summary. Only INFO: a failure
        is in the member's own logs, and so once in ``results/problems.ecsv``.
    failure : str
        What a failed member lacks, for the log (e.g. ``"no photometry"``).
    """
    failed = []
    start = time.perf_counter()
    for member in members:
        t0 = time.perf_counter()
        ok = run(member)
        if not ok:
            failed.append(member.image)
        state = "done" if ok else f"{failure} (see its logs)"
        log.info("%s: %s in %.3f s", member.image, state, time.perf_counter() - t0)
    log.info(
        "batch of %d images: %d with %s%s; %.2f s in the steps",
        len(members), len(failed), failure, f" ({', '.join(failed)})" if failed else "",
        time.perf_counter() - start,
    )  # fmt: skip
    return failed


def read_timings(logdir: str | Path) -> list[tuple[str, str, float]]:
    """Every timing line (step, item, seconds) of the job logs under ``logdir``."""
    prefix = f"INFO {TIMING_LOGGER}: "
    rows = []
    for path in sorted(Path(logdir).rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                step, rest = line[len(prefix) :].split(" ", 1)
                item, seconds, _ = rest.rsplit(" ", 2)
                rows.append((step, item, float(seconds)))
    return rows
