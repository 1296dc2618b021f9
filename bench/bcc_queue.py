"""Benchmark: post and send document emails, vanilla Odoo vs sengerio_mailing.

What is measured, on two databases made from the same data (vanilla, and a
copy of it with sengerio_mailing), ``--count`` documents each: quotations,
confirmed sale orders, customer invoices, credit notes, RFQs and purchase
orders, interleaved, each with its PDF.

- **post**: each document sent through its own flow (the mail composer of
  the Send buttons for sale and purchase orders, the Send & Print wizard for
  invoices) by its agent, the emails left to the queue;
- **send**: the queue sent to a local SMTP sink, as the mail cron does
  (``process_email_queue``, one commit per email);
- **post+send**: both, per document;
- peak RSS of each side's process, and SQL queries per document posted and
  per email sent (all cursors of the process, the register's sync after
  each commit included).

How: both sides run at once in two ``odoo-bin shell`` processes pinned to
the same CPU (``--cpu``), which take turns: a chunk of ``--chunk``
documents (or emails) on one side, then the same chunk on the other, who
goes first alternating. Noise from the rest of the machine then hits both
sides alike; the order does not decide. Each round starts from fresh
copies of both databases. The middle chunk of each phase runs under
cProfile on both sides (and is left out of the timings): the report shows
where the extra milliseconds go.

The script prints per-round figures and ratios, the per-chunk ratios, the
median ratios against the targets, the profile comparison, and what went
over the wire: one SMTP transaction per email, each with its PDF, and for
the addon exactly one envelope carrying the sender's hidden copy per
document that has one (never a ``Bcc`` header).

So that the benchmark measures mail and not wkhtmltopdf, one PDF per
document model is rendered once and the sends reuse those bytes. The addon
is copied first (as it is in the work tree, or as committed in
``--addon-ref``), so that edits made during the run do not change what is
measured.

Run it with the project's virtualenv::

    source dev/common.sh && "$PY" bench/bcc_queue.py --count 400 --rounds 3

The databases are dropped at the end unless ``--keep``; ``--reuse`` measures
again on kept ones. Logs are kept in ``var/bench/``. The exit status is
non-zero when the wire check fails; the targets are only reported.
"""

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

# dev/: the shared driver, and dev/smtp_sink.py (imported where needed, not
# in the Odoo processes)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev"))
from driver import (  # noqa: E402
    ADDONS_PATH,
    LOG_DIR,
    ROOT,
    copy_db,  # noqa: E402
    drop_db,
    free_port,
    odoo_cmd,
    render_pdf,
    run_logged,
    say,
    snapshot_addon,
    stub_pdf_rendering,
)
from driver import odoo_shell as driver_shell  # noqa: E402
from driver import result as _result  # noqa: E402

# main() appends the folder holding the snapshot of the addon to ADDONS_PATH.

VANILLA = "vanilla"
SENGERIO = "sengerio"
LABELS = (VANILLA, SENGERIO)
BASE_MODULES = "sale_management,sale_async_emails,account,purchase"
ALIAS_DOMAIN = "bench.localhost"

# Targets from the issue: the addon may cost at most 5% throughput and 10%
# peak memory.
THROUGHPUT_TARGET = 0.95
MEMORY_TARGET = 1.10

# Document kinds, in the order they are interleaved in the queue.
KINDS = ("quotation", "sale_order", "invoice", "credit_note", "purchase_order")
MOVE_TYPES = (("out_invoice", "invoice"), ("out_refund", "credit_note"))
AGENT_GROUPS = (
    "sales_team.group_sale_salesman_all_leads",
    "account.group_account_invoice",
    "purchase.group_purchase_user",
)
# One report per document model, rendered once with wkhtmltopdf.
REPORTS = {
    "sale.order": "sale.action_report_saleorder",
    "account.move": "account.account_invoices",
    "purchase.order": "purchase.action_report_purchase_order",
}


# ---------------------------------------------------------------------------
# Driver: databases, processes, SMTP sink, report
# ---------------------------------------------------------------------------


def odoo_shell(db, step, env=None, module="bcc_queue", **kwargs):
    """Run ``step(env, **kwargs)`` of ``module`` (in bench/) in an ``odoo-bin shell``.

    Returns what the step printed after :data:`RESULT_PREFIX`, decoded.
    """
    return driver_shell(db, module, step, env=env, **kwargs)


def prepare_databases(dbs, count, smtp_port, pdf_dir):
    """Create the vanilla database with data, clone it, add the addon."""
    vanilla, sengerio = dbs[VANILLA], dbs[SENGERIO]
    for db in (vanilla, sengerio):
        drop_db(db)
        (LOG_DIR / (db + ".log")).unlink(missing_ok=True)
    say("installing %s on %s (a minute or two)", BASE_MODULES, vanilla)
    run_logged(
        odoo_cmd(
            "-d", vanilla, "-i", BASE_MODULES, "--without-demo=all",
            "--stop-after-init", "--no-http", "--log-level=warn",
        ),
        vanilla,
    )  # fmt: skip
    env = dict(os.environ, SMTP_PORT=str(smtp_port), ALIAS_DOMAIN=ALIAS_DOMAIN)
    run_logged(
        odoo_cmd("shell", "-d", vanilla, "--no-http", "--log-level", "warn"),
        vanilla,
        stdin_text=(ROOT / "dev" / "configure_db.py").read_text(),
        env=env,
    )
    say("creating %s documents and rendering their PDFs once", count)
    created = odoo_shell(vanilla, "odoo_setup", count=count, pdf_dir=str(pdf_dir))
    say("documents: %s", ", ".join("%s %s" % (v, k) for k, v in created.items()))
    say("duplicating %s as %s and installing sengerio_mailing", vanilla, sengerio)
    copy_db(vanilla, sengerio)
    run_logged(
        odoo_cmd(
            "-d", sengerio, "-i", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn",
        ),
        sengerio,
    )  # fmt: skip


def set_smtp_port(db, port):
    subprocess.run(
        ["psql", "-d", db, "-qc", "UPDATE ir_mail_server SET smtp_port = %d" % port],
        check=True,
    )


# ---------------------------------------------------------------------------
# Measurement: both databases take turns, chunk by chunk, in one run
# ---------------------------------------------------------------------------


class Worker:
    """An ``odoo-bin shell`` on one database that does timed chunks on request.

    It runs :func:`odoo_worker` and talks to the driver over a local
    connection, so that it stays up (registry loaded, caches warm) while the
    other database's worker takes its turn.
    """

    def __init__(self, db, listener, authkey, pdf_dir, cpu):
        code = (
            "import sys\nsys.path.insert(0, %r)\nimport bcc_queue\n"
            "bcc_queue.odoo_worker(env, %r, %r, %r)\n"
        ) % (
            str(Path(__file__).resolve().parent),
            list(listener.address),
            authkey.hex(),
            str(pdf_dir),
        )
        self.log = open(LOG_DIR / (db + ".log"), "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            odoo_cmd("shell", "-d", db, "--no-http", "--log-level", "warn"),
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if cpu is not None:
            # both workers on the same CPU: one runs while the other waits
            os.sched_setaffinity(self.proc.pid, {cpu})
        self.proc.stdin.write(code)
        self.proc.stdin.close()
        self.conn = listener.accept()

    def ask(self, **command):
        self.conn.send(command)
        return self.conn.recv()

    def close(self):
        try:
            self.ask(do="quit")
            self.proc.wait(120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


def run_round(index, dbs, args, tmp, cpu):
    """One round: fresh copies of both databases, their workers take turns.

    The documents are posted (sent through their flow, the emails queued)
    in chunks, vanilla and addon alternating chunk by chunk; then the queue
    is sent the same way. The middle chunk of each phase runs under the
    profiler on both sides and is left out of the timings.
    """
    from multiprocessing.connection import Listener

    from smtp_sink import SmtpSink

    copies = {label: "%s_r" % db for label, db in dbs.items()}
    sinks, workers = {}, {}
    authkey = os.urandom(16)
    try:
        with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
            for label in LABELS:
                copy_db(dbs[label], copies[label])
                spool = tmp / ("spool-%s-%s" % (index, label))
                sinks[label] = SmtpSink(spool).start()
                set_smtp_port(copies[label], sinks[label].port)
            for label in LABELS:
                workers[label] = Worker(
                    copies[label], listener, authkey, tmp / "pdf", cpu
                )
            chunks = {label: {"post": [], "send": []} for label in LABELS}
            turns = -(-args.count // args.chunk)
            for phase in ("post", "send"):
                say("round %s: %s, %s chunks of %s per side", index + 1, phase,
                    turns, args.chunk)  # fmt: skip
                for turn in range(turns):
                    # who goes first alternates by chunk and by round
                    order = LABELS if (turn + index) % 2 == 0 else LABELS[::-1]
                    for label in order:
                        chunks[label][phase].append(
                            workers[label].ask(
                                do=phase, size=args.chunk, profile=turn == turns // 2
                            )
                        )
            reports = {label: workers[label].ask(do="report") for label in LABELS}
    finally:
        for worker in workers.values():
            worker.close()
        for sink in sinks.values():
            sink.stop()
        for copy in copies.values():
            drop_db(copy)
    result = {"chunks": chunks, "reports": reports, "checks": {}}
    for label in LABELS:
        wire = read_wire(sinks[label].handler.spool)
        result["checks"][label] = check_wire(reports[label], wire)
        result["checks"][label]["wire"] = wire
    return result


def read_wire(spool):
    """Summarize the envelopes in ``spool``: hidden recipients per Message-Id."""
    from smtp_sink import read_spool

    hidden = {}
    transactions = bcc_headers = with_pdf = size = 0
    for meta in read_spool(spool):
        transactions += 1
        size += len(meta["raw"])
        message = BytesParser(policy=policy.compat32).parsebytes(meta["raw"])
        if message["Bcc"] is not None:
            bcc_headers += 1
        if any(p.get_content_type() == "application/pdf" for p in message.walk()):
            with_pdf += 1
        visible = {
            addr.lower()
            for _name, addr in getaddresses(
                message.get_all("To", []) + message.get_all("Cc", [])
            )
        }
        extra = sorted({r.lower() for r in meta["rcpt_tos"]} - visible)
        if extra:
            hidden.setdefault(message["Message-Id"].strip(), []).append(extra)
    return {
        "transactions": transactions,
        "bcc_headers": bcc_headers,
        "with_pdf": with_pdf,
        "kib": size / 1024.0 / max(transactions, 1),
        "hidden": hidden,
    }


def check_wire(report, wire):
    """Compare what the sink received with what the worker expected."""
    expected = report["expected_bcc"]
    with_bcc = sum(len(v) for v in wire["hidden"].values())
    correct = sum(
        1 for msg_id, bcc in expected.items() if wire["hidden"].get(msg_id) == [[bcc]]
    )
    problems = []
    if wire["transactions"] != report["queued"]:
        problems.append(
            "%s SMTP transactions for %s queued emails"
            % (wire["transactions"], report["queued"])
        )
    if correct != len(expected) or with_bcc != len(expected):
        problems.append(
            "%s envelopes with a hidden copy, %s of them right, %s expected"
            % (with_bcc, correct, len(expected))
        )
    if wire["bcc_headers"]:
        problems.append("%s messages with a Bcc header" % wire["bcc_headers"])
    if wire["with_pdf"] != wire["transactions"]:
        problems.append(
            "%s messages without a PDF" % (wire["transactions"] - wire["with_pdf"])
        )
    if report["left"] or report["failed"]:
        problems.append(
            "%s emails left in the queue, %s failed"
            % (report["left"], report["failed"])
        )
    return {"with_bcc": with_bcc, "correct": correct, "problems": problems}


def mib(kib):
    return kib / 1024.0


def _timed(chunks):
    """Chunks that count: the profiled one is left out on both sides."""
    return [c for c in chunks if not c["profile"]]


def _per_item(chunks, key):
    chunks = _timed(chunks)
    return sum(c[key] for c in chunks) / max(sum(c["items"] for c in chunks), 1)


def round_figures(result):
    """Per side: ms and queries per document posted / email sent, peak RSS."""
    figures = {}
    for label in LABELS:
        post, send = result["chunks"][label]["post"], result["chunks"][label]["send"]
        figures[label] = {
            "post ms/document": 1000 * _per_item(post, "seconds"),
            "send ms/email": 1000 * _per_item(send, "seconds"),
            "post+send ms/document": 1000
            * (_per_item(post, "seconds") + _per_item(send, "seconds")),
            "post queries/document": _per_item(post, "queries"),
            "send queries/email": _per_item(send, "queries"),
            "peak RSS (MiB)": mib(result["reports"][label]["maxrss"]),
        }
    return figures


# Throughput ratios (vanilla time / addon time) and their targets; RSS is
# a ratio addon / vanilla.
TARGETS = (
    ("send", "send ms/email", THROUGHPUT_TARGET, 1),
    ("post+send", "post+send ms/document", THROUGHPUT_TARGET, 1),
    ("post", "post ms/document", None, 1),
    ("peak RSS", "peak RSS (MiB)", MEMORY_TARGET, -1),
)


def ratio(figures, key, sign):
    v, s = figures[VANILLA][key], figures[SENGERIO][key]
    return v / s if sign > 0 else s / v


def print_report(results, args, revision):
    print()
    print(
        "%s documents per side and round, in chunks of %s taking turns "
        "(sengerio_mailing at %s%s)"
        % (
            args.count,
            args.chunk,
            revision,
            ", pinned to CPU %s" % args.cpu if args.cpu is not None else "",
        )
    )
    ratios = {name: [] for name, *_rest in TARGETS}
    for index, result in enumerate(results):
        figures = round_figures(result)
        print()
        head = "round %-28s %12s %12s %8s" % (index + 1, VANILLA, SENGERIO, "ratio")
        print(head)
        print("-" * len(head))
        for key in figures[VANILLA]:
            sign = -1 if "RSS" in key or "queries" in key else 1
            print(
                "  %-32s %12.2f %12.2f %8.3f"
                % (key, figures[VANILLA][key], figures[SENGERIO][key],
                   ratio(figures, key, sign))
            )  # fmt: skip
        for name, key, _target, sign in TARGETS:
            ratios[name].append(ratio(figures, key, sign))
        for phase in ("post", "send"):
            per_chunk = [
                v["seconds"] / s["seconds"]
                for v, s in zip(
                    _timed(result["chunks"][VANILLA][phase]),
                    _timed(result["chunks"][SENGERIO][phase]),
                    strict=True,
                )
            ]
            print(
                "  %s chunk ratios (vanilla time / addon time): median %.3f, "
                "quartiles %.3f-%.3f\n    %s"
                % (
                    phase,
                    statistics.median(per_chunk),
                    *_quartiles(per_chunk),
                    " ".join("%.2f" % r for r in per_chunk),
                )
            )
    print()
    for name, _key, target, sign in TARGETS:
        values = ratios[name]
        value = statistics.median(values)
        what = "throughput" if sign > 0 else "memory"
        verdict = ""
        if target is not None:
            ok = (value - target) * sign >= 0
            verdict = "  (target %s %.2f: %s)" % (
                ">=" if sign > 0 else "<=",
                target,
                "met" if ok else "NOT met",
            )
        print(
            "%-10s %s ratio %.3f, rounds %s%s"
            % (name, what, value, " ".join("%.3f" % v for v in values), verdict)
        )
    print_profile(results[-1])


def _quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def print_profile(result, top=12):
    """Where the extra milliseconds go: one profiled chunk per side and phase."""
    for phase in ("post", "send"):
        profiles = {
            label: next(c for c in result["chunks"][label][phase] if c["profile"])
            for label in LABELS
        }
        items = profiles[VANILLA]["items"] or 1
        total = {label: profiles[label]["seconds"] * 1000 / items for label in LABELS}
        print()
        print(
            "profile of one %s chunk per side (%s items, under the profiler): "
            "%.1f ms against %.1f ms per item" % (
                phase, items, total[SENGERIO], total[VANILLA],
            )
        )  # fmt: skip
        cumulative = {
            label: {row[0]: row for row in profiles[label]["profile"]}
            for label in LABELS
        }
        # Odoo's own functions, run on both sides: the addon's overrides have
        # no vanilla counterpart and their time includes the Odoo code they
        # wrap, so they are listed apart
        diffs = []
        for name, row in cumulative[SENGERIO].items():
            base = cumulative[VANILLA].get(name)
            if base:
                diffs.append((row[3] - base[3], name, row[1], base[1]))
        diffs.sort(reverse=True)
        print(
            "  Odoo functions with the most extra cumulative time "
            "(ms per item, calls addon/vanilla):"
        )
        for extra, name, calls, base_calls in diffs[:top]:
            print("    %+7.2f  %s (%s/%s)" % (1000 * extra / items, name, calls,
                                             base_calls))  # fmt: skip
        own = sorted(
            (row for name, row in cumulative[SENGERIO].items() if "sengerio" in name),
            key=lambda row: -row[3],
        )
        print(
            "  the addon's own functions (cumulative ms per item, with the "
            "Odoo code they wrap; calls):"
        )
        for name, calls, _tottime, cumtime in own[:top]:
            print("    %7.2f  %s (%s)" % (1000 * cumtime / items, name, calls))


def print_checks(results):
    """Print what the sinks received per round and side; False on a problem."""
    print()
    print("What went over the wire")
    ok = True
    for index, result in enumerate(results):
        for label in LABELS:
            check, report = result["checks"][label], result["reports"][label]
            wire = check["wire"]
            print(
                "  round %s, %s: %s SMTP transactions for %s queued emails, "
                "%s with a PDF (%.1f KiB per message), %s Bcc headers; "
                "%s envelopes with a hidden copy, %s expected, %s right"
                % (
                    index + 1, label, wire["transactions"], report["queued"],
                    wire["with_pdf"], wire["kib"], wire["bcc_headers"],
                    check["with_bcc"], len(report["expected_bcc"]), check["correct"],
                )
            )  # fmt: skip
            if label == SENGERIO:
                print("    queued: %s; without a hidden copy: %s" % (
                    ", ".join("%s %s" % (n, t) for t, n in report["types"]),
                    report["no_bcc"],
                ))  # fmt: skip
            for problem in check["problems"]:
                ok = False
                print("    PROBLEM: %s" % problem)
    return ok


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=400, help="documents per side (default 400)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each on fresh copies (3)"
    )
    parser.add_argument(
        "--chunk", type=int, default=20, help="documents or emails per turn (20)"
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="pin both workers to this CPU (default 0; -1: not pinned)",
    )
    parser.add_argument(
        "--db-prefix",
        default="bench",
        help="databases PREFIX_vanilla and PREFIX_sengerio (default bench)",
    )
    parser.add_argument(
        "--addon-ref",
        metavar="COMMIT",
        help="measure sengerio_mailing as committed in COMMIT "
        "(default: as it is in the work tree when the run starts)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases at the end"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure on the databases kept by --keep (after -u of the addon)",
    )
    args = parser.parse_args()
    if args.cpu < 0:
        args.cpu = None
    return args


def main():
    args = parse_args()
    dbs = {label: "%s_%s" % (args.db_prefix, label) for label in LABELS}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench_bcc_"))
    keep_pdf = LOG_DIR / ("%s_pdf" % args.db_prefix)
    try:
        (tmp / "addons").mkdir()
        revision = snapshot_addon(tmp / "addons", args.addon_ref)
        ADDONS_PATH.append(str(tmp / "addons"))
        say("measuring sengerio_mailing at %s", revision)
        if args.reuse:
            shutil.copytree(keep_pdf, tmp / "pdf")
            run_logged(
                odoo_cmd("-d", dbs[SENGERIO], "-u", "sengerio_mailing",
                         "--stop-after-init", "--no-http", "--log-level=warn"),
                dbs[SENGERIO],
            )  # fmt: skip
        else:
            (tmp / "pdf").mkdir()
            prepare_databases(dbs, args.count, free_port(), tmp / "pdf")
            if args.keep:
                shutil.rmtree(keep_pdf, ignore_errors=True)
                shutil.copytree(tmp / "pdf", keep_pdf)
        results = [
            run_round(index, dbs, args, tmp, args.cpu) for index in range(args.rounds)
        ]
    finally:
        if not args.keep:
            say("dropping %s", ", ".join(dbs.values()))
            for db in dbs.values():
                drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)
    print_report(results, args, revision)
    ok = print_checks(results)
    print()
    print("total run time %.0f s; logs in %s" % (time.monotonic() - started, LOG_DIR))
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# Steps run inside `odoo-bin shell` (``env`` is the shell's superuser env)
# ---------------------------------------------------------------------------


def _split(count):
    """How many documents of each kind, as even as possible."""
    return {
        kind: count // len(KINDS) + (index < count % len(KINDS))
        for index, kind in enumerate(KINDS)
    }


def odoo_setup(env, count, pdf_dir):
    """Create agents, customers, vendors and ``count`` documents; render PDFs."""
    from odoo import Command

    env = env(context=dict(env.context, tracking_disable=True))
    env.company.write(
        {
            "email": "office@bench.example.com",
            "external_report_layout_id": env.ref("web.external_layout_standard").id,
        }
    )
    agents = (
        env["res.users"]
        .with_context(no_reset_password=True)
        .create(
            [
                {
                    "name": "Agent %s" % i,
                    "login": "agent%s" % i,
                    "email": "agent%s@bench.example.com" % i,
                    "groups_id": [
                        Command.set([env.ref(group).id for group in AGENT_GROUPS])
                    ],
                }
                for i in range(1, 4)
            ]
        )
    )
    customers = env["res.partner"].create(
        [
            {"name": "Customer %03d" % i, "email": "customer%03d@bench.example.com" % i}
            for i in range(1, 41)
        ]
    )
    vendors = env["res.partner"].create(
        [
            {"name": "Vendor %02d" % i, "email": "vendor%02d@bench.example.com" % i}
            for i in range(1, 11)
        ]
    )
    product = env["product.product"].create(
        {
            "name": "Guided city tour",
            "type": "service",
            "list_price": 120.0,
            "standard_price": 80.0,
        }
    )
    counts = _split(count)

    def line(i):
        return {"product_id": product.id, "price_unit": 120.0 + i % 7}

    nq, ns = counts["quotation"], counts["sale_order"]
    orders = env["sale.order"].create(
        [
            {
                "partner_id": customers[i % len(customers)].id,
                "user_id": agents[i % len(agents)].id,
                "order_line": [Command.create(dict(line(i), product_uom_qty=2))],
            }
            for i in range(nq + ns)
        ]
    )
    orders[nq:].action_confirm()
    moves = env["account.move"].create(
        [
            {
                "move_type": move_type,
                "partner_id": customers[i % len(customers)].id,
                "invoice_user_id": agents[i % len(agents)].id,
                "invoice_line_ids": [Command.create(dict(line(i), quantity=2))],
            }
            for move_type, kind in MOVE_TYPES
            for i in range(counts[kind])
        ]
    )
    moves.action_post()
    npo = counts["purchase_order"]
    purchases = env["purchase.order"].create(
        [
            {
                "partner_id": vendors[i % len(vendors)].id,
                "user_id": agents[i % len(agents)].id,
                "order_line": [Command.create(dict(line(i), product_qty=2))],
            }
            for i in range(npo)
        ]
    )
    # half RFQs, half confirmed purchase orders
    purchases[npo // 2 :].button_confirm()
    _render_pdfs(env, pdf_dir, (orders, moves, purchases))
    env.cr.commit()
    _result(
        {
            "quotations": nq,
            "sale orders": ns,
            "invoices": counts["invoice"],
            "credit notes": counts["credit_note"],
            "RFQs": npo - npo // 2,
            "purchase orders": npo // 2,
        }
    )


def _render_pdfs(env, pdf_dir, recordsets):
    """Render one real PDF per document model into ``pdf_dir``."""
    for records in recordsets:
        if records:
            pdf = render_pdf(env, REPORTS[records._name], records[:1])
            (Path(pdf_dir) / (records._name + ".pdf")).write_bytes(pdf)


def _reuse_rendered_pdfs(pdf_dir):
    """Make report rendering return the PDFs rendered once by ``odoo_setup``."""
    stub_pdf_rendering(
        {path.stem: path.read_bytes() for path in Path(pdf_dir).glob("*.pdf")}
    )


def _documents(env):
    """The documents to send, interleaved by kind."""
    orders = env["sale.order"].search([], order="id")
    moves = env["account.move"].search([("state", "=", "posted")], order="id")
    by_kind = {
        "quotation": orders.filtered(lambda o: o.state in ("draft", "sent")),
        "sale_order": orders.filtered(lambda o: o.state == "sale"),
        "invoice": moves.filtered(lambda m: m.move_type == "out_invoice"),
        "credit_note": moves.filtered(lambda m: m.move_type == "out_refund"),
        "purchase_order": env["purchase.order"].search([], order="id"),
    }
    for group in itertools.zip_longest(*(by_kind[kind] for kind in KINDS)):
        yield from (record for record in group if record)


def _send_with_composer(env, action):
    """What the Send button's form does: a composer with the action context."""
    composer = env["mail.compose.message"].with_context(**action["context"])
    composer.create({}).action_send_mail()


def _send(record):
    """Send one document by email the way its Send button does."""
    if record._name == "sale.order":
        _send_with_composer(record.env, record.action_quotation_send())
    elif record._name == "purchase.order":
        is_rfq = record.state in ("draft", "sent")
        action = record.with_context(send_rfq=is_rfq).action_rfq_send()
        _send_with_composer(record.env, action)
    else:
        action = record.action_send_and_print()
        wizard = record.env["account.move.send.wizard"].with_context(
            **action["context"]
        )
        wizard.create({}).action_send_and_print()


def _expected_copies(messages):
    """Hidden copies the sink must see: ``{Message-Id: bcc}``, types, no copy."""
    if "sengerio_bcc_email" not in messages._fields:
        return {}, [], 0
    expected = {
        m.message_id: m.sengerio_bcc_email for m in messages if m.sengerio_bcc_email
    }
    documents = messages.filtered("sengerio_document_type")
    types = sorted(Counter(documents.mapped("sengerio_document_type")).items())
    return expected, types, len(documents.filtered("sengerio_bcc_note"))


def odoo_queue(env, pdf_dir, part=0, parts=1):
    """Queue one email per document, sent by its agent; report what to expect.

    With ``parts`` > 1, only the documents of the ``part``-th share of the
    partners, so that several processes can share the work without writing
    on the same partners.
    """
    _reuse_rendered_pdfs(pdf_dir)
    Message = env["mail.message"]
    last_id = Message.search([], order="id desc", limit=1).id
    start = time.perf_counter()
    documents = (d for d in _documents(env) if d.partner_id.id % parts == part)
    for index, record in enumerate(documents):
        agent = record.invoice_user_id if record._name == "account.move" else None
        agent = agent or record.user_id
        _send(record.with_user(agent).with_context(mail_notify_force_send=False))
        if index % 100 == 99:
            env.cr.commit()
            env.invalidate_all()
    env.cr.commit()
    seconds = time.perf_counter() - start
    new = Message.search([("id", ">", last_id)])
    expected, types, no_bcc = _expected_copies(new)
    _result(
        {
            "queued": env["mail.mail"].search_count([("state", "=", "outgoing")]),
            "seconds": seconds,
            "expected_bcc": expected,
            "types": types,
            "no_bcc": no_bcc,
        }
    )


def odoo_worker(env, address, authkey, pdf_dir):
    """Post documents and send the queue in chunks, as the driver asks.

    Each chunk is timed with its commit (and what runs after it), with the
    SQL queries of every cursor of the process; with ``profile``, under
    cProfile, whose summary comes back with the result.
    """
    import cProfile
    import pstats
    import resource
    from multiprocessing.connection import Client

    from odoo import sql_db

    _reuse_rendered_pdfs(pdf_dir)
    conn = Client(tuple(address), authkey=bytes.fromhex(authkey))
    Message, Mail = env["mail.message"], env["mail.mail"]
    last_id = Message.search([], order="id desc", limit=1).id
    documents = [(record._name, record.id) for record in _documents(env)]
    env.cr.commit()
    while True:
        command = conn.recv()
        todo = command["do"]
        if todo == "quit":
            conn.send(None)
            return
        if todo == "report":
            conn.send(_worker_report(env, last_id))
            continue
        if todo == "post":
            items = documents[: command["size"]]
            del documents[: command["size"]]

            def work(items=items):
                for model, record_id in items:
                    record = env[model].browse(record_id)
                    agent = (
                        record.invoice_user_id if model == "account.move" else None
                    ) or record.user_id
                    _send(record.with_user(agent).with_context(
                        mail_notify_force_send=False
                    ))  # fmt: skip
                env.cr.commit()

        else:
            items = Mail.search(
                [("state", "=", "outgoing")], order="id", limit=command["size"]
            ).ids

            def work(items=items):
                # as the mail cron does: one commit per email
                Mail.process_email_queue(ids=items)

        profiler = cProfile.Profile() if command.get("profile") else None
        queries = sql_db.sql_counter
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        work()
        if profiler:
            profiler.disable()
        result = {
            "items": len(items),
            "seconds": time.perf_counter() - start,
            "queries": sql_db.sql_counter - queries,
            "profile": _profile_rows(pstats.Stats(profiler)) if profiler else None,
        }
        env.invalidate_all()
        result["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send(result)


def _profile_rows(stats, min_seconds=0.0005):
    """``[(function, calls, own seconds, cumulative seconds)]`` of a profile."""
    rows = []
    for (path, line, func), (
        _cc,
        calls,
        tottime,
        cumtime,
        _callers,
    ) in stats.stats.items():
        if cumtime < min_seconds:
            continue
        for marker in ("/addons/", "/odoo/", "/lib/python"):
            if marker in path:
                path = path.rsplit(marker, 1)[1]
                break
        rows.append(("%s:%s(%s)" % (path, line, func), calls, tottime, cumtime))
    return rows


def _worker_report(env, last_id):
    """What the sink must have received, and how the queue ended."""
    import resource

    Message, Mail = env["mail.message"], env["mail.mail"]
    new = Message.search([("id", ">", last_id)])
    expected, types, no_bcc = _expected_copies(new)
    sent = env["mail.notification"].search_count(
        [("mail_message_id", ">", last_id), ("notification_type", "=", "email")]
    )
    return {
        "queued": sent,
        "expected_bcc": expected,
        "types": types,
        "no_bcc": no_bcc,
        "left": Mail.search_count([("state", "=", "outgoing")]),
        "failed": Mail.search_count([("state", "=", "exception")]),
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    sys.exit(main())
