"""Benchmark: two Odoo servers drain one queue of document emails together.

What is measured: the time to send ``--count`` queued document emails (with
their PDFs and the sender's hidden copy) to a local SMTP sink with one Odoo
server, then with two servers sharing the database, each in prefork mode
(``--workers=2 --max-cron-threads=2``), and the ratio. Meanwhile a logged-in
user keeps opening the Generated Documents list over ``/web/dataset/call_kw``
(``web_search_read`` of the list view, then ``search_count``) as the web
client does: its latency when the servers are idle and during the drain.

Two ways of draining, ``--modes``:

- ``cron``: Odoo's own way. The queue is sent by the *Mail: Email Queue
  Manager* scheduled action, which the cron workers of both servers run. A
  job runs in one worker at a time (``_acquire_one_job`` locks its row with
  ``FOR NO KEY UPDATE SKIP LOCKED``), so the servers take turns, one run of
  at most ten batches of ``mail.mail.queue.batch.size`` emails each: they
  never send at the same time. The action is triggered by setting its next
  execution date to now, and the servers run with
  ``ODOO_NOTIFY_CRON_CHANGES=1`` so that a partly done run wakes every cron
  worker at once instead of at its next poll (up to a minute later).
- ``split``: sending in parallel. The script (an integrator's bulk-send
  script over the external API) switches the scheduled action off (Odoo
  refuses while it runs, so no cron run is left sending), splits the queued
  ids into disjoint chunks and has ``--senders`` HTTP workers of each server
  (default 1 of 2, the other one stays free for the users) send chunks with
  ``mail.mail.process_email_queue(ids=chunk)``, then switches the action
  back on. Every email is in exactly one chunk.

Every drain runs on a fresh copy of the queued database (database and
filestore), so each one sends the very same emails. Other scheduled actions
are postponed in the queued database so that they do not blur the measure.
After each drain the script checks what went over the wire: each email
exactly once (by Message-Id), with exactly one envelope carrying the hidden
copy to its sender and never a ``Bcc`` header, and the register showing every
document ``sent``. ``tests/test_scale_out.py`` runs the same code.

Run it with the project's virtualenv::

    source dev/common.sh && "$PY" bench/scale_out.py --count 300

The databases are dropped at the end unless ``--keep``. Logs are kept in
``var/bench/``. The exit status is non-zero when a check fails; timings are
only reported.
"""

import argparse
import itertools
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

import psycopg2

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for folder in (BENCH, ROOT / "tests", ROOT / "dev"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import bcc_queue  # noqa: E402
import driver  # noqa: E402
from harness import OdooServer  # noqa: E402
from mailcheck import raw_headers  # noqa: E402
from register_list import list_view_specification  # noqa: E402
from smtp_sink import SmtpSink, read_spool  # noqa: E402

MODEL = "sengerio.generated.document"
MAIL_CRON = "mail.ir_cron_mail_scheduler_action"
WORKERS = 2  # HTTP workers per server
CRON_WORKERS = 2  # cron workers per server
LIST_USER = "agent1"  # a salesperson who also invoices and purchases
LIST_LIMIT = 80
COUNT_LIMIT = 10001
DRAIN_TIMEOUT = 1800  # seconds
QUEUE_PROCESSES = 2  # odoo-bin shells queueing the emails together
PAUSE = 0.5  # seconds between two openings of the list by the user

driver.ADDONS_PATH.append(str(ROOT))


def say(msg, *args):
    print("[scale-out] " + (msg % args if args else msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The queued database
# ---------------------------------------------------------------------------


def prepare_queue(db, count, smtp_port, pdf_dir, batch_size):
    """Create ``db`` with the addon, ``count`` documents and their emails queued.

    The emails are queued through the real send paths by bench/bcc_queue.py
    (one PDF per document model rendered once and reused). Returns what the
    drains must deliver: ``{"mails": [[message_id, hidden copy], ...]}``.
    """
    driver.drop_db(db)
    (driver.LOG_DIR / (db + ".log")).unlink(missing_ok=True)
    say("installing sengerio_mailing on %s (a minute or two)", db)
    driver.run_logged(
        driver.odoo_cmd(
            "-d", db, "-i", "sengerio_mailing", "--without-demo=all",
            "--stop-after-init", "--no-http", "--log-level=warn",
        ),
        db,
    )  # fmt: skip
    env = dict(
        os.environ, SMTP_PORT=str(smtp_port), ALIAS_DOMAIN=bcc_queue.ALIAS_DOMAIN
    )
    driver.run_logged(
        driver.odoo_cmd("shell", "-d", db, "--no-http", "--log-level", "warn"),
        db,
        stdin_text=(ROOT / "dev" / "configure_db.py").read_text(),
        env=env,
    )
    say("creating %s documents, rendering one PDF per document model", count)
    bcc_queue.odoo_shell(db, "odoo_setup", count=count, pdf_dir=str(pdf_dir))
    say("queueing one email per document through the send buttons' code")
    # two processes, each sending the documents of half of the partners
    with ThreadPoolExecutor(QUEUE_PROCESSES) as pool:
        futures = [
            pool.submit(
                bcc_queue.odoo_shell,
                db,
                "odoo_queue",
                pdf_dir=str(pdf_dir),
                part=part,
                parts=QUEUE_PROCESSES,
            )
            for part in range(QUEUE_PROCESSES)
        ]
        for future in futures:
            future.result()
    return bcc_queue.odoo_shell(
        db, "odoo_prepare", module="scale_out", batch_size=batch_size
    )


def copy_db(source, target):
    """A fresh copy of the queued database and its filestore."""
    (driver.LOG_DIR / (target + ".log")).unlink(missing_ok=True)
    driver.copy_db(source, target)


# ---------------------------------------------------------------------------
# A logged-in user of the web client
# ---------------------------------------------------------------------------


class ListUser:
    """Opens the Generated Documents list again and again, timing each call.

    Each opening is what the web client sends for the menu's list: a
    ``web_search_read`` of the default list view (no filter, default order,
    80 rows, counting up to 10,001), then a ``search_count``. Calls go to the
    servers in turn, as behind a load balancer.
    """

    def __init__(self, servers, login):
        self.sessions = [
            driver.WebSession(server.url, server.db, login, login) for server in servers
        ]
        views = self.sessions[0].call_kw(
            MODEL,
            "get_views",
            [],
            {
                "views": [[False, "list"], [False, "search"]],
                "options": {"load_filters": True, "toolbar": True},
                "context": self.sessions[0].context,
            },
        )
        self.specification, _aggregates = list_view_specification(views)
        self.samples = []  # (phase, call, seconds, error)
        self._turn = itertools.cycle(self.sessions)
        self._stop = threading.Event()
        self._thread = None

    def open_list(self, phase):
        session = next(self._turn)
        ctx = dict(session.context, bin_size=True)
        calls = (
            (
                "web_search_read",
                {
                    "domain": [],
                    "specification": self.specification,
                    "offset": 0,
                    "order": "",
                    "limit": LIST_LIMIT,
                    "count_limit": COUNT_LIMIT,
                    "context": ctx,
                },
            ),
            ("search_count", {"domain": [], "context": ctx}),
        )
        for method, kwargs in calls:
            start = time.perf_counter()
            error = None
            try:
                session.call_kw(MODEL, method, [], kwargs)
            except Exception as exc:  # noqa: BLE001 - reported with the sample
                error = repr(exc)
            self.samples.append((phase, method, time.perf_counter() - start, error))

    def measure_idle(self, openings):
        for _warm_up in range(2 * len(self.sessions)):
            self.open_list("warm-up")
        for _index in range(openings):
            time.sleep(PAUSE)
            self.open_list("idle")

    def start(self, phase="drain"):
        def run():
            while not self._stop.wait(PAUSE):
                self.open_list(phase)

        self._thread = threading.Thread(target=run, name="list-user", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self):
        """Per phase and call: count, errors, p50, p95, max (seconds)."""
        out = {}
        for phase, method, seconds, error in self.samples:
            entry = out.setdefault(phase, {}).setdefault(
                method, {"times": [], "errors": []}
            )
            entry["times"].append(seconds)
            if error:
                entry["errors"].append(error)
        for calls in out.values():
            for entry in calls.values():
                times = entry.pop("times")
                entry.update(
                    count=len(times),
                    p50=percentile(times, 50),
                    p95=percentile(times, 95),
                    max=max(times),
                )
        return out


def percentile(values, pct):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# ---------------------------------------------------------------------------
# One drain
# ---------------------------------------------------------------------------


def start_servers(db, count, log_dir, label):
    """``count`` prefork servers on ``db``, each with its own ports."""
    env = dict(os.environ, ODOO_NOTIFY_CRON_CHANGES="1")
    servers = []
    try:
        for index in range(count):
            server = OdooServer(
                db,
                Path(log_dir) / ("%s-%s-server%s.log" % (db, label, index + 1)),
                # after the harness's own "--max-cron-threads 0": these win
                extra_args=[
                    "--workers",
                    str(WORKERS),
                    "--max-cron-threads",
                    str(CRON_WORKERS),
                ],
                env=env,
            )
            server.log_path.unlink(missing_ok=True)
            servers.append(server.start())
    except Exception:
        for server in servers:
            server.stop()
        raise
    return servers


def queue_state(conn):
    """How many emails are still outgoing, and how many failed."""
    with conn.cursor() as cr:
        cr.execute(
            "SELECT state, count(*) FROM mail_mail WHERE state IN "
            "('outgoing', 'exception') GROUP BY state"
        )
        mails = dict(cr.fetchall())
    return mails.get("outgoing", 0), mails.get("exception", 0)


def wait_drained(db, timeout=DRAIN_TIMEOUT):
    """Poll PostgreSQL until no email is outgoing; the time it took."""
    start = time.monotonic()
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    try:
        while True:
            outgoing, _failed = queue_state(conn)
            if not outgoing:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError(
                    "%s emails still outgoing after %ss" % (outgoing, timeout)
                )
            time.sleep(0.2)
    finally:
        conn.close()


def trigger_mail_cron(admin):
    """Run the email queue manager now: its next execution date, set to now."""
    cron_id = admin.ref(MAIL_CRON)
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    admin.call("ir.cron", "write", [cron_id], {"nextcall": now, "active": True})


def split_send(servers, admin, chunk, senders):
    """Send the queue in disjoint chunks, in parallel, ``senders`` per server.

    Each sender keeps one HTTP worker of its server busy: with fewer senders
    than workers, the others stay free for the users. Returns how many chunks
    each server sent.
    """
    cron_id = admin.ref(MAIL_CRON)
    # Odoo refuses this while the action runs: afterwards no cron run sends.
    admin.call("ir.cron", "write", [cron_id], {"active": False})
    ids = admin.call("mail.mail", "search", [("state", "=", "outgoing")], order="id")
    chunks = queue.SimpleQueue()
    for start in range(0, len(ids), chunk):
        chunks.put(ids[start : start + chunk])
    sent = Counter()
    errors = []

    def sender(server):
        client = server.client()
        while True:
            try:
                ids = chunks.get_nowait()
            except queue.Empty:
                return
            try:
                client.call(
                    "mail.mail",
                    "process_email_queue",
                    ids=ids,
                    context={"filters": [("id", "in", ids)]},
                )
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))
            sent[server.url] += 1

    threads = [
        threading.Thread(target=sender, args=(server,), name="sender")
        for server in servers
        for _sender in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admin.call("ir.cron", "write", [cron_id], {"active": True})
    if errors:
        raise RuntimeError("process_email_queue failed: %s" % errors[0])
    return [sent[server.url] for server in servers]


def cron_batches(servers):
    """How many batches of the email queue manager each server's log shows."""
    runs = []
    for server in servers:
        text = server.log_path.read_text(errors="replace")
        runs.append(
            sum(
                1
                for line in text.splitlines()
                if "Job 'Mail: Email Queue Manager'" in line and " processed " in line
            )
        )
    return runs


def drain(
    queue_db,
    expected,
    n_servers,
    mode,
    smtp_port,
    spool,
    log_dir,
    chunk,
    senders=1,
    idle_openings=20,
):
    """Drain a fresh copy of ``queue_db`` with ``n_servers`` servers; check it."""
    copy = queue_db + "_drain"
    copy_db(queue_db, copy)
    result = {"servers": n_servers, "mode": mode, "load": os.getloadavg()[0]}
    try:
        with SmtpSink(spool, port=smtp_port):
            label = "%s-%s" % (mode, n_servers)
            servers = start_servers(copy, n_servers, log_dir, label)
            try:
                admin = servers[0].client()
                lister = ListUser(servers, LIST_USER)
                lister.measure_idle(idle_openings)
                lister.start()
                start = time.monotonic()
                try:
                    if mode == "cron":
                        trigger_mail_cron(admin)
                        wait_drained(copy)
                    else:
                        result["chunks"] = split_send(servers, admin, chunk, senders)
                        wait_drained(copy)
                    result["seconds"] = time.monotonic() - start
                finally:
                    lister.stop()
                result["list"] = lister.summary()
                result["register"] = dict(
                    Counter(
                        entry["state"]
                        for entry in admin.call(
                            MODEL, "search_read", [], fields=["state"]
                        )
                    )
                )
                conn = psycopg2.connect(dbname=copy)
                try:
                    result["outgoing"], result["failed"] = queue_state(conn)
                finally:
                    conn.close()
                result["cron_batches"] = cron_batches(servers)
            finally:
                for server in servers:
                    server.stop()
    finally:
        driver.drop_db(copy)
    result["problems"] = check_wire(expected, spool) + check_register(expected, result)
    return result


def check_wire(expected, spool):
    """Each queued email reached the sink exactly once, with its hidden copy."""
    bcc_of = dict(expected["mails"])
    seen = Counter()
    problems = []
    for meta in read_spool(spool):
        message = BytesParser(policy=policy.compat32).parsebytes(meta["raw"])
        msg_id = (message["Message-Id"] or "").strip()
        seen[msg_id] += 1
        visible = {
            addr.lower()
            for _name, addr in getaddresses(
                message.get_all("To", []) + message.get_all("Cc", [])
            )
        }
        hidden = sorted({r.lower() for r in meta["rcpt_tos"]} - visible)
        want = [bcc_of[msg_id]] if bcc_of.get(msg_id) else []
        if hidden != want:
            problems.append(
                "%s: hidden recipients %s, expected %s" % (msg_id, hidden, want)
            )
        for name, _value in raw_headers(meta["raw"]):
            if name in ("bcc", "x-odoo-bcc"):
                problems.append("%s: a %s header went on the wire" % (msg_id, name))
    twice = {msg_id: n for msg_id, n in seen.items() if n > 1}
    if twice:
        problems.append(
            "%s emails delivered more than once: %s"
            % (len(twice), sorted(twice.items())[:5])
        )
    missing = set(bcc_of) - set(seen)
    if missing:
        problems.append("%s emails never delivered" % len(missing))
    unexpected = set(seen) - set(bcc_of)
    if unexpected:
        problems.append(
            "%s unexpected emails: %s" % (len(unexpected), sorted(unexpected)[:5])
        )
    return problems


def check_register(expected, result):
    count = len(expected["mails"])
    problems = []
    if result["register"] != {"sent": count}:
        problems.append(
            "register shows %s, expected %s sent" % (result["register"], count)
        )
    if result["outgoing"] or result["failed"]:
        problems.append(
            "%s emails left outgoing, %s failed"
            % (result["outgoing"], result["failed"])
        )
    return problems


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def ms(seconds):
    return "%.0f" % (seconds * 1000)


def print_report(results, count, args):
    print()
    print(
        "Draining %s queued document emails, prefork servers with %s HTTP and "
        "%s cron workers each" % (count, WORKERS, CRON_WORKERS)
    )
    print(
        "(mail.mail.queue.batch.size %s; split mode: chunks of %s emails, "
        "%s sender(s) per server)" % (args.batch_size, args.chunk, args.senders)
    )
    print()
    head = "%-6s %-7s %10s %10s %10s %8s  %s" % (
        "mode",
        "servers",
        "drain (s)",
        "emails/s",
        "2 vs 1",
        "load",
        "who sent",
    )
    print(head)
    print("-" * len(head))
    by_key = {}
    for r in results:
        by_key.setdefault((r["mode"], r["servers"]), []).append(r["seconds"])
    for r in results:
        single = by_key.get((r["mode"], 1))
        ratio = ""
        if r["servers"] == 2 and single:
            ratio = "%.2fx" % (statistics.median(single) / r["seconds"])
        if r["mode"] == "cron":
            who = "cron batches per server: %s" % r["cron_batches"]
        else:
            who = "chunks per server: %s" % r["chunks"]
        print(
            "%-6s %-7s %10.1f %10.1f %10s %8.2f  %s"
            % (
                r["mode"],
                r["servers"],
                r["seconds"],
                count / r["seconds"],
                ratio,
                r["load"],
                who,
            )
        )
    print()
    print("Speed-up of two servers over one (drain time 1 server / 2 servers):")
    for mode in dict.fromkeys(r["mode"] for r in results):
        one, two = by_key.get((mode, 1)), by_key.get((mode, 2))
        if one and two:
            print(
                "  %-6s %.2fx  (%.1f s -> %.1f s, medians)"
                % (
                    mode,
                    statistics.median(one) / statistics.median(two),
                    statistics.median(one),
                    statistics.median(two),
                )
            )
    print()
    print("Generated Documents list, as user %s (ms)" % LIST_USER)
    head = "%-6s %-7s %-16s %14s %14s %14s %7s" % (
        "mode",
        "servers",
        "call",
        "idle p50/p95",
        "drain p50/p95",
        "drain max",
        "p95 x",
    )
    print(head)
    print("-" * len(head))
    for r in results:
        for method in ("web_search_read", "search_count"):
            idle = r["list"]["idle"][method]
            busy = r["list"]["drain"][method]
            print(
                "%-6s %-7s %-16s %14s %14s %14s %6.1fx"
                % (
                    r["mode"],
                    r["servers"],
                    method,
                    "%s/%s" % (ms(idle["p50"]), ms(idle["p95"])),
                    "%s/%s" % (ms(busy["p50"]), ms(busy["p95"])),
                    ms(busy["max"]),
                    busy["p95"] / idle["p95"],
                )
            )
    print(
        "(calls during the drain per run: %s)"
        % ", ".join(
            str(r["list"]["drain"]["web_search_read"]["count"]) for r in results
        )
    )
    print()
    print("Checks")
    ok = True
    for r in results:
        errors = sum(len(c["errors"]) for p in r["list"].values() for c in p.values())
        state = "ok" if not r["problems"] and not errors else "FAILED"
        ok = ok and state == "ok"
        print(
            "  %s, %s server(s): register %s; list errors %s: %s"
            % (r["mode"], r["servers"], r["register"], errors, state)
        )
        for problem in r["problems"][:10]:
            print("    PROBLEM: %s" % problem)
    return ok


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="emails (2000)")
    parser.add_argument(
        "--modes", default="cron,split", help="cron, split or both (default)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="drains per mode and server count (1)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=50,
        help="mail.mail.queue.batch.size: a cron run sends at most 10 batches (50)",
    )
    parser.add_argument(
        "--chunk", type=int, default=50, help="emails per call in split mode (50)"
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=1,
        help="split mode: HTTP workers of each server that send (1 of %s)" % WORKERS,
    )
    parser.add_argument(
        "--idle", type=int, default=30, help="list openings measured when idle (30)"
    )
    parser.add_argument(
        "--db-prefix", default="benchscale", help="database PREFIX_queue (benchscale)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept PREFIX_queue database"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    db = args.db_prefix + "_queue"
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    driver.LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    smtp_port = driver.free_port()
    results = []
    try:
        if args.reuse and driver.db_exists(db):
            say("reusing %s", db)
            bcc_queue.odoo_shell(
                db, "odoo_set_smtp_port", module="scale_out", port=smtp_port
            )
            expected = bcc_queue.odoo_shell(
                db, "odoo_prepare", module="scale_out", batch_size=args.batch_size
            )
        else:
            (tmp / "pdf").mkdir()
            expected = prepare_queue(
                db, args.count, smtp_port, tmp / "pdf", args.batch_size
            )
        count = len(expected["mails"])
        say("%s emails queued in %s", count, db)
        for index in range(args.rounds):
            order = (1, 2) if index % 2 == 0 else (2, 1)
            for mode in modes:
                for n_servers in order:
                    say("round %s: %s mode, %s server(s)", index + 1, mode, n_servers)
                    spool = tmp / ("spool-%s-%s-%s" % (index, mode, n_servers))
                    result = drain(
                        db,
                        expected,
                        n_servers,
                        mode,
                        smtp_port,
                        spool,
                        driver.LOG_DIR,
                        args.chunk,
                        senders=args.senders,
                        idle_openings=args.idle,
                    )
                    say("  %.1f s, %s", result["seconds"], result["problems"] or "ok")
                    results.append(result)
    finally:
        if not args.keep:
            driver.drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)
    ok = print_report(results, count, args)
    print()
    print(
        "total run time %.0f s; logs in %s"
        % (time.monotonic() - started, driver.LOG_DIR)
    )
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# Steps run inside `odoo-bin shell` (``env`` is the shell's superuser env)
# ---------------------------------------------------------------------------


def odoo_prepare(env, batch_size):
    """Ready the queued database for drains; report the emails to deliver.

    Other scheduled actions are postponed so that they do not blur the drain;
    the email queue manager waits for the drain to trigger it.
    """
    from datetime import timedelta

    from odoo import fields

    crons = env["ir.cron"].search([])
    later = fields.Datetime.now() + timedelta(days=365)
    crons.write({"nextcall": later})
    env["ir.cron.trigger"].search([]).unlink()
    env["ir.config_parameter"].set_param("mail.mail.queue.batch.size", batch_size)
    # the list user's password, without Odoo's "password changed" email
    user = env["res.users"].search([("login", "=", LIST_USER)])
    user._set_encrypted_password(user.id, user._crypt_context().hash(LIST_USER))
    env.cr.commit()
    mails = env["mail.mail"].search([("state", "=", "outgoing")], order="id")
    driver.result(
        {
            "mails": [
                [m.message_id, m.sengerio_bcc_holder and m.sengerio_bcc_email or ""]
                for m in mails
            ]
        }
    )


def odoo_set_smtp_port(env, port):
    server = env["ir.mail_server"].search([("name", "=", "Local SMTP sink")])
    server.smtp_port = port
    env.cr.commit()


if __name__ == "__main__":
    sys.exit(main())
