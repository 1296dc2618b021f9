"""Benchmark: opening the Generated Documents list at 10,000 and 1,000,000 entries.

Requirement (from the issue): with 1,000,000 entries, opening the list costs
at most 1.5 times the same calls at 10,000 entries, for a manager and for a
salesperson with *Own Documents Only*, and those calls are index-backed,
with no sequential scans at the large size. The calls are the ones the web client
makes when it opens *Generated Documents* (``sengerio.generated.document``):

- ``list``: ``web_search_read`` of the default list view (``limit=80``, the
  default order, ``count_limit=10001``), which also counts the matching
  entries (``search_count`` up to 10,001);
- ``count``: ``search_count`` of the whole list, as a list's pager asks;
- ``bounced``: the same call with the *Bounced* filter
  (``[('state', '=', 'bounced')]``);
- ``group by type``: ``web_read_group`` grouped by ``document_type``, the
  count per type shown by a grouped list.

The specification of ``web_search_read`` and the aggregates of
``web_read_group`` are built from the list view the user gets from
``get_views``, as the web client does. Each call runs as a user, record rules
applied, in a new cursor and environment (like one HTTP request), ``--repeat``
times after two warm-up runs; the median is reported, with the part of it
spent in PostgreSQL. All sizes are measured in one ``odoo-bin shell``, run
after run in turn, so that the load of the machine weighs the same on each
size. The users are a
*Generated Documents / Manager* (sees every entry of their company; the
kept counts answer) and a salesperson with *Sales / User: Own Documents
Only* (sees the entries of the orders and invoices she may read; counted on
the register).

How: the script installs ``sengerio_mailing`` (no demo data) in
``PREFIX_base``, creates two companies, agents, customers, journals and the
two users, duplicates it as ``PREFIX_<size>`` for each size and fills it
with SQL (``INSERT ... SELECT generate_series``, deterministic): one real
document per entry (sale orders, invoices and credit notes, purchase orders,
payment receipts, with the columns their record rules read), then the
entries, with dates spread over three years, a mix of document types, about
2% bounced and 1% failed, 80% in the users' company, one recipient line per
entry. The salesperson owns the documents of ``OWN_ENTRIES`` (1,250) entries
at every size: a bigger register comes from more salespeople, not from one
salesperson sending a hundred times more. Then ``VACUUM ANALYZE``, as
autovacuum would do on a table that grows by inserts (it also sets the
visibility map that index-only scans need).

It then captures the SQL each call issues and runs ``EXPLAIN (ANALYZE,
BUFFERS)`` on the statements that read the register, and reports the scans
they use and any sequential scan. Full plans go to
``var/bench/register_plans_<size>.txt``.

Run it with the project's virtualenv::

    source dev/common.sh && "$PY" bench/register_list.py
    source dev/common.sh && "$PY" bench/register_list.py --sizes 1000,100000

The databases are dropped at the end unless ``--keep``; ``--reuse`` measures
kept databases again (after updating the addon in them). The exit status is
always 0 when the run completes: the targets are only reported.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg2
from psycopg2.extensions import AsIs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev"))
from driver import (  # noqa: E402
    ADDONS_PATH,
    LOG_DIR,
    REGISTER_TABLES,
    ROOT,
    addon_revision,
    copy_db,
    db_exists,
    drop_db,
    odoo_cmd,
    psql,
    run_logged,
)
from driver import odoo_shell as driver_shell  # noqa: E402
from driver import (
    result as shell_result,
)

ADDONS_PATH.append(str(ROOT))
MODEL = "sengerio.generated.document"
# the documents' tables, vacuumed with the register's
DOCUMENT_TABLES = ("sale_order", "account_move", "purchase_order", "account_payment")
RATIO_TARGET = 1.5
COUNT_LIMIT = 10001  # the web client counts up to 10,000 (+1)
LIMIT = 80
USERS = (
    ("manager", "benchreg_manager", "sengerio_mailing.sengerio_mailing_group_manager"),
    ("sales", "benchreg_sales", "sales_team.group_sale_salesman"),
)
CALLS = ("list", "count", "bounced", "group by type")
CUSTOMERS = 200
AGENTS = 8


# ---------------------------------------------------------------------------
# Driver: databases, processes, report
# ---------------------------------------------------------------------------


def say(msg, *args):
    print("[bench] " + (msg % args if args else msg), file=sys.stderr, flush=True)


def odoo_shell(db, step, **kwargs):
    """Run ``step(env, **kwargs)`` of this module in an ``odoo-bin shell``."""
    found = driver_shell(db, "register_list", step, **kwargs)
    if found is None:
        raise RuntimeError("no result from %s in %s" % (step, db))
    return found


def prepare_base(base):
    """Install the addon with companies, agents, customers and the two users."""
    drop_db(base)
    (LOG_DIR / (base + ".log")).unlink(missing_ok=True)
    say("installing sengerio_mailing in %s (a minute or two)", base)
    run_logged(
        odoo_cmd(
            "-d", base, "-i", "sengerio_mailing", "--without-demo=all",
            "--stop-after-init", "--no-http", "--log-level=warn",
        ),
        base,
    )  # fmt: skip
    return odoo_shell(base, "odoo_setup")


def fill_register(db, size, people):
    """Insert ``size`` entries and one recipient line each, with plain SQL."""
    start = time.monotonic()
    conn = psycopg2.connect(dbname=db)
    try:
        with conn, conn.cursor() as cr:
            # no foreign key triggers (like pg_restore --disable-triggers): the
            # ids all come from this database
            cr.execute("SET LOCAL session_replication_role = replica")
            cr.execute("SELECT count(*) FROM sengerio_generated_document")
            if cr.fetchone()[0]:
                raise RuntimeError("%s already has generated documents" % db)
            cr.execute("SELECT setseed(0.42)")
            params = dict(
                people,
                **KIND_PARAMS,
                count=size,
                own_every=max(1, size // OWN_ENTRIES),
            )
            cr.execute(CREATE_ENTRIES, params)
            for statement in INSERT_SOURCE_DOCUMENTS:
                cr.execute(statement, params)
            cr.execute(INSERT_DOCUMENTS, params)
            cr.execute(INSERT_RECIPIENTS, people)
            # the addon's counts follow the register (its triggers fire also
            # in replica mode): check it, the list's counts rely on them
            cr.execute(
                "SELECT (SELECT count(*) FROM sengerio_generated_document), "
                "(SELECT COALESCE(sum(count), 0) "
                "FROM sengerio_generated_document_count)"
            )
            entries, counted = cr.fetchone()
            if entries != counted:
                raise RuntimeError(
                    "%s: %s entries but %s counted" % (db, entries, counted)
                )
        conn.autocommit = True
        with conn.cursor() as cr:
            for table in REGISTER_TABLES + DOCUMENT_TABLES:
                cr.execute("VACUUM (ANALYZE) %s" % table)
    finally:
        conn.close()
    # No synchronous_commit=off above: VACUUM only marks a page all-visible
    # (what index-only scans need) once its rows' commit is flushed.
    return time.monotonic() - start


# Kinds of documents: type, model, reference prefix, label; cumulated shares.
KINDS = (
    ("quotation", "sale.order", "S", "quotation", 0.28),
    ("booking_confirmation", "sale.order", "S", "booking confirmation", 0.45),
    ("invoice", "account.move", "INV/", "invoice", 0.75),
    ("credit_note", "account.move", "RINV/", "credit note", 0.80),
    ("supplier_document", "purchase.order", "P", "purchase order", 0.95),
    ("other", "account.payment", "PBNK/", "payment receipt", 1.00),
)
# Entries of the measured salesperson's own documents, at every size: about
# three years of one salesperson's sends. A bigger register comes from more
# salespeople, not from one salesperson sending a hundred times more.
OWN_ENTRIES = 1250

# Pseudo-random but repeatable: setseed() then random() in one sequential
# scan. Each entry gets its own document (its id drawn from the document
# table's sequence), inserted below, so that access follows real records.
CREATE_ENTRIES = """
CREATE TEMP TABLE bench_entry ON COMMIT DROP AS
WITH g AS MATERIALIZED (
    SELECT
        i, random() AS r_type, random() AS r_state, random() AS r_date,
        1 + floor(random() * %(agents)s)::int AS agent,
        CASE WHEN random() < 0.8 THEN 1 ELSE 2 END AS company
    FROM generate_series(1, %(count)s) AS i
), k AS (
    SELECT g.*, %(kind_case)s AS kind FROM g
)
SELECT
    k.i, k.r_date, k.company, k.kind,
    CASE
        WHEN k.i > %(count)s * 0.9995 THEN 'outgoing'
        WHEN k.r_state < 0.02 THEN 'bounced'
        WHEN k.r_state < 0.03 THEN 'exception'
        WHEN k.r_state < 0.032 THEN 'cancel'
        ELSE 'sent'
    END AS state,
    CASE WHEN k.i %% %(own_every)s = 0 THEN %(own_user)s
         ELSE (%(agent_users)s::int[])[k.agent] END AS owner,
    CASE WHEN k.i %% %(own_every)s = 0 THEN %(own_partner)s
         ELSE (%(agent_partners)s::int[])[k.agent] END AS owner_partner,
    CASE WHEN k.i %% %(own_every)s = 0 THEN %(own_email)s
         ELSE (%(agent_emails)s::text[])[k.agent] END AS owner_email,
    CASE WHEN k.i %% %(own_every)s = 0 THEN %(own_name)s
         ELSE (%(agent_names)s::text[])[k.agent] END AS owner_name,
    (%(customer_ids)s::int[])[1 + (k.i::bigint * 7919) %% %(customers)s]
        AS customer_id,
    (%(customer_names)s::text[])[1 + (k.i::bigint * 7919) %% %(customers)s]
        AS customer_name,
    (%(customer_emails)s::text[])[1 + (k.i::bigint * 7919) %% %(customers)s]
        AS customer_email,
    (%(company_ids)s::int[])[k.company] AS company_id,
    (%(company_names)s::text[])[k.company] AS company_name,
    (%(kind_prefixes)s::text[])[k.kind] || lpad(k.i::text, 7, '0') AS ref,
    now()::timestamp(0) - interval '1095 days'
        + (k.i - 1) * (interval '1095 days' / %(count)s) AS day,
    CASE
        WHEN k.kind <= 2 THEN nextval('sale_order_id_seq')
        WHEN k.kind <= 4 THEN nextval('account_move_id_seq')
        WHEN k.kind = 5 THEN nextval('purchase_order_id_seq')
        ELSE nextval('account_payment_id_seq')
    END AS doc_id
FROM k
"""

# The documents themselves, with the columns their record rules read.
INSERT_SOURCE_DOCUMENTS = (
    """
INSERT INTO sale_order (
    id, name, partner_id, partner_invoice_id, partner_shipping_id, company_id,
    currency_id, date_order, state, user_id, create_uid, write_uid,
    create_date, write_date
)
SELECT doc_id, ref, customer_id, customer_id, customer_id, company_id,
       (%(currency_ids)s::int[])[company],
       day, CASE kind WHEN 1 THEN 'sent' ELSE 'sale' END, owner, owner, owner,
       day, day
FROM bench_entry WHERE kind <= 2
""",
    """
INSERT INTO account_move (
    id, name, move_type, state, date, invoice_date, journal_id, currency_id,
    company_id, partner_id, commercial_partner_id, invoice_user_id, auto_post,
    create_uid, write_uid, create_date, write_date
)
SELECT doc_id, ref, CASE kind WHEN 3 THEN 'out_invoice' ELSE 'out_refund' END,
       'posted', day::date, day::date, (%(sale_journal_ids)s::int[])[company],
       (%(currency_ids)s::int[])[company], company_id, customer_id, customer_id,
       owner, 'no', owner, owner, day, day
FROM bench_entry WHERE kind IN (3, 4)
""",
    """
INSERT INTO purchase_order (
    id, name, partner_id, company_id, currency_id, date_order, state, user_id,
    create_uid, write_uid, create_date, write_date
)
SELECT doc_id, ref, customer_id, company_id, (%(currency_ids)s::int[])[company],
       day, 'purchase', owner, owner, owner, day, day
FROM bench_entry WHERE kind = 5
""",
    """
INSERT INTO account_payment (
    id, name, company_id, date, journal_id, partner_type, payment_type, state,
    partner_id, amount, create_uid, write_uid, create_date, write_date
)
SELECT doc_id, ref, company_id, day::date, (%(bank_journal_ids)s::int[])[company],
       'customer', 'inbound', 'paid', customer_id, 100, owner, owner, day, day
FROM bench_entry WHERE kind = 6
""",
)

INSERT_DOCUMENTS = """
INSERT INTO sengerio_generated_document (
    document_type, res_model, res_id, res_name, message_id, subject, body_html,
    author_id, author_email, user_id, bcc_email, has_bcc, recipient_names,
    date, company_id, state, failure_reason, bounce_rate,
    create_uid, write_uid, create_date, write_date
)
SELECT
    (%(kind_types)s::text[])[d.kind],
    (%(kind_models)s::text[])[d.kind],
    d.doc_id,
    d.ref,
    format('<%%s.%%s-bench@sengerio.localhost>', d.i, md5(d.i::text)),
    format(
        '%%s %%s (Ref %%s)', d.company_name,
        initcap((%(kind_labels)s::text[])[d.kind]), d.ref
    ),
    format(
        '<div><p>Dear %%s,</p><p>Here is your %%s <strong>%%s</strong> '
        'amounting to <strong>%%s EUR</strong>.</p>%%s'
        '<p>Best regards,<br/>%%s</p></div>',
        d.customer_name, (%(kind_labels)s::text[])[d.kind], d.ref,
        round((d.i %% 9973) * 3.17, 2),
        repeat('<p>Do not hesitate to contact us if you have any question '
               'about this document or your booking.</p>', 8),
        d.owner_name
    ),
    d.owner_partner,
    d.owner_email,
    d.owner,
    CASE WHEN d.kind < %(other_kind)s THEN d.owner_email END,
    d.kind < %(other_kind)s,
    d.customer_name,
    d.day + d.r_date * interval '1 hour',
    d.company_id,
    d.state,
    CASE d.state
        WHEN 'bounced' THEN d.customer_email || ': The address does not exist '
            '(5.1.1 550 5.1.1 User unknown)'
        WHEN 'exception' THEN d.customer_email || ': The outgoing mail server '
            'could not be reached.'
        WHEN 'cancel' THEN d.customer_email || ': The address is on the blacklist.'
    END,
    CASE WHEN d.state = 'bounced' THEN 100.0 ELSE 0.0 END,
    d.owner, d.owner, d.day, d.day
FROM bench_entry d
ORDER BY d.i
"""
KIND_PARAMS = {
    # CASE WHEN g.r_type < 0.28 THEN 1 WHEN ... END
    "kind_case": AsIs(
        "CASE %s END"
        % " ".join(
            "WHEN r_type < %s THEN %s" % (kind[4], index + 1)
            for index, kind in enumerate(KINDS)
        )
    ),
    "kind_types": [kind[0] for kind in KINDS],
    "kind_models": [kind[1] for kind in KINDS],
    "kind_prefixes": [kind[2] for kind in KINDS],
    "kind_labels": [kind[3] for kind in KINDS],
    "other_kind": len(KINDS),
}

INSERT_RECIPIENTS = """
INSERT INTO sengerio_generated_document_recipient (
    document_id, partner_id, email, state, failure_type, failure_reason,
    dsn_status, dsn_diagnostic, create_uid, write_uid, create_date, write_date
)
SELECT
    d.id,
    (%(customer_ids)s::int[])[1 + (d.res_id::bigint * 7919) %% %(customers)s],
    (%(customer_emails)s::text[])[1 + (d.res_id::bigint * 7919) %% %(customers)s],
    d.state,
    CASE d.state WHEN 'bounced' THEN 'mail_bounce' WHEN 'exception' THEN 'mail_smtp'
                 WHEN 'cancel' THEN 'mail_bl' END,
    CASE WHEN d.state IN ('bounced', 'exception', 'cancel')
         THEN split_part(d.failure_reason, ': ', 2) END,
    CASE WHEN d.state = 'bounced' THEN '5.1.1' END,
    CASE WHEN d.state = 'bounced' THEN '550 5.1.1 User unknown' END,
    d.create_uid, d.create_uid, d.date, d.date
FROM sengerio_generated_document d
"""


def reusable(db, size):
    """Whether ``db`` is a kept database with ``size`` entries."""
    if not db_exists(db):
        return False
    count = int(psql(db, "SELECT count(*) FROM sengerio_generated_document"))
    if count != size:
        say("%s has %s entries, not %s: recreating it", db, count, size)
    return count == size


def update_kept(db):
    say("reusing %s: updating sengerio_mailing, VACUUM ANALYZE", db)
    run_logged(
        odoo_cmd(
            "-d", db, "-u", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn",
        ),
        db,
    )  # fmt: skip
    for table in REGISTER_TABLES + DOCUMENT_TABLES:
        psql(db, "VACUUM (ANALYZE) %s" % table)


def prepare_sized(base, db, size, people):
    """``db``: a copy of ``base`` with ``size`` entries."""
    (LOG_DIR / (db + ".log")).unlink(missing_ok=True)
    copy_db(base, db)
    seconds = fill_register(db, size, people)
    say("%s: %s entries inserted, vacuumed and analyzed in %.1f s", db, size, seconds)


def measure(dbs, repeat):
    """Measure all sizes in one ``odoo-bin shell``, interleaved run by run."""
    plans = {db: str(LOG_DIR / ("register_plans_%s.txt" % size)) for size, db in dbs}
    say(
        "measuring %s: %s runs of each call per user and size, interleaved",
        ", ".join(db for _size, db in dbs),
        repeat,
    )
    results = odoo_shell(dbs[0][1], "odoo_measure", repeat=repeat, plans=plans)
    return {size: dict(results[db], plans_path=plans[db]) for size, db in dbs}


def fmt_ms(seconds):
    return "%.1f" % (seconds * 1000.0)


def print_report(sizes, results, revision, args):
    small, large = sizes[0], sizes[-1]
    print()
    print(
        "Opening Generated Documents: the web client's calls at %s and %s entries"
        % (format(small, ","), format(large, ","))
    )
    print(
        "(sengerio_mailing at %s; median of %s runs of each call, each in a new "
        "cursor, sizes interleaved; times in ms, SQL: the part spent in "
        "PostgreSQL)" % (revision, args.repeat)
    )
    print()
    at_small, at_large = "@%s" % short(small), "@%s" % short(large)
    head = "%-8s %-14s %9s %9s %7s  %-8s  %9s %9s" % (
        "user", "call", at_small, at_large, "ratio", "<= %.1fx" % RATIO_TARGET,
        "SQL" + at_small, "SQL" + at_large,
    )  # fmt: skip
    print(head)
    print("-" * len(head))
    met_all = True
    for label, _login, _group in USERS:
        for call in CALLS:
            a = results[small]["users"][label][call]
            b = results[large]["users"][label][call]
            ratio = b["median"] / a["median"]
            met = ratio <= RATIO_TARGET
            met_all &= met
            print(
                "%-8s %-14s %9s %9s %7.2f  %-8s  %9.1f %9.1f"
                % (
                    label,
                    call,
                    fmt_ms(a["median"]),
                    fmt_ms(b["median"]),
                    ratio,
                    "met" if met else "NOT met",
                    a["sql_ms"],
                    b["sql_ms"],
                )
            )
    print()
    print("Entries each user sees (what the calls returned at each size)")
    for label, _login, _group in USERS:
        for size in sizes:
            users = results[size]["users"][label]
            print(
                "  %-8s @%-6s list length %s, bounced length %s, groups %s"
                % (
                    label,
                    short(size),
                    users["list"]["length"],
                    users["bounced"]["length"],
                    users["group by type"]["length"],
                )
            )
    print()
    print("Query plans of the statements that read the register (EXPLAIN ANALYZE)")
    no_seq = True
    for size in sizes:
        print(
            "  @%s (%.0f%% of the table's pages all-visible; full plans in %s)"
            % (
                short(size),
                results[size]["all_visible"] * 100.0,
                results[size]["plans_path"],
            )
        )
        for label, _login, _group in USERS:
            for call in CALLS:
                info = results[size]["users"][label][call]
                seq = info["seq_scans"]
                if size == sizes[-1]:
                    no_seq &= not seq
                print(
                    "    %-8s %-14s %s queries: %s%s"
                    % (
                        label,
                        call,
                        info["queries"],
                        "; ".join(info["scans"]) or "-",
                        "  <-- SEQ SCAN" if seq else "",
                    )
                )
    print()
    print(
        "time target (%s entries <= %.1fx %s entries): %s"
        % (
            format(large, ","),
            RATIO_TARGET,
            format(small, ","),
            "met for every call" if met_all else "NOT met for every call",
        )
    )
    print(
        "index-backed at %s entries, no sequential scan on the register or the "
        "documents: %s (at a small size the planner may rightly scan a table)"
        % (format(large, ","), "yes" if no_seq else "NO, see the plans above")
    )


def short(size):
    for unit, div in (("M", 1000000), ("k", 1000)):
        if size >= div and size % div == 0:
            return "%s%s" % (size // div, unit)
    return str(size)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000,1000000",
        help="register sizes, smallest first; the ratio is last/first "
        "(default 10000,1000000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=21, help="runs of each call (default 21)"
    )
    parser.add_argument(
        "--db-prefix",
        default="benchreg",
        help="databases PREFIX_base and PREFIX_<size> (default benchreg)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases at the end"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure kept databases again (the addon is updated in them first)",
    )
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    if len(args.sizes) < 2:
        parser.error("--sizes needs at least two sizes")
    return args


def main():
    args = parse_args()
    base = "%s_base" % args.db_prefix
    dbs = {size: "%s_%s" % (args.db_prefix, size) for size in args.sizes}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    revision = addon_revision()
    say("measuring sengerio_mailing at %s", revision)
    results = {}
    try:
        people = None
        for size, db in dbs.items():
            if args.reuse and reusable(db, size):
                update_kept(db)
                continue
            people = people or prepare_base(base)
            prepare_sized(base, db, size, people)
        drop_db(base)
        results = measure(list(dbs.items()), args.repeat)
    finally:
        if not args.keep:
            say("dropping %s", ", ".join([base, *dbs.values()]))
            for db in [base, *dbs.values()]:
                drop_db(db)
    print_report(args.sizes, results, revision, args)
    print()
    print("total run time %.0f s; logs in %s" % (time.monotonic() - started, LOG_DIR))
    return 0


# ---------------------------------------------------------------------------
# Steps run inside `odoo-bin shell` (``env`` is the shell's superuser env)
# ---------------------------------------------------------------------------


def odoo_setup(env):
    """A second company, agents, customers and the two measured users."""
    from odoo import Command

    env = env(context=dict(env.context, tracking_disable=True, no_reset_password=True))
    main = env.ref("base.main_company")
    other = env["res.company"].create({"name": "Sengerio Bench Second Company"})
    salesman = env.ref("sales_team.group_sale_salesman")
    agents = env["res.users"].create(
        [
            {
                "name": "Agent %02d" % index,
                "login": "benchreg_agent%02d" % index,
                "email": "agent%02d@bench.example.com" % index,
                "company_id": main.id,
                "company_ids": [Command.set([main.id, other.id])],
                "groups_id": [Command.set([salesman.id])],
            }
            for index in range(AGENTS)
        ]
    )
    customers = env["res.partner"].create(
        [
            {
                "name": "Customer %03d" % index,
                "email": "customer%03d@example.org" % index,
            }
            for index in range(CUSTOMERS)
        ]
    )
    journals = {
        journal_type: [
            env["account.journal"]
            .create(
                {
                    "name": "Bench %s" % journal_type,
                    "code": "B%s%s" % (journal_type[:3].upper(), index),
                    "type": journal_type,
                    "company_id": company.id,
                }
            )
            .id
            for index, company in enumerate(main | other)
        ]
        for journal_type in ("sale", "bank")
    }
    users = {}
    for label, login, group in USERS:
        users[label] = env["res.users"].create(
            {
                "name": login.replace("_", " ").title(),
                "login": login,
                "password": login,
                "email": "%s@bench.example.com" % login,
                "company_id": main.id,
                "company_ids": [Command.set([main.id])],
                "groups_id": [Command.set([env.ref(group).id])],
            }
        )
    env.cr.commit()
    shell_result(
        {
            "company_ids": [main.id, other.id],
            "company_names": [main.name, other.name],
            "agents": AGENTS,
            "agent_users": agents.ids,
            "agent_partners": agents.partner_id.ids,
            "agent_names": agents.mapped("name"),
            "agent_emails": agents.mapped("email"),
            "customers": CUSTOMERS,
            "customer_ids": customers.ids,
            "customer_names": customers.mapped("name"),
            "customer_emails": customers.mapped("email"),
            "currency_ids": (main | other).currency_id.ids
            if main.currency_id != other.currency_id
            else [main.currency_id.id] * 2,
            "sale_journal_ids": journals["sale"],
            "bank_journal_ids": journals["bank"],
            # the salesperson's own documents (OWN_ENTRIES at every size)
            "own_user": users["sales"].id,
            "own_partner": users["sales"].partner_id.id,
            "own_email": users["sales"].email,
            "own_name": users["sales"].name,
        }
    )


def _list_view(env):
    """The list view's fields as the web client reads them, and aggregates."""
    return list_view_specification(
        env[MODEL].get_views([(False, "list"), (False, "search")])
    )


def list_view_specification(views):
    """``web_search_read`` specification and aggregates of the list view.

    :param views: what ``get_views`` returns for the register's list view
    """
    from lxml import etree

    arch = etree.fromstring(views["views"]["list"]["arch"])
    fields = views["models"][MODEL]["fields"]
    specification = {}
    for node in arch.iterchildren("field"):
        name = node.get("name")
        if fields[name]["type"] in ("many2one", "many2many", "one2many"):
            specification[name] = {"fields": {"display_name": {}}}
        else:
            specification[name] = {}
    aggregates = [
        "%s:%s" % (name, fields[name]["aggregator"])
        for name in specification
        if fields[name].get("aggregator") and name != "document_type"
    ]
    return specification, aggregates


def _calls(specification, aggregates):
    """The web client's calls when opening the list, as functions of a model."""

    def read(domain):
        def call(Model):
            result = Model.web_search_read(
                domain,
                specification,
                offset=0,
                limit=LIMIT,
                order="",
                count_limit=COUNT_LIMIT,
            )
            return result["length"]

        return call

    def group_by_type(Model):
        result = Model.web_read_group(
            [],
            aggregates,
            ["document_type"],
            limit=LIMIT,
            offset=0,
            orderby="",
            lazy=True,
        )
        return result["length"]

    def count(Model):
        return Model.search_count([])

    return {
        "list": read([]),
        "count": count,
        "bounced": read([("state", "=", "bounced")]),
        "group by type": group_by_type,
    }


class _SqlRecorder:
    """Wraps ``odoo.sql_db.Cursor.execute``: time spent in SQL, statements."""

    def __init__(self):
        from odoo import sql_db

        self.sql_db = sql_db
        self.original = sql_db.Cursor.execute
        self.seconds = 0.0
        self.statements = None

    def __enter__(self):
        from odoo.tools import SQL

        recorder = self
        original = self.original

        def execute(cr, query, params=None, log_exceptions=True):
            if recorder.statements is not None:
                if isinstance(query, SQL):
                    recorder.statements.append((query.code, query.params))
                else:
                    recorder.statements.append((query, params))
            start = time.perf_counter()
            try:
                return original(cr, query, params, log_exceptions)
            finally:
                recorder.seconds += time.perf_counter() - start

        self.sql_db.Cursor.execute = execute
        return self

    def __exit__(self, *exc):
        self.sql_db.Cursor.execute = self.original


def _plan_scans(node, found):
    """Collect the scan nodes of a JSON plan: (node type, relation, index)."""
    if "Relation Name" in node or "Index Name" in node:
        found.append(
            (
                node["Node Type"],
                node.get("Relation Name", ""),
                node.get("Index Name", ""),
            )
        )
    for child in node.get("Plans", ()):
        _plan_scans(child, found)
    return found


def _scan_label(scan):
    node_type, relation, index = scan
    name = (index or relation).replace("sengerio_generated_document", "register")
    return "%s %s" % (node_type, name)


def _explain(cr, statements, plans_file, title):
    """EXPLAIN ANALYZE the statements that read the register tables."""
    scans, seq_scans = [], []
    for query, params in statements:
        text = query if isinstance(query, str) else query.decode()
        if "set_config(" in text:
            # the planner settings the calls run under (the register's
            # _sengerio_planned): the plans are made under them too
            cr.execute(text, params)
            continue
        if not text.lstrip().upper().startswith("SELECT"):
            continue
        if not any(table in text for table in REGISTER_TABLES):
            continue
        cr.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text, params)
        plan = cr.fetchone()[0][0]
        found = _plan_scans(plan["Plan"], [])
        cr.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params)
        plans_file.write("-- %s\n%s\n" % (title, cr.mogrify(text, params).decode()))
        plans_file.write("\n".join(row[0] for row in cr.fetchall()) + "\n\n")
        for scan in found:
            label = _scan_label(scan)
            if label not in scans:
                scans.append(label)
            if scan[0] == "Seq Scan" and scan[1] in REGISTER_TABLES + DOCUMENT_TABLES:
                seq_scans.append(scan[1])
    return scans, seq_scans


def _prepare(registry):
    """Per user of ``registry``'s database: uid, context, the calls to time."""
    from odoo import SUPERUSER_ID, api

    prepared = {}
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        for label, login, _group in USERS:
            user = env["res.users"].search([("login", "=", login)])
            context = {
                "lang": "en_US",
                "tz": "Europe/Rome",
                "uid": user.id,
                "allowed_company_ids": [user.company_id.id],
                "bin_size": True,
            }
            user_env = api.Environment(cr, user.id, context)
            prepared[label] = (user.id, context, _calls(*_list_view(user_env)))
        size = env[MODEL].search_count([])
        cr.execute(
            "SELECT relallvisible::float / greatest(relpages, 1) FROM pg_class "
            "WHERE relname = %s",
            [env[MODEL]._table],
        )
        all_visible = cr.fetchone()[0]
        cr.rollback()
    return size, all_visible, prepared


def _run(registry, uid, context, call, recorder):
    """One call as in one HTTP request: its own cursor and environment."""
    from odoo import api

    with registry.cursor() as cr:
        Model = api.Environment(cr, uid, context)[MODEL]
        recorder.seconds = 0.0
        start = time.perf_counter()
        length = call(Model)
        elapsed = time.perf_counter() - start
        cr.rollback()
    return elapsed, recorder.seconds, length


def odoo_measure(env, repeat, plans):
    """Time the calls per database and user (median), then EXPLAIN their SQL.

    Runs alternate between the databases (in turn first), so that the load
    of the machine weighs the same on every size.
    """
    from odoo.modules.registry import Registry

    dbs = list(plans)
    registries = {db: Registry(db) for db in dbs}
    prepared, results = {}, {}
    for db, registry in registries.items():
        size, all_visible, prepared[db] = _prepare(registry)
        results[db] = {"size": size, "all_visible": all_visible, "users": {}}
    times = {}
    with _SqlRecorder() as recorder:
        for run in range(repeat + 2):  # two warm-up runs
            order = dbs if run % 2 == 0 else dbs[::-1]
            for label, _login, _group in USERS:
                for name in CALLS:
                    for db in order:
                        uid, context, calls = prepared[db][label]
                        measure = _run(
                            registries[db], uid, context, calls[name], recorder
                        )
                        if run >= 2:
                            times.setdefault((db, label, name), []).append(measure)
        for db, registry in registries.items():
            with open(plans[db], "w") as plans_file:
                for label, _login, _group in USERS:
                    uid, context, calls = prepared[db][label]
                    per_call = results[db]["users"][label] = {}
                    for name in CALLS:
                        recorder.statements = []
                        _run(registry, uid, context, calls[name], recorder)
                        statements, recorder.statements = recorder.statements, None
                        with registry.cursor() as cr:
                            title = "%s: %s" % (label, name)
                            scans, seq_scans = _explain(
                                cr._obj, statements, plans_file, title
                            )
                            cr.rollback()
                        measures = times[db, label, name]
                        per_call[name] = {
                            "median": statistics.median(m[0] for m in measures),
                            "sql_ms": statistics.median(m[1] for m in measures)
                            * 1000.0,
                            "length": measures[-1][2],
                            "queries": len(statements),
                            "scans": scans,
                            "seq_scans": seq_scans,
                        }
    shell_result(results)


if __name__ == "__main__":
    sys.exit(main())
