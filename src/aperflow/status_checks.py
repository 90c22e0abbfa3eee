"""How long Snakemake waits between status checks of its SLURM jobs.

snakemake-executor-plugin-slurm (2.8) checks its jobs with one ``squeue``/``sacct`` call
and then sleeps: after a check that finds a job finished, ``--slurm-init-seconds-before-
status-checks``; after one that finds none, 10 s more than the last time, up to 180 s.
This wait is hard-coded. So a job that ends after a long quiet spell (the last batch of
a run, after minutes with no finish) is seen up to minutes late, and every step waiting
for it (the catalogs, the group plots) starts that much later: in ten-minute runs of
``benchmarks/workflow.py --slurm`` the last batch was seen 9-29 s after its end (up to ~50 s
can happen), 2-5 % of the wall time.

:func:`cap_slurm_status_wait` caps that wait (``execution.slurm_status_wait``, applied by
``workflow/rules/common.smk`` in the Snakemake that submits). It wraps the setter of the
plugin executor's ``next_seconds_between_status_checks``, the value the executor sleeps
after each check (``snakemake_interface_executor_plugins.executors.remote``); if a plugin
version lacks it, nothing changes and the caller is told.
"""

from __future__ import annotations

import importlib
import inspect

__all__ = ["SLURM_PLUGIN", "SLURM_STATUS_WAIT", "cap_slurm_status_wait", "cap_status_wait"]

#: The SLURM executor plugin's module.
SLURM_PLUGIN = "snakemake_executor_plugin_slurm"

#: Default longest wait (s) between two status checks: one ``squeue`` call for all jobs
#: every 10 s at most, and a finished job seen within 10 s.
SLURM_STATUS_WAIT = 10.0

#: The remote executor's attribute holding its next wait (s).
_WAIT = "next_seconds_between_status_checks"

#: Each capped class's own property before the cap, so that capping again replaces the
#: cap instead of stacking a second one on it.
_UNCAPPED: dict[type, property] = {}


def cap_status_wait(executor_cls: type, seconds: float) -> bool:
    """Cap the wait after each status check of a Snakemake remote executor class.

    Parameters
    ----------
    executor_cls : type
        A subclass of ``snakemake_interface_executor_plugins``' ``RemoteExecutor``, or any
        class with a settable ``next_seconds_between_status_checks`` property.
    seconds : float
        Longest wait (> 0). Shorter waits the executor sets are kept. Capping a class again
        replaces the earlier cap.

    Returns
    -------
    bool
        False, and the class unchanged, when it has no such property.
    """
    if seconds <= 0:
        raise ValueError(f"status check wait must be > 0 s, not {seconds}")
    uncapped = _UNCAPPED.get(executor_cls) or inspect.getattr_static(executor_cls, _WAIT, None)
    if not isinstance(uncapped, property) or uncapped.fset is None:
        return False

    def set_capped(executor: object, value: float | None) -> None:
        uncapped.fset(executor, value if value is None else min(value, seconds))

    _UNCAPPED[executor_cls] = uncapped
    setattr(executor_cls, _WAIT, property(uncapped.fget, set_capped, doc=uncapped.__doc__))
    return True


def cap_slurm_status_wait(seconds: float) -> bool | None:
    """Cap the wait between status checks of snakemake-executor-plugin-slurm's executor.

    Call it before Snakemake runs (e.g. from a Snakefile); it acts on the class, so on the
    executor made later.

    Parameters
    ----------
    seconds : float
        Longest wait (s) between two checks.

    Returns
    -------
    bool or None
        None when the plugin is not installed (nothing to cap); False when its executor has
        no ``next_seconds_between_status_checks`` property (unchanged: its own waits apply).
    """
    try:
        plugin = importlib.import_module(SLURM_PLUGIN)
    except ImportError:
        return None
    return cap_status_wait(plugin.Executor, seconds)
