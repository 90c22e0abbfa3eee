"""aperflow.memory.keep_freed_memory: glibc keeps freed memory, the peak stays bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from test_memory import _big_cal

from aperflow.memory import _libc

_RSS_AFTER_FREE = textwrap.dedent("""
    import sys
    import numpy as np
    from aperflow.memory import keep_freed_memory

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    before = rss_mb()
    block = np.ones(2**24)  # 128 MB, touched
    del block
    print(applied, rss_mb() - before)
""")


def _rss_kept_after_free(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_AFTER_FREE, mode], capture_output=True, text=True, check=True
    )
    applied, kept = out.stdout.split()
    return applied, float(kept)


def test_keep_freed_memory_returns_false_without_glibc(monkeypatch):
    import aperflow.memory as memory

    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(_libc() is None or sys.platform != "linux", reason="mallopt needs glibc")
def test_keep_freed_memory_keeps_a_freed_block_mapped():
    # in child processes: the settings last for the life of the process
    applied, kept = _rss_kept_after_free("keep")
    assert applied == "True" and kept > 100, kept  # the 128 MB stay resident for reuse
    applied, kept = _rss_kept_after_free("default")
    assert applied == "False" and kept < 30, kept  # glibc unmaps a big block on free


@pytest.mark.skipif(_libc() is None, reason="mallopt needs glibc")
def test_open_4096_image_peak_memory_with_freed_memory_kept(tmp_path):
    """The bound of test_memory.py holds with the job-process settings on."""
    path = tmp_path / "big_cal.fits"
    _big_cal(path)
    size_mb = path.stat().st_size / 2**20
    code = textwrap.dedent(f"""
        import resource
        import numpy, astropy.io.fits, astropy.wcs
        from aperflow.memory import keep_freed_memory
        from aperflow.images import open_image
        assert keep_freed_memory()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = open_image({str(path)!r})
        assert image.mask.sum() > 0 and image.error is not None and image.area is not None
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    print(f"peak {peak_mb:.0f} MB for a {size_mb:.0f} MB file (freed memory kept)")
    assert peak_mb < 3 * size_mb, f"peak {peak_mb:.0f} MB for a {size_mb:.0f} MB file"
    assert peak_mb < 1.5 * 4.25 * 64, f"peak {peak_mb:.0f} MB"
