"""Opening a large image stays within 3x its file size in memory (issue 8)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from astropy.io import fits


def _big_cal(path, n=4096):
    rng = np.random.default_rng(1)
    sci = rng.normal(1.0, 0.1, (n, n)).astype(np.float32)
    dq = np.zeros((n, n), np.uint32)
    dq[::97, ::89] = 1
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=fits.Header({"TELESCOP": "JWST", "INSTRUME": "NIRCAM"})),
            fits.ImageHDU(sci, name="SCI", header=fits.Header({"BUNIT": "MJy/sr"})),
            fits.ImageHDU(np.full((n, n), 0.1, np.float32), name="ERR"),
            fits.ImageHDU(dq, name="DQ"),
            fits.ImageHDU(np.ones((n, n), np.float32), name="AREA"),
            fits.ImageHDU(np.full((n, n), 0.01, np.float32), name="VAR_POISSON"),
        ]
    )
    hdus.writeto(path)


def test_open_4096_image_peak_memory(tmp_path):
    path = tmp_path / "big_cal.fits"
    _big_cal(path)
    size_mb = path.stat().st_size / 2**20
    # A fresh process: ru_maxrss is its peak resident memory (kB on Linux).
    code = textwrap.dedent(f"""
        import resource
        import numpy, astropy.io.fits, astropy.wcs
        from aperflow.images import open_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = open_image({str(path)!r})
        assert image.mask.sum() > 0 and image.error is not None and image.area is not None
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    print(f"peak {peak_mb:.0f} MB for a {size_mb:.0f} MB file")
    assert peak_mb < 3 * size_mb, f"peak {peak_mb:.0f} MB for a {size_mb:.0f} MB file"
    # The image itself (SCI, ERR, DQ, AREA, flags) is ~ 4.25 x 64 MB; no more than ~1.5 x that.
    assert peak_mb < 1.5 * 4.25 * 64, f"peak {peak_mb:.0f} MB"
