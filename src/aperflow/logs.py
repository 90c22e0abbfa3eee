"""Logging for workflow jobs: one log file per job, warnings and uncaught errors included.

Every line is ``LEVEL logger: message``; :mod:`aperflow.problems` reads the WARNING and
ERROR lines of all job logs into ``results/problems.ecsv``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence

__all__ = ["job_logger"]


def job_logger(
    logfiles: str | Sequence[str] | None,
    name: str = "aperflow",
    keep_memory: bool = True,
) -> logging.Logger:
    """Send the ``aperflow`` loggers, Python warnings and uncaught exceptions to the job's
    log file, and set up the job process's memory.

    Parameters
    ----------
    logfiles : str or sequence of str or None
        Snakemake's ``log`` (the first entry is used); None logs to stderr.
    name : str
        Name of the returned logger (a child of ``aperflow``).
    keep_memory : bool
        Call :func:`aperflow.memory.keep_freed_memory`: a job process reuses the memory
        of its freed temporaries instead of paying page faults for new ones (much of
        the time of a 4k image on a virtual machine); it keeps its peak memory until it
        exits, which suits a job.
    """
    if keep_memory:
        from aperflow.memory import keep_freed_memory

        keep_freed_memory()
    if logfiles is not None and not isinstance(logfiles, str):
        logfiles = logfiles[0] if len(logfiles) else None
    handler = logging.FileHandler(logfiles, mode="w") if logfiles else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("aperflow")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    wlog = logging.getLogger("py.warnings")
    wlog.handlers[:] = [handler]
    warnings.simplefilter("default")
    logger = logging.getLogger(name if name.startswith("aperflow") else f"aperflow.{name}")

    def _log_uncaught(kind, value, tb):
        # The job fails as usual; its log says why in one line, the traceback follows.
        logger.error("%s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = _log_uncaught
    return logger
