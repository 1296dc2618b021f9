"""Benchmark: drain a queue of document emails, vanilla Odoo vs sengerio_mailing.

What is measured: the time and memory Odoo needs to send ``--count`` queued
document emails (quotations, confirmed sale orders, customer invoices, credit
notes, RFQs and purchase orders, interleaved, each with its PDF) to a local
SMTP sink, once on a vanilla database and once on a database with
sengerio_mailing, which adds a hidden copy to the sender's address to each
envelope. For each database the timed part is only the queue drain,
``mail.mail.process_email_queue()`` until no email is left outgoing, run in
its own ``odoo-bin shell`` process:

- wall time of the drain and throughput (emails per second);
- peak memory: the high-water RSS (``ru_maxrss``) of that process, which
  includes loading the registry (also shown on its own);
- SQL queries per email, which unlike time does not depend on what else runs
  on the machine (the load average before each drain is shown too).

How: the script first copies the addon (as it is in the work tree, or as
committed in ``--addon-ref``) to a temporary folder, so that edits made
during the run do not change what is measured. It creates
``bench_vanilla`` (sale_management, sale_async_emails, account, purchase; no
demo data) with agents, customers, vendors and documents, duplicates it
(database and filestore) as ``bench_sengerio`` and installs the addon there,
so both hold the same data.
It queues one email per document in both databases through the real send
path (the mail composer of the Send buttons for sale and purchase orders, the
Send & Print wizard for invoices), sent by the document's agent with
``mail_notify_force_send=False`` so that the emails are queued. Queue creation
is not measured. So that the benchmark measures sending and not wkhtmltopdf,
one PDF per document model is rendered once with wkhtmltopdf and queue
creation reuses those bytes instead of rendering each report again.

Each round then drains a fresh copy of each queued database, one after the
other, alternating which goes first from one round to the next: every drain
sends the very same emails, and none runs on a database warmed up by another.

It then checks what went over the wire: one SMTP transaction per queued
email, each with its PDF, and for the addon exactly one envelope carrying the
sender's hidden copy per document that has one (never a ``Bcc`` header).

Run it with the project's virtualenv::

    source dev/common.sh && "$PY" bench/bcc_queue.py --count 200

The databases are dropped at the end unless ``--keep``. Logs are kept in
``var/bench/``. The exit status is non-zero when the wire check fails; the
throughput and memory targets are only reported.
"""

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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
    drop_db,
    free_port,
    odoo_cmd,
    render_pdf,
    run_logged,
    say,
    snapshot_addon,
    stub_pdf_rendering,
)
from driver import copy_db as duplicate_db  # noqa: E402
from driver import odoo_shell as driver_shell  # noqa: E402
from driver import result as _result  # noqa: E402

# main() appends the folder holding the snapshot of the addon to ADDONS_PATH.

VANILLA = "vanilla"
SENGERIO = "sengerio"
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
    duplicate_db(vanilla, sengerio)
    run_logged(
        odoo_cmd(
            "-d", sengerio, "-i", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn",
        ),
        sengerio,
    )  # fmt: skip


def queue_emails(dbs, pdf_dir):
    """Queue one email per document in both databases, in parallel."""
    with ThreadPoolExecutor(len(dbs)) as pool:
        futures = {
            label: pool.submit(odoo_shell, db, "odoo_queue", pdf_dir=str(pdf_dir))
            for label, db in dbs.items()
        }
        return {label: future.result() for label, future in futures.items()}


def drain(db, smtp_port, spool, queued):
    """Drain the queue of a fresh copy of ``db`` into an SMTP sink; measure, check.

    Every round drains the very same queue, and no database has its caches
    warmed by a previous drain.
    """
    from smtp_sink import SmtpSink

    copy = db + "_drain"
    (LOG_DIR / (copy + ".log")).unlink(missing_ok=True)
    duplicate_db(db, copy)
    load = os.getloadavg()[0]
    try:
        with SmtpSink(spool, port=smtp_port):
            result = odoo_shell(copy, "odoo_drain")
    finally:
        drop_db(copy)
    result["load"] = load
    result["wire"] = read_wire(spool)
    result["check"] = check_wire(queued, result)
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


def check_wire(queued, drained):
    """Compare what the sink received with what the queue step expected."""
    expected = queued["expected_bcc"]
    wire = drained["wire"]
    with_bcc = sum(len(v) for v in wire["hidden"].values())
    correct = sum(
        1 for msg_id, bcc in expected.items() if wire["hidden"].get(msg_id) == [[bcc]]
    )
    problems = []
    if wire["transactions"] != drained["queued"]:
        problems.append(
            "%s SMTP transactions for %s queued emails"
            % (wire["transactions"], drained["queued"])
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
    if drained["left"] or drained["failed"]:
        problems.append(
            "%s emails left in the queue, %s failed"
            % (drained["left"], drained["failed"])
        )
    return {"with_bcc": with_bcc, "correct": correct, "problems": problems}


def run_rounds(dbs, queued, rounds, smtp_port, tmp):
    """Drain copies of both queues ``rounds`` times, alternating the order."""
    results = []
    for index in range(rounds):
        order = [VANILLA, SENGERIO] if index % 2 == 0 else [SENGERIO, VANILLA]
        measures = {}
        for label in order:
            say("round %s/%s: draining a copy of %s", index + 1, rounds, dbs[label])
            spool = tmp / ("spool-%s-%s" % (index, label))
            measures[label] = drain(dbs[label], smtp_port, spool, queued[label])
        results.append({"order": order, "measures": measures})
    return results


def mib(kib):
    return kib / 1024.0


# Rows of the report whose ratio sengerio/vanilla means something.
RATIO_ROWS = (
    "drain time (s)",
    "throughput (emails/s)",
    "peak RSS (MiB)",
    "  RSS before the drain (MiB)",
    "SQL queries per email",
)


def print_report(results, queued, revision):
    print()
    print(
        "Draining %s queued document emails into a local SMTP sink "
        "(sengerio_mailing at %s)" % (queued[VANILLA]["queued"], revision)
    )
    print()
    head = "%-34s %12s %12s %8s" % ("", VANILLA, SENGERIO, "ratio")
    print(head)
    print("-" * len(head))
    rows = [
        ("drain time (s)", lambda m: m["seconds"], "%.2f"),
        ("throughput (emails/s)", lambda m: m["queued"] / m["seconds"], "%.1f"),
        ("peak RSS (MiB)", lambda m: mib(m["maxrss_end"]), "%.1f"),
        ("  RSS before the drain (MiB)", lambda m: mib(m["maxrss_start"]), "%.1f"),
        ("SQL queries per email", lambda m: m["queries"] / m["queued"], "%.1f"),
        ("load average before the drain", lambda m: m["load"], "%.2f"),
    ]
    ratios = {}
    for index, result in enumerate(results):
        print("round %s (%s first)" % (index + 1, result["order"][0]))
        for name, value, fmt in rows:
            v = value(result["measures"][VANILLA])
            s = value(result["measures"][SENGERIO])
            ratios.setdefault(name, []).append(s / v)
            ratio = "%8.3f" % (s / v) if name in RATIO_ROWS else ""
            print("%-34s %12s %12s %s" % ("  " + name, fmt % v, fmt % s, ratio))
    print(
        "%-34s %12.1f %12.1f" % (
            "queue creation, not timed (s)",
            queued[VANILLA]["seconds"],
            queued[SENGERIO]["seconds"],
        )
    )  # fmt: skip
    print()
    throughput = ratios["throughput (emails/s)"]
    memory = ratios["peak RSS (MiB)"]
    print_ratio("throughput ratio sengerio/vanilla", throughput, THROUGHPUT_TARGET, 1)
    print_ratio("peak memory ratio sengerio/vanilla", memory, MEMORY_TARGET, -1)


def print_ratio(name, ratios, target, sign):
    value = statistics.median(ratios)
    ok = (value - target) * sign >= 0
    print(
        "%-36s %.3f  (target %s %.2f: %s%s)"
        % (
            name,
            value,
            ">=" if sign > 0 else "<=",
            target,
            "met" if ok else "NOT met",
            ", median of %s rounds" % len(ratios) if len(ratios) > 1 else "",
        )
    )


def print_checks(results, queued):
    """Print what the sink received per round and database; False on a problem."""
    print()
    print("What went over the wire")
    types = queued[SENGERIO]["types"]
    print(
        "  queued in %s: %s; documents without a hidden copy: %s"
        % (
            SENGERIO,
            ", ".join("%s %s" % (n, t) for t, n in types),
            queued[SENGERIO]["no_bcc"],
        )
    )
    ok = True
    for index, result in enumerate(results):
        for label in (VANILLA, SENGERIO):
            m = result["measures"][label]
            wire, check = m["wire"], m["check"]
            print(
                "  round %s, %s: %s SMTP transactions for %s queued emails, "
                "%s with a PDF (%.1f KiB per message), %s Bcc headers"
                % (
                    index + 1, label, wire["transactions"], m["queued"],
                    wire["with_pdf"], wire["kib"], wire["bcc_headers"],
                )
            )  # fmt: skip
            print(
                "    %s envelopes with a hidden copy to the sender, %s expected "
                "(one per document that has one), %s right"
                % (
                    check["with_bcc"],
                    len(queued[label]["expected_bcc"]),
                    check["correct"],
                )
            )
            for problem in check["problems"]:
                ok = False
                print("    PROBLEM: %s" % problem)
    return ok


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=2000, help="document emails (default 2000)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="drains of each queue, alternating which database goes first (default 2)",
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
    return parser.parse_args()


def main():
    args = parse_args()
    dbs = {label: "%s_%s" % (args.db_prefix, label) for label in (VANILLA, SENGERIO)}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench_bcc_"))
    try:
        (tmp / "pdf").mkdir()
        (tmp / "addons").mkdir()
        revision = snapshot_addon(tmp / "addons", args.addon_ref)
        ADDONS_PATH.append(str(tmp / "addons"))
        say("measuring sengerio_mailing at %s", revision)
        smtp_port = free_port()
        prepare_databases(dbs, args.count, smtp_port, tmp / "pdf")
        say("queueing the emails in both databases (not timed, a few minutes)")
        queued = queue_emails(dbs, tmp / "pdf")
        results = run_rounds(dbs, queued, args.rounds, smtp_port, tmp)
    finally:
        if not args.keep:
            say("dropping %s", ", ".join(dbs.values()))
            for db in dbs.values():
                drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)
    print_report(results, queued, revision)
    ok = print_checks(results, queued)
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
    expected, types, no_bcc = {}, [], 0
    if "sengerio_bcc_email" in Message._fields:
        expected = {
            m.message_id: m.sengerio_bcc_email for m in new if m.sengerio_bcc_email
        }
        documents = new.filtered("sengerio_document_type")
        types = sorted(Counter(documents.mapped("sengerio_document_type")).items())
        no_bcc = len(documents.filtered("sengerio_bcc_note"))
    _result(
        {
            "queued": env["mail.mail"].search_count([("state", "=", "outgoing")]),
            "seconds": seconds,
            "expected_bcc": expected,
            "types": types,
            "no_bcc": no_bcc,
        }
    )


def odoo_drain(env):
    """Send the whole queue, timed; report time, peak RSS and leftovers."""
    import resource

    from odoo import sql_db

    def maxrss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB

    Mail = env["mail.mail"]
    outgoing = [("state", "=", "outgoing")]
    queued = Mail.search_count(outgoing)
    maxrss_start = maxrss()
    queries_start = sql_db.sql_counter  # SQL queries of all the process's cursors
    start = time.perf_counter()
    left = queued
    while left:
        Mail.process_email_queue()
        before, left = left, Mail.search_count(outgoing)
        if left >= before:
            break  # no progress: do not loop forever on failing emails
    seconds = time.perf_counter() - start
    queries = sql_db.sql_counter - queries_start
    _result(
        {
            "queued": queued,
            "seconds": seconds,
            "queries": queries,
            "left": left,
            "failed": Mail.search_count([("state", "=", "exception")]),
            "maxrss_start": maxrss_start,
            "maxrss_end": maxrss(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
