"""Driving Odoo from outside, for the benchmarks and the end-to-end tests.

One place for what they all need: ``odoo-bin`` commands and its shell,
databases (psql, copy, drop, with their filestore), the addon's revision, a
stub that makes report rendering return PDFs rendered once, the register's
table layout to fill it with SQL, and the DSN corpus of the addon's tests.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ODOO_SRC = Path(os.environ.get("ODOO_SRC", "/opt/odoo-18.0"))
ODOO_ADDONS = [str(ODOO_SRC / "addons"), str(ODOO_SRC / "odoo" / "addons")]
#: The benchmarks add their snapshot of the addon; the tests the checkout.
ADDONS_PATH = list(ODOO_ADDONS)
LOG_DIR = ROOT / "var" / "bench"
BENCH_DIR = ROOT / "bench"
DSN_CORPUS = ROOT / "sengerio_mailing" / "tests" / "data" / "dsn"
#: A step run in ``odoo-bin shell`` prints its result after this.
RESULT_PREFIX = "BENCH_RESULT "
FILESTORE = (
    Path(os.environ.get("ODOO_DATA_DIR", Path.home() / ".local" / "share" / "Odoo"))
    / "filestore"
)
REGISTER_TABLES = (
    "sengerio_generated_document",
    "sengerio_generated_document_recipient",
)


def say(msg, *args, tag="bench"):
    print("[%s] %s" % (tag, msg % args if args else msg), file=sys.stderr, flush=True)


# Processes ----------------------------------------------------------------


def odoo_cmd(*args, addons_path=None):
    """An ``odoo-bin`` command line with the Python running this."""
    # The "--addons-path=" form must come first so subcommands (shell) work.
    path = ",".join(addons_path or ADDONS_PATH)
    return [sys.executable, str(ODOO_SRC / "odoo-bin"), "--addons-path=" + path, *args]


def log_path(name):
    """``var/bench/<name>.log``, or ``name`` itself when it is a path."""
    if isinstance(name, Path):
        return name
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / (name + ".log")


def run_logged(cmd, log, stdin_text=None, env=None, timeout=7200):
    """Run a command to its end, its output appended to the log ``log``."""
    path = log_path(log)
    proc = subprocess.run(
        cmd,
        input=stdin_text,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    with open(path, "a") as out:
        out.write("$ %s\n%s%s\n" % (" ".join(cmd), proc.stdout, proc.stderr))
    if proc.returncode:
        args = " ".join(a for a in cmd[3:7] if not a.startswith("--addons"))
        raise RuntimeError("odoo-bin %s failed, see %s" % (args, path))
    return proc.stdout


def odoo_shell(db, module, step, log=None, env=None, addons_path=None, **kwargs):
    """Run ``module.step(env, **kwargs)`` in an ``odoo-bin shell`` of ``db``.

    ``module`` is found in bench/ (or on ``PYTHONPATH``). Returns what the
    step printed after :data:`RESULT_PREFIX`, decoded, or None.
    """
    code = (
        "import json, sys\n"
        "sys.path[:0] = [%r, %r]\n"
        "import %s\n"
        "%s.%s(env, **json.loads(%r))\n"
    ) % (str(BENCH_DIR), str(ROOT / "dev"), module, module, step, json.dumps(kwargs))
    cmd = odoo_cmd(
        "shell", "-d", db, "--no-http", "--log-level", "warn", addons_path=addons_path
    )
    out = run_logged(cmd, log or db, stdin_text=code, env=env)
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def result(value):
    """In a shell step: hand ``value`` back to :func:`odoo_shell`."""
    print(RESULT_PREFIX + json.dumps(value), flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Databases ----------------------------------------------------------------


def psql(db, sql, env=None):
    """Run SQL with ``psql``; its output, stripped."""
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-tAc", sql],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, **(env or {})),
    ).stdout.strip()  # fmt: skip


def db_exists(db, env=None):
    sql = "SELECT 1 FROM pg_database WHERE datname = '%s'" % db.replace("'", "")
    return psql("postgres", sql, env) == "1"


def drop_db(db, env=None):
    """Drop ``db`` and its filestore, if they exist."""
    subprocess.run(
        ["dropdb", "--if-exists", db], check=True, env=dict(os.environ, **(env or {}))
    )
    shutil.rmtree(FILESTORE / db, ignore_errors=True)


def copy_db(source, target):
    """``target`` becomes a copy of ``source``: database and filestore."""
    drop_db(target)
    subprocess.run(["createdb", "-T", source, target], check=True)
    if (FILESTORE / source).is_dir():
        shutil.copytree(FILESTORE / source, FILESTORE / target)


def vacuum_analyze(db, tables=()):
    for table in tables or [""]:
        psql(db, "VACUUM (ANALYZE) %s" % table)


# The addon ----------------------------------------------------------------


def git(*args):
    cmd = ["git", "-C", str(ROOT), *args]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def addon_revision():
    """The checkout's commit, noting uncommitted changes to the addon."""
    revision = git("rev-parse", "--short", "HEAD").decode().strip()
    if git("status", "--porcelain", "--", "sengerio_mailing").strip():
        revision += " + uncommitted changes"
    return revision


def snapshot_addon(target, ref=None):
    """Copy sengerio_mailing to ``target``: edits made during a run do not
    change what is measured. From the git commit ``ref``, or the work tree.

    :return: a description of the version copied
    """
    if ref:
        archive = git("archive", "--format=tar", ref, "sengerio_mailing")
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return git("rev-parse", "--short", ref).decode().strip()
    shutil.copytree(
        ROOT / "sengerio_mailing",
        Path(target) / "sengerio_mailing",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return addon_revision()


# Reports: one PDF rendered, then reused ------------------------------------


def render_pdf(env, report, records):
    """Render ``report`` for ``records`` with wkhtmltopdf, now."""
    params = env["ir.config_parameter"].sudo()
    # Nothing listens there: wkhtmltopdf renders without fetching the web
    # assets (unstyled, but a real report), whatever runs on web.base.url.
    params.set_param("report.url", "http://127.0.0.1:9")
    actions = env["ir.actions.report"].with_context(report_pdf_no_attachment=True)
    pdf, _type = actions._render_qweb_pdf(report, records.ids)
    params.set_param("report.url", False)
    return pdf


def stub_pdf_rendering(pdfs):
    """Make report rendering return ready PDFs: ``{model: bytes}``.

    The base implementation is replaced, below every module's override:
    those still run.
    """
    import io
    from collections import OrderedDict

    from odoo.addons.base.models.ir_actions_report import IrActionsReport

    def prepare_streams(self, report_ref, data, res_ids=None):
        pdf = pdfs[self._get_report(report_ref).model]
        return OrderedDict(
            (res_id, {"stream": io.BytesIO(pdf), "attachment": None})
            for res_id in res_ids
        )

    IrActionsReport._render_qweb_pdf_prepare_streams = prepare_streams


# The register's table layout ----------------------------------------------

#: Kinds of documents: type, model, reference prefix, label; cumulated shares.
REGISTER_KINDS = (
    ("quotation", "sale.order", "S", "quotation", 0.28),
    ("booking_confirmation", "sale.order", "S", "booking confirmation", 0.45),
    ("invoice", "account.move", "INV/", "invoice", 0.75),
    ("credit_note", "account.move", "RINV/", "credit note", 0.80),
    ("supplier_document", "purchase.order", "P", "purchase order", 0.95),
    ("other", "res.partner", "C", "document", 1.00),
)

# Pseudo-random but repeatable: setseed() then random() in one sequential scan.
INSERT_DOCUMENTS = """
WITH g AS MATERIALIZED (
    SELECT
        i, random() AS r_type, random() AS r_state, random() AS r_date,
        1 + floor(random() * %(agents)s)::int AS agent,
        CASE WHEN random() < 0.8 THEN 1 ELSE 2 END AS company
    FROM generate_series(1, %(count)s) AS i
), d AS (
    SELECT
        g.i, g.r_date, g.agent, g.company,
        %(kind_case)s AS kind,
        CASE
            WHEN g.i > %(count)s * 0.9995 THEN 'outgoing'
            WHEN g.r_state < 0.02 THEN 'bounced'
            WHEN g.r_state < 0.03 THEN 'exception'
            WHEN g.r_state < 0.032 THEN 'cancel'
            ELSE 'sent'
        END AS state,
        (%(customer_names)s::text[])[1 + (g.i::bigint * 7919) %% %(customers)s]
            AS customer_name,
        (%(customer_emails)s::text[])[1 + (g.i::bigint * 7919) %% %(customers)s]
            AS customer_email,
        (%(agent_emails)s::text[])[g.agent] AS agent_email,
        (%(company_names)s::text[])[g.company] AS company_name
    FROM g
)
INSERT INTO sengerio_generated_document (
    document_type, res_model, res_id, res_name, message_id, subject, body_html,
    author_id, author_email, user_id, bcc_email, has_bcc, recipient_names,
    date, company_id, state, failure_reason, bounce_rate,
    create_uid, write_uid, create_date, write_date
)
SELECT
    (%(kind_types)s::text[])[d.kind],
    (%(kind_models)s::text[])[d.kind],
    d.i,
    (%(kind_prefixes)s::text[])[d.kind] || lpad(d.i::text, 7, '0'),
    format('<%%s.%%s-bench@sengerio.localhost>', d.i, md5(d.i::text)),
    format(
        '%%s %%s (Ref %%s%%s)', d.company_name,
        initcap((%(kind_labels)s::text[])[d.kind]),
        (%(kind_prefixes)s::text[])[d.kind], lpad(d.i::text, 7, '0')
    ),
    format(
        '<div><p>Dear %%s,</p><p>Here is your %%s <strong>%%s%%s</strong> '
        'amounting to <strong>%%s EUR</strong>.</p>%%s'
        '<p>Best regards,<br/>%%s</p></div>',
        d.customer_name, (%(kind_labels)s::text[])[d.kind],
        (%(kind_prefixes)s::text[])[d.kind], lpad(d.i::text, 7, '0'),
        round((d.i %% 9973) * 3.17, 2),
        repeat('<p>Do not hesitate to contact us if you have any question '
               'about this document or your booking.</p>', 8),
        (%(agent_names)s::text[])[d.agent]
    ),
    (%(agent_partners)s::int[])[d.agent],
    d.agent_email,
    (%(agent_users)s::int[])[d.agent],
    CASE WHEN d.kind < %(other_kind)s THEN d.agent_email END,
    d.kind < %(other_kind)s,
    d.customer_name,
    now()::timestamp(0) - interval '1095 days'
        + (d.i - 1) * (interval '1095 days' / %(count)s)
        + d.r_date * interval '1 hour',
    (%(company_ids)s::int[])[d.company],
    d.state,
    CASE d.state
        WHEN 'bounced' THEN d.customer_email || ': The address does not exist '
            '(5.1.1 550 5.1.1 User unknown)'
        WHEN 'exception' THEN d.customer_email || ': The outgoing mail server '
            'could not be reached.'
        WHEN 'cancel' THEN d.customer_email || ': The address is on the blacklist.'
    END,
    CASE WHEN d.state = 'bounced' THEN 100.0 ELSE 0.0 END,
    (%(agent_users)s::int[])[d.agent],
    (%(agent_users)s::int[])[d.agent],
    now()::timestamp(0) - interval '1095 days'
        + (d.i - 1) * (interval '1095 days' / %(count)s),
    now()::timestamp(0) - interval '1095 days'
        + (d.i - 1) * (interval '1095 days' / %(count)s)
FROM d
"""
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
WHERE d.id > %(max_id)s
"""


def _kind_params():
    from psycopg2.extensions import AsIs

    return {
        # CASE WHEN g.r_type < 0.28 THEN 1 WHEN ... END
        "kind_case": AsIs(
            "CASE %s END"
            % " ".join(
                "WHEN g.r_type < %s THEN %s" % (kind[4], index + 1)
                for index, kind in enumerate(REGISTER_KINDS)
            )
        ),
        "kind_types": [kind[0] for kind in REGISTER_KINDS],
        "kind_models": [kind[1] for kind in REGISTER_KINDS],
        "kind_prefixes": [kind[2] for kind in REGISTER_KINDS],
        "kind_labels": [kind[3] for kind in REGISTER_KINDS],
        "other_kind": len(REGISTER_KINDS),
    }


def fill_register(db, count, people):
    """Add ``count`` synthetic entries, one recipient line each, with SQL.

    :param people: ``company_ids``, ``company_names`` (two each), ``agents``,
        ``agent_users``, ``agent_partners``, ``agent_names``,
        ``agent_emails``, ``customers``, ``customer_ids``,
        ``customer_names`` and ``customer_emails``
    :return: the seconds it took, ``VACUUM ANALYZE`` included
    """
    import psycopg2

    start = time.monotonic()
    conn = psycopg2.connect(dbname=db)
    try:
        with conn, conn.cursor() as cr:
            # no foreign key triggers (like pg_restore --disable-triggers): the
            # ids all come from this database
            cr.execute("SET LOCAL session_replication_role = replica")
            cr.execute("SELECT coalesce(max(id), 0) FROM sengerio_generated_document")
            max_id = cr.fetchone()[0]
            cr.execute("SELECT setseed(0.42)")
            cr.execute(INSERT_DOCUMENTS, dict(people, **_kind_params(), count=count))
            cr.execute(INSERT_RECIPIENTS, dict(people, max_id=max_id))
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
            for table in REGISTER_TABLES:
                cr.execute("VACUUM (ANALYZE) %s" % table)
    finally:
        conn.close()
    # No synchronous_commit=off above: VACUUM only marks a page all-visible
    # (what index-only scans need) once its rows' commit is flushed.
    return time.monotonic() - start


# The DSN corpus -----------------------------------------------------------


def dsn_corpus():
    """The addon's sample reports: ``[(manifest entry, template text)]``."""
    manifest = json.loads((DSN_CORPUS / "manifest.json").read_text())
    return [(item, (DSN_CORPUS / item["file"]).read_text()) for item in manifest]


class RpcError(Exception):
    """An error returned by Odoo over JSON-RPC, with its server-side data."""

    def __init__(self, error):
        data = error.get("data") or {}
        super().__init__(data.get("message") or error.get("message"))
        self.error = error
        self.name = data.get("name")


class WebSession:
    """A browser's session: ``/web/session/authenticate``, then its cookie.

    Calls go where the web client sends them (``/web/dataset/call_kw``,
    ``/web/content``), with the user's own session and record rules, in the
    user's current company.
    """

    def __init__(self, url, db, login, password):
        import requests  # noqa: PLC0415 (not needed inside Odoo's shells)

        self.url = url
        self.http = requests.Session()
        info = self._post(
            "/web/session/authenticate",
            {"db": db, "login": login, "password": password},
        )
        if not info.get("uid"):
            raise RuntimeError("cannot log in as %s" % login)
        self.uid = info["uid"]
        self.context = dict(info["user_context"])
        companies = info.get("user_companies")  # none for portal users
        if companies:
            self.context["allowed_company_ids"] = [companies["current_company"]]

    def _post(self, path, params):
        payload = {"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}
        response = self.http.post(self.url + path, json=payload, timeout=120)
        response.raise_for_status()
        answer = response.json()
        if answer.get("error"):
            raise RpcError(answer["error"])
        return answer.get("result")

    def call_kw(self, model, method, args, kwargs=None):
        """A model method, with the session's context unless ``kwargs`` has one."""
        path = "/web/dataset/call_kw/%s/%s" % (model, method)
        kwargs = dict(kwargs or {})
        kwargs.setdefault("context", self.context)
        params = {"model": model, "method": method, "args": args, "kwargs": kwargs}
        return self._post(path, params)

    def get(self, path):
        return self.http.get(self.url + path, timeout=120)
