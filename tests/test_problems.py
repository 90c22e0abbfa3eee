"""The problems summary reads inventory errors and job-log warnings/errors."""

from __future__ import annotations

import logging

import pytest
from astropy.table import Table

from aperflow.logs import job_logger
from aperflow.problems import collect_problems, write_problems
from aperflow.tables import write_table


def test_collect_problems_from_logs_and_inventory(tmp_path):
    logs = tmp_path / "logs"
    (logs / "ds" / "photometry").mkdir(parents=True)
    (logs / "ds" / "photometry" / "img1.log").write_text(
        "INFO aperflow.photometry: 120 sources\n"
        "WARNING aperflow.photometry: img1: 3 sources on masked pixels\n"
    )
    (logs / "ds" / "photometry" / "img2.log").write_text(
        "ERROR aperflow.photometry: ValueError: no WCS in img2.fits\n"
    )
    (logs / "inventory.log").write_text("INFO aperflow.inventory: 3 images\n")
    inv = Table(
        {"dataset": ["ds", "ds"], "image": ["bad", "img1"], "error": ["bad.fits: not FITS", ""]}
    )
    write_table(inv, tmp_path / "inventory.ecsv")
    table = write_problems(tmp_path / "problems.ecsv", logs, tmp_path / "inventory.ecsv")
    rows = {(r["stage"], r["item"], r["level"]): r["message"] for r in table}
    assert rows == {
        ("inventory", "bad", "ERROR"): "bad.fits: not FITS",
        ("photometry", "img1", "WARNING"): "img1: 3 sources on masked pixels",
        ("photometry", "img2", "ERROR"): "ValueError: no WCS in img2.fits",
    }
    assert table.meta["n_errors"] == 2
    write_problems(tmp_path / "again.ecsv", logs, tmp_path / "inventory.ecsv")
    assert (tmp_path / "problems.ecsv").read_bytes() == (tmp_path / "again.ecsv").read_bytes()


def test_empty_run_has_an_empty_table(tmp_path):
    assert len(collect_problems(tmp_path / "none", tmp_path / "none.ecsv")) == 0


def test_job_logger_writes_warnings_and_uncaught_errors(tmp_path):
    import sys
    import warnings

    # An earlier test's job_logger may have left warnings captured by logging; pytest then
    # swaps showwarning for its own recorder and captureWarnings(True) would be a no-op.
    logging.captureWarnings(False)
    log = job_logger(str(tmp_path / "job.log"), "test")
    log.info("started")
    warnings.warn("odd header", UserWarning, stacklevel=1)
    try:
        raise ValueError("x.fits: no SCI")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    text = (tmp_path / "job.log").read_text()
    assert "INFO aperflow.test: started" in text
    assert "WARNING py.warnings:" in text and "odd header" in text
    assert "ERROR aperflow.test: ValueError: x.fits: no SCI" in text
    logging.getLogger("aperflow").handlers.clear()
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__


@pytest.fixture(autouse=True)
def _restore_excepthook():
    import sys

    yield
    sys.excepthook = sys.__excepthook__
