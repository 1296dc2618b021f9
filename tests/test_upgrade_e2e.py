"""Upgrade, uninstall and install on a database that already sent documents.

The upgrade and uninstall tests share one database, a copy of the ``queued``
template put to use: document emails sent, failed, cancelled, bounced and
still queued, and the settings changed. The install test starts from the
``base`` template, without the addon.
"""

import time
from email import policy
from email.parser import BytesParser

import databases
import pytest
from conftest import VAR, db_name
from harness import OdooServer, run_odoo
from mailcheck import raw_headers
from psycopg2 import sql
from smtp_sink import SmtpSink
from test_bcc_e2e import send_invoice, send_with_composer
from test_bounce_e2e import build_dsn, mailgate, run_bounce_cron

NO_PDF_ASSETS = "http://127.0.0.1:9"  # wkhtmltopdf renders without web assets
SETTINGS = {
    "sengerio_bcc_invoice": False,
    "sengerio_bcc_credit_note": False,
    "sengerio_retention_days": 400,
}


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def message_ids(sink):
    parser = BytesParser(policy=policy.default)
    return [
        parser.parsebytes(m["raw"], headersonly=True)["Message-Id"].strip()
        for m in sink.messages()
    ]


def register_rows(db, columns="res_model, res_id, document_type, state"):
    return databases.query(
        db,
        sql.SQL("SELECT {} FROM sengerio_generated_document ORDER BY id").format(
            sql.SQL(columns)
        ),
    )


def put_to_use(db, sink):
    """Every kind of register entry, and settings changed."""
    databases.set_smtp_port(db, sink.port)
    server = OdooServer(db, VAR / "upgrade.log").start()
    try:
        admin = server.client()
        mail_ids = admin.call("mail.mail", "search", [], order="id")
        # the mail server is down for the first three: they fail
        sink.stop()
        admin.call("mail.mail", "process_email_queue", ids=mail_ids[:3])
        sink.start()
        # the last two stay queued
        admin.call("mail.mail", "process_email_queue", ids=mail_ids[3:-2])
        # one failed document is cancelled from the resend wizard
        Register = "sengerio.generated.document"
        [failed_id, *_] = admin.call(Register, "search", [("state", "=", "exception")])
        action = admin.call(Register, "action_resend", [failed_id])
        wizard = admin.call(
            "mail.resend.message", "create", {}, context=action["context"]
        )
        admin.call("mail.resend.message", "cancel_mail_action", [wizard])
        # the customer's server bounces one that went out
        [bounced] = sink.messages()[:1]
        mailgate(server, admin, build_dsn(bounced["raw"], bounced["rcpt_tos"][0]))
        run_bounce_cron(admin)
        settings_id = admin.call("res.config.settings", "create", SETTINGS)
        admin.call("res.config.settings", "execute", [settings_id])
    finally:
        server.stop()
    states = {state for _m, _i, _t, state in register_rows(db)}
    assert states == {"sent", "exception", "cancel", "bounced", "outgoing"}
    # the delivery report kept once, with the notice about the bounced entry
    assert databases.query(
        db,
        "SELECT name FROM ir_attachment WHERE res_model LIKE %s",
        ("sengerio%",),
    ) == [("delivery-report.eml",)]


@pytest.fixture(scope="module")
def used_db(prepared_dbs, tmp_path_factory):
    """A copy of ``queued`` put to use, with its SMTP sink (running)."""
    db = db_name("used")
    databases.copy_db(prepared_dbs.queued, db)
    sink = SmtpSink(tmp_path_factory.mktemp("used-mail")).start()
    try:
        put_to_use(db, sink)
        yield db, sink
    finally:
        sink.stop()
        databases.drop_db(db)


def snapshot(db):
    """Everything the addon stores, row by row."""

    def rows(query, *args):
        return databases.query(db, sql.SQL(query).format(*args))

    def sengerio_columns(table):
        names = [
            name
            for (name,) in rows(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = {} AND column_name LIKE 'sengerio%'"
                " ORDER BY column_name",
                sql.Literal(table),
            )
        ]
        assert names, table
        return rows(
            "SELECT id, {} FROM {} ORDER BY id",
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.Identifier(table),
        )

    return {
        "entries": rows("SELECT * FROM sengerio_generated_document ORDER BY id"),
        "recipients": rows(
            "SELECT * FROM sengerio_generated_document_recipient ORDER BY id"
        ),
        "attachments": rows(
            "SELECT * FROM sengerio_generated_document_attachment_rel ORDER BY 1, 2"
        ),
        "companies": sengerio_columns("res_company"),
        "messages": sengerio_columns("mail_message"),
        "mails": sengerio_columns("mail_mail"),
        "parameters": rows(
            "SELECT key, value FROM ir_config_parameter"
            " WHERE key LIKE 'sengerio%' ORDER BY key"
        ),
    }


def test_upgrade_keeps_entries_and_settings(used_db):
    db, _sink = used_db
    before = snapshot(db)
    assert before["parameters"] == [("sengerio_mailing.retention_days", "400")]
    assert len(before["entries"]) >= 20

    run_odoo(
        "-d", db, "-u", "sengerio_mailing", "--stop-after-init", "--no-http",
        log_path=VAR / "upgrade.log",
    )  # fmt: skip

    after = snapshot(db)
    for name in before:
        assert after[name] == before[name], name


def leftovers(db):
    """What is left of the addon in the database, by kind."""
    checks = {
        "tables": "SELECT table_name FROM information_schema.tables"
        " WHERE table_name LIKE 'sengerio%'",
        "columns": "SELECT table_name || '.' || column_name"
        " FROM information_schema.columns WHERE column_name LIKE 'sengerio%'",
        "indexes": "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%sengerio%'",
        "models": "SELECT model FROM ir_model WHERE model LIKE 'sengerio%'",
        "fields": "SELECT model || '.' || name FROM ir_model_fields"
        " WHERE name LIKE 'sengerio%' OR model LIKE 'sengerio%'",
        "views": "SELECT name FROM ir_ui_view"
        " WHERE key ILIKE '%sengerio%' OR arch_db::text ILIKE '%sengerio%'",
        "menus": "SELECT name->>'en_US' FROM ir_ui_menu"
        " WHERE name->>'en_US' = 'Generated Documents'",
        "actions": "SELECT name->>'en_US' FROM ir_act_window"
        " WHERE res_model LIKE 'sengerio%'",
        "groups": "SELECT name->>'en_US' FROM res_groups"
        " WHERE name->>'en_US' ILIKE '%generated documents%'",
        "xml ids": "SELECT model || ' ' || name FROM ir_model_data"
        " WHERE module = 'sengerio_mailing'",
        "attachments": "SELECT name FROM ir_attachment"
        " WHERE res_model LIKE 'sengerio%'",
    }
    found = {name: databases.query(db, query) for name, query in checks.items()}
    return {name: rows for name, rows in found.items() if rows}


def test_uninstall_leaves_plain_odoo_sending(used_db):
    db, sink = used_db
    databases.set_password(db, "agent1", "agent1")
    server = OdooServer(db, VAR / "uninstall.log").start()
    try:
        admin = server.client()
        admin.call("ir.config_parameter", "set_param", "report.url", NO_PDF_ASSETS)
        [module_id] = admin.call(
            "ir.module.module", "search", [("name", "=", "sengerio_mailing")]
        )
        admin.call("ir.module.module", "button_immediate_uninstall", [module_id])
        [module] = admin.call("ir.module.module", "read", [module_id], ["state"])
        assert module["state"] == "uninstalled"
        assert not leftovers(db)
        # Odoo keeps what is no module data: the retention setting
        assert databases.query(
            db, "SELECT key FROM ir_config_parameter WHERE key LIKE 'sengerio%'"
        ) == [("sengerio_mailing.retention_days",)]

        # agent1 sends a quotation: Odoo's own sending, no hidden copy
        agent = server.client("agent1", "agent1")
        [order] = agent.call(
            "sale.order",
            "search_read",
            [("state", "in", ("draft", "sent")), ("user_id", "=", agent.uid)],
            fields=["partner_id"],
            limit=1,
        )
        [email] = [
            p["email"]
            for p in admin.call(
                "res.partner", "read", [order["partner_id"][0]], ["email"]
            )
        ]
        seen = len(sink.messages())
        send_with_composer(agent, "sale.order", order["id"], "action_quotation_send")
        wait_for(lambda: len(sink.messages()) > seen)
        [mail] = sink.messages()[seen:]
        assert mail["rcpt_tos"] == [email]
        assert not [name for name, _v in raw_headers(mail["raw"]) if "bcc" in name]
    finally:
        server.stop()


def test_install_registers_documents_sent_before(prepared_dbs, db_copy, tmp_path):
    """Documents sent by plain Odoo (emails deleted once sent) are registered."""
    db = db_copy(prepared_dbs.base, "backfill")
    sink = SmtpSink(tmp_path / "mail").start()
    databases.set_smtp_port(db, sink.port)
    databases.set_password(db, "agent1", "agent1")
    server = OdooServer(db, VAR / "backfill.log").start()
    try:
        admin = server.client()
        admin.call("ir.config_parameter", "set_param", "report.url", NO_PDF_ASSETS)
        agent = server.client("agent1", "agent1")

        def first(model, domain):
            return agent.call(model, "search", domain, limit=1, order="id")[0]

        mine = [("user_id", "=", agent.uid)]
        quotation = first("sale.order", [("state", "=", "draft"), *mine])
        order = first("sale.order", [("state", "=", "sale"), *mine])
        rfq = first("purchase.order", [("state", "=", "draft"), *mine])
        purchase = first("purchase.order", [("state", "=", "purchase"), *mine])
        billed = [("invoice_user_id", "=", agent.uid), ("state", "=", "posted")]
        invoice = first("account.move", [("move_type", "=", "out_invoice"), *billed])
        refund = first("account.move", [("move_type", "=", "out_refund"), *billed])
        send_with_composer(agent, "sale.order", quotation, "action_quotation_send")
        send_with_composer(agent, "sale.order", order, "action_quotation_send")
        send_with_composer(
            agent, "purchase.order", rfq, "action_rfq_send", {"send_rfq": True}
        )
        send_with_composer(agent, "purchase.order", purchase, "action_rfq_send")
        send_invoice(agent, invoice)
        send_invoice(agent, refund)
        # a note with a file is no document sent by email
        attachment = agent.call(
            "ir.attachment", "create", {"name": "memo.txt", "raw": "memo"}
        )
        agent.call(
            "sale.order",
            "message_post",
            [quotation],
            body="Internal memo",
            attachment_ids=[attachment],
            subtype_xmlid="mail.mt_note",
        )
        wait_for(lambda: len(sink.messages()) == 6)
        assert not admin.call("mail.mail", "search", []), "sent emails are deleted"
    finally:
        server.stop()

    run_odoo(
        "-d", db, "-i", "sengerio_mailing", "--stop-after-init", "--no-http",
        log_path=VAR / "backfill.log",
    )  # fmt: skip

    entries = register_rows(db, "res_model, res_id, document_type, state, bcc_note")
    note = "Sent before Sengerio Mailing was installed."
    assert sorted(entries) == sorted(
        [
            ("sale.order", quotation, "quotation", "sent", note),
            ("sale.order", order, "booking_confirmation", "sent", note),
            ("purchase.order", rfq, "supplier_document", "sent", note),
            ("purchase.order", purchase, "supplier_document", "sent", note),
            ("account.move", invoice, "invoice", "sent", note),
            ("account.move", refund, "credit_note", "sent", note),
        ]
    )
    # each entry is the very email the sink got, to its recipient
    lines = databases.query(
        db,
        """
        SELECT doc.message_id, line.email, line.state
          FROM sengerio_generated_document doc
          JOIN sengerio_generated_document_recipient line
            ON line.document_id = doc.id
        """,
    )
    received = zip(message_ids(sink), sink.messages(), strict=True)
    assert sorted(lines) == sorted(
        (message_id, mail["rcpt_tos"][0], "sent") for message_id, mail in received
    )
    assert all(len(mail["rcpt_tos"]) == 1 for mail in sink.messages())
