"""The cap on the wait between status checks of SLURM jobs (aperflow.status_checks)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, snakemake_command

from aperflow.status_checks import SLURM_PLUGIN, cap_status_wait


class _Remote:
    """The part of snakemake_interface_executor_plugins' RemoteExecutor the cap wraps."""

    def __init__(self):
        self._wait = None

    @property
    def next_seconds_between_status_checks(self):
        return 10 if self._wait is None else self._wait

    @next_seconds_between_status_checks.setter
    def next_seconds_between_status_checks(self, value):
        self._wait = value


def _waits(cls, values):
    executor = cls()
    seen = []
    for value in values:
        executor.next_seconds_between_status_checks = value
        seen.append(executor.next_seconds_between_status_checks)
    return seen


def test_cap_keeps_shorter_waits_and_caps_longer_ones():
    class Plugin(_Remote):
        pass

    assert cap_status_wait(Plugin, 15)
    # The plugin's back-off from 1 s: 1, 11, 21, ... (+10 a quiet check), reset to 1.
    assert _waits(Plugin, [1, 11, 21, 180, 1, None]) == [1, 11, 15, 15, 1, 10]
    # The base class and its other subclasses keep their own waits.
    assert _waits(_Remote, [21, 180]) == [21, 180]


def test_capping_again_replaces_the_cap():
    class Plugin(_Remote):
        pass

    cap_status_wait(Plugin, 5)
    cap_status_wait(Plugin, 30)
    assert _waits(Plugin, [21, 180]) == [21, 30]


def test_a_class_without_the_wait_is_left_unchanged():
    class Other:
        next_seconds_between_status_checks = 40  # a plain attribute, no setter to wrap

    assert not cap_status_wait(Other, 10)
    assert Other.next_seconds_between_status_checks == 40
    with pytest.raises(ValueError, match="> 0 s"):
        cap_status_wait(_Remote, 0)


def test_the_installed_slurm_plugin_sets_its_wait_through_the_capped_property():
    plugin = pytest.importorskip(SLURM_PLUGIN)
    # What the cap relies on: the plugin's executor sets this property after each check.
    assert isinstance(
        inspect.getattr_static(plugin.Executor, "next_seconds_between_status_checks"), property
    )
    assert "self.next_seconds_between_status_checks =" in inspect.getsource(
        plugin.Executor.check_active_jobs
    )

    class Executor(plugin.Executor):  # a subclass: the plugin's own class stays as it is
        pass

    assert cap_status_wait(Executor, 10)
    executor = Executor.__new__(Executor)  # no workflow needed to set and read the wait
    executor.next_seconds_between_status_checks = 170
    assert executor.next_seconds_between_status_checks == 10


# Parses the workflow in this process (a dry run, as the Snakemake that submits would), then
# prints the wait its SLURM executor would keep after a check that asked for 170 s.
_AFTER_PARSE = """
import sys
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
import snakemake_executor_plugin_slurm as plugin
executor = plugin.Executor.__new__(plugin.Executor)
executor.next_seconds_between_status_checks = 170
print("WAIT", executor.next_seconds_between_status_checks)
"""


@pytest.mark.parametrize(("wait", "kept"), [(None, 10), (25, 25), ("null", 170)])
def test_the_workflow_caps_the_slurm_plugin_it_runs_with(tmp_path, wait, kept):
    pytest.importorskip(SLURM_PLUGIN)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["execution"].pop("slurm_status_wait", None)  # None: the default
    if wait is not None:
        config["execution"]["slurm_status_wait"] = None if wait == "null" else wait
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    args = snakemake_command(tmp_path, configfile, "-n", "--quiet")[3:]  # after -m snakemake
    proc = subprocess.run(
        [sys.executable, "-c", _AFTER_PARSE, *args], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    waits = [
        float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("WAIT ")
    ]
    assert waits == [kept]
