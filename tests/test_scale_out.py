"""Scale-out: two prefork Odoo servers drain one queue of document emails.

2,000 document emails (quotations, booking confirmations, invoices, credit
notes, RFQs and purchase orders, each with its PDF) are queued once through
the send buttons' code. Each test drains a fresh copy of that queue with two
servers sharing the database (``--workers=2 --max-cron-threads=2`` each) and
reads back what the SMTP sink received: every email exactly once, exactly one
hidden copy to its sender (an envelope recipient, never a ``Bcc`` header),
and 2,000 ``sent`` entries in Generated Documents. Meanwhile a logged-in user
keeps opening the Generated Documents list, which must answer every time.

The drains are those of ``bench/scale_out.py``, which also times them.
The two tests take about a quarter of an hour on two cores, mostly to queue
the 2,000 emails through the send buttons, so they only run with
``SENGERIO_SCALEOUT=1``: CI (``.ci/run``) and ``make test-scaleout`` set it.
"""

import json
import os
import sys

import pytest
from harness import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import scale_out  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("SENGERIO_SCALEOUT") != "1",
    reason="heavy: run with SENGERIO_SCALEOUT=1 (make test-scaleout, CI)",
)

COUNT = int(os.environ.get("SENGERIO_SCALEOUT_COUNT", "2000"))
BATCH_SIZE = 50  # a cron run sends at most ten batches, then any worker may go on
CHUNK = 50  # emails per process_email_queue call when sending in parallel
LIST_CEILING = 5.0  # seconds: a sanity bound, not a performance target
LOG_DIR = ROOT / "var" / "e2e"


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    """A database with ``COUNT`` document emails queued, and the sink's port."""
    db = os.environ.get("SENGERIO_SCALEOUT_DB") or "sengerio_scaleout_%s" % os.getpid()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    scale_out.driver.LOG_DIR = LOG_DIR
    smtp_port = scale_out.driver.free_port()
    pdf_dir = tmp_path_factory.mktemp("pdf")
    try:
        expected = scale_out.prepare_queue(db, COUNT, smtp_port, pdf_dir, BATCH_SIZE)
        assert len(expected["mails"]) == COUNT
        yield db, expected, smtp_port
    finally:
        scale_out.driver.drop_db(db)


def keep(result):
    """Keep what the drain measured next to the logs (timings are not tested)."""
    path = LOG_DIR / ("scale_out_%s.json" % result["mode"])
    path.write_text(json.dumps(result, indent=1))


def check_list_answered(result):
    drain = result["list"]["drain"]
    assert drain["web_search_read"]["count"] >= 1, "the list was not opened"
    for method, stats in drain.items():
        assert stats["errors"] == [], method
        assert stats["max"] < LIST_CEILING, (method, stats["max"])


def drain_with_two_servers(queued, tmp_path, mode):
    """The queue drained by two servers; each email must go out once."""
    db, expected, smtp_port = queued
    result = scale_out.drain(
        db,
        expected,
        n_servers=2,
        mode=mode,
        smtp_port=smtp_port,
        spool=tmp_path / "spool",
        log_dir=LOG_DIR,
        chunk=CHUNK,
        idle_openings=4,
    )
    keep(result)
    assert result["problems"] == []
    assert result["register"] == {"sent": COUNT}
    check_list_answered(result)
    return result


def test_two_servers_cron_send_each_email_once(queued, tmp_path):
    """Odoo's own way: the mail cron, run by the cron workers of both servers."""
    result = drain_with_two_servers(queued, tmp_path, "cron")
    # the cron sent them in batches of at most BATCH_SIZE emails
    assert sum(result["cron_batches"]) >= COUNT // BATCH_SIZE


def test_two_servers_split_send_each_email_once(queued, tmp_path):
    """In parallel: disjoint chunks sent by one HTTP worker of each server."""
    result = drain_with_two_servers(queued, tmp_path, "split")
    assert all(result["chunks"]), "both servers sent emails"
    assert result["cron_batches"] == [0, 0]
