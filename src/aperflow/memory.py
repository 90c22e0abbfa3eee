"""Process memory settings for workflow jobs.

A job that processes a 4096x4096 image allocates and frees temporaries of tens to
hundreds of MB many times. glibc serves each of them with a fresh ``mmap`` and gives it
back with ``munmap``, so every temporary pays the kernel's first-touch page faults again;
on virtual machines (whose hosts back guest memory lazily and take freed pages back) that
can be a third of the run time. :func:`keep_freed_memory` asks glibc to serve large
blocks from the heap and to keep freed memory for reuse instead, as the environment
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=... MALLOC_TOP_PAD_=... MALLOC_ARENA_MAX=1``
would.

The cost: the process keeps its peak memory until it exits (right for a short job, not
for a notebook), so the library never calls it on import; :func:`aperflow.logs.job_logger`
(the first call of every workflow script) and the benchmarks do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["keep_freed_memory"]

log = logging.getLogger("aperflow.memory")

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_INT_MAX = 2**31 - 1  # mallopt takes a C int


@functools.cache
def _libc():
    """The C library when it is glibc (it has ``mallopt``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    return libc


def keep_freed_memory(top_pad_mb: int = 256) -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    Sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from one ``mmap``
    each), ``M_TRIM_THRESHOLD`` to its maximum (the heap top is never given back),
    ``M_TOP_PAD`` to ``top_pad_mb`` (the heap grows in big steps) and ``M_ARENA_MAX = 1``
    (worker threads allocate from that same heap: in their own arenas, blocks over 64 MB
    would still be mapped and unmapped one by one). Big temporaries then reuse pages
    already mapped instead of faulting in new ones. Call it once at the
    start of a short-lived process (a workflow job, a benchmark), never in a library
    import: the process keeps its peak memory until it exits.

    Parameters
    ----------
    top_pad_mb : int
        Extra memory (MB) requested each time the heap grows.

    Returns
    -------
    bool
        True when the settings were applied; False where ``mallopt`` is unavailable
        (not glibc: nothing is changed).
    """
    libc = _libc()
    if libc is None:
        return False
    pad = min(int(top_pad_mb) * 2**20, _INT_MAX)
    ok = all(
        libc.mallopt(param, value) == 1  # mallopt returns 1 on success
        for param, value in (
            (_M_MMAP_MAX, 0),
            (_M_TRIM_THRESHOLD, _INT_MAX),
            (_M_TOP_PAD, pad),
            (_M_ARENA_MAX, 1),
        )
    )
    if not ok:
        log.debug("mallopt refused a setting; memory is returned to the kernel as usual")
    return ok
