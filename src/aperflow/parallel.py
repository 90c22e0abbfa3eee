"""One function applied to many small files on a few forked processes, results in order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    func: Callable[[T], R], items: Iterable[T], workers: int = 1, min_per_worker: int = 100
) -> list[R]:
    """``[func(item) for item in items]``, on ``workers`` forked processes when worth it.

    For per-file work that holds the GIL (FITS header and ECSV/YAML parsing). Forked
    workers inherit the parent's imports, so they start in milliseconds; ``func`` must be
    a module-level function and its results picklable. The results, and so the outputs
    built from them, do not depend on ``workers``.

    Parameters
    ----------
    func : callable
        Applied to each item.
    items : iterable
        The inputs, e.g. file paths.
    workers : int
        Processes; 1 (or fewer than ``min_per_worker`` items per worker) runs in this one.
    min_per_worker : int
        Below this many items per worker, a pool costs more than it saves.

    Returns
    -------
    list
        ``func(item)`` for every item, in the order of ``items``.
    """
    items = list(items)
    if workers <= 1 or len(items) < min_per_worker * workers:
        return [func(item) for item in items]
    context = multiprocessing.get_context("fork")
    chunk = max(1, len(items) // (8 * workers))
    with ProcessPoolExecutor(int(workers), mp_context=context) as pool:
        return list(pool.map(func, items, chunksize=chunk))
