"""aperflow.memory.keep_freed_memory: glibc keeps freed memory, the peak stays bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from aperflow.memory import _libc

_RSS_AFTER_FREE = textwrap.dedent("""
    import sys
    import threading

    import numpy as np
    from aperflow.memory import keep_freed_memory

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    def touch_and_free():
        block = np.ones(2**24)  # 128 MB, touched
        del block

    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    before = rss_mb()
    if sys.argv[2] == "thread":  # a worker thread's allocation (its own malloc arena)
        worker = threading.Thread(target=touch_and_free)
        worker.start()
        worker.join()
    else:
        touch_and_free()
    print(applied, rss_mb() - before)
""")


def _rss_kept_after_free(mode: str, where: str = "main") -> tuple[str, float]:
    command = [sys.executable, "-c", _RSS_AFTER_FREE, mode, where]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    applied, kept = out.stdout.split()
    return applied, float(kept)


def test_keep_freed_memory_returns_false_without_glibc(monkeypatch):
    import aperflow.memory as memory

    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(_libc() is None or sys.platform != "linux", reason="mallopt needs glibc")
def test_keep_freed_memory_keeps_a_freed_block_mapped():
    # in child processes: the settings last for the life of the process
    for where in ("main", "thread"):
        applied, kept = _rss_kept_after_free("keep", where)
        assert applied == "True" and kept > 100, (where, kept)  # the 128 MB stay for reuse
        applied, kept = _rss_kept_after_free("default", where)
        assert applied == "False" and kept < 30, (where, kept)  # glibc unmaps a big block


_KEEP = "from aperflow.memory import keep_freed_memory\nassert keep_freed_memory()\n"


@pytest.mark.skipif(_libc() is None, reason="mallopt needs glibc")
def test_open_4096_image_peak_memory_with_freed_memory_kept(tmp_path, monkeypatch):
    """test_memory.py's bound holds with the job-process settings on: its child process
    runs keep_freed_memory() first."""
    import test_memory

    run = subprocess.run

    def run_kept(command, *args, **kwargs):
        python, flag, code = command
        return run([python, flag, _KEEP + code], *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run_kept)
    test_memory.test_open_4096_image_peak_memory(tmp_path)
