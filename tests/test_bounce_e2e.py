"""Bounces end to end: real SMTP out, a DSN back in through the mail gateway."""

import re
import subprocess
from contextlib import contextmanager
from email import message_from_bytes, policy

import pytest
from conftest import ALIAS_DOMAIN, email_of
from flows import build_dsn as _build_dsn
from flows import (  # noqa: F401 (imported from here)
    create_order,
    mailgate,
    register_entry,
    run_bounce_cron,
    send_with_composer,
)
from harness import free_port, odoo_cmd
from smtp_sink import SmtpSink

NOTICE_HEADER = "X-Sengerio-Bounce-Notice"


def build_dsn(returned_raw, failed, status="5.1.1"):
    """A delivery report to the test database's bounce address."""
    return _build_dsn(returned_raw, failed, status, alias_domain=ALIAS_DOMAIN)


def test_hard_bounce_goes_back_to_the_sender(
    odoo, admin, salesperson, product_id, mailbox, unique
):
    email = "nobody%s@client.test" % unique
    partner_id = admin.call(
        "res.partner", "create", {"name": "Nobody %s" % unique, "email": email}
    )
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")
    [sent] = mailbox.wait(predicate=lambda m: email in m["rcpt_tos"])
    assert register_entry(admin, "sale.order", order_id)["state"] == "sent"

    # the customer's server refuses it: the DSN comes back to the bounce address
    mailgate(odoo, admin, build_dsn(sent["raw"], email))
    # the gateway queued it for the bounce notice cron
    assert register_entry(admin, "sale.order", order_id)["state"] == "sent"
    [queued] = admin.call(
        "sengerio.bounce.notice",
        "search_read",
        [("document_id.res_id", "=", order_id)],
        fields=["kind", "recipients"],
    )
    assert queued["kind"] == "failed"
    assert [email for email, _status, _text in queued["recipients"]] == [email]
    run_bounce_cron(admin)
    [queued] = admin.call(
        "sengerio.bounce.notice", "read", [queued["id"]], fields=["state"]
    )
    assert queued["state"] == "sending"

    entry = register_entry(admin, "sale.order", order_id, state="bounced")
    assert entry["state"] == "bounced"
    [line] = admin.call(
        "sengerio.generated.document.recipient",
        "search_read",
        [("document_id", "=", entry["id"])],
        fields=["email", "state", "dsn_status", "failure_reason"],
    )
    assert (line["email"], line["state"], line["dsn_status"]) == (
        email,
        "bounced",
        "5.1.1",
    )
    assert line["failure_reason"].startswith("the address does not exist")
    # Odoo's own notification is bounced too
    notifications = admin.call(
        "mail.notification",
        "search_read",
        [("res_partner_id", "=", partner_id), ("notification_type", "=", "email")],
        fields=["notification_status"],
    )
    assert [n["notification_status"] for n in notifications] == ["bounce"]

    # the sender finds the bounce in their own mailbox, with the DSN attached
    [notice] = mailbox.wait(
        predicate=lambda m: (
            email_of(salesperson) in m["rcpt_tos"] and m["message"].get(NOTICE_HEADER)
        )
    )
    assert notice["rcpt_tos"] == [email_of(salesperson)]
    assert notice["mail_from"] == "bounce@%s" % ALIAS_DOMAIN
    msg = notice["message"]
    assert "Undelivered" in msg["Subject"]
    [returned] = [
        p for p in msg.iter_attachments() if p.get_content_type() == "message/rfc822"
    ]
    dsn = message_from_bytes(returned.get_payload()[0].as_bytes(), policy=policy.SMTP)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert email in msg.get_body(("html", "plain")).get_content()


# Notices on the wire, replays and faults -------------------------------------


@pytest.fixture
def strict_sink(tmp_path):
    """A sink that refuses what strict SMTP servers refuse (bare LF...)."""
    with SmtpSink(tmp_path / "strict", strict=True) as sink:
        yield sink


@contextmanager
def mail_server_port(admin, port):
    """Odoo sends through ``port`` for a while."""
    servers = admin.call("ir.mail_server", "search_read", [], fields=["smtp_port"])
    ids = [server["id"] for server in servers]
    admin.call("ir.mail_server", "write", ids, {"smtp_port": port})
    try:
        yield
    finally:
        for server in servers:
            admin.call(
                "ir.mail_server",
                "write",
                [server["id"]],
                {"smtp_port": server["smtp_port"]},
            )


def sent_quotation(odoo, admin, salesperson, product_id, mailbox, email):
    """A quotation sent to ``email``: its order and the bytes the sink got."""
    partner_id = admin.call(
        "res.partner", "create", {"name": "Customer " + email, "email": email}
    )
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")
    [sent] = mailbox.wait(predicate=lambda m: email in m["rcpt_tos"])
    return order_id, sent["raw"]


def notices_of(admin, order_id):
    return admin.call(
        "sengerio.bounce.notice",
        "search_read",
        [
            ("document_id.res_model", "=", "sale.order"),
            ("document_id.res_id", "=", order_id),
        ],
        fields=["kind", "state", "told_date"],
    )


def as_piped(raw):
    """What an MTA's pipe (Postfix to odoo-mailgate) hands over: LF only."""
    return raw.replace(b"\r\n", b"\n")


def told(strict_sink, salesperson):
    """What the strict sink took for the salesperson; nothing was refused."""
    sender = email_of(salesperson)
    assert [r for r in strict_sink.handler.refused if sender in r[0]] == []
    return [m for m in strict_sink.messages() if m["rcpt_tos"] == [sender]]


def run_mail_queue(admin):
    cron_id = admin.ref("mail.ir_cron_mail_scheduler_action")
    admin.call("ir.cron", "method_direct_trigger", [cron_id])


def test_replayed_piped_report_reaches_the_sender_once(
    odoo, admin, salesperson, product_id, mailbox, unique, strict_sink
):
    email = "gone%s@client.test" % unique
    order_id, sent = sent_quotation(
        odoo, admin, salesperson, product_id, mailbox, email
    )
    dsn = as_piped(build_dsn(sent, email))
    assert b"\r" not in dsn
    with mail_server_port(admin, strict_sink.port):
        # fetched twice (a POP session cut before QUIT), then once more later
        mailgate(odoo, admin, dsn)
        mailgate(odoo, admin, dsn)
        run_bounce_cron(admin)
        mailgate(odoo, admin, dsn)
        run_bounce_cron(admin)
    [notice] = told(strict_sink, salesperson)
    msg = message_from_bytes(notice["raw"], policy=policy.SMTP)
    assert msg[NOTICE_HEADER]
    [returned] = [
        p for p in msg.iter_attachments() if p.get_content_type() == "message/rfc822"
    ]
    assert returned.get_filename() == "delivery-report.eml"
    # the report as received, its lines ended by CRLF on the wire
    assert re.sub(rb"\n", b"\r\n", dsn).rstrip() in notice["raw"]
    [row] = notices_of(admin, order_id)
    assert (row["kind"], row["state"]) == ("failed", "done")
    assert row["told_date"]
    assert register_entry(admin, "sale.order", order_id, state="bounced")


def test_notice_reaches_the_sender_once_the_mail_server_is_back(
    odoo, admin, salesperson, product_id, mailbox, unique, strict_sink
):
    email = "closed%s@client.test" % unique
    order_id, sent = sent_quotation(
        odoo, admin, salesperson, product_id, mailbox, email
    )
    # 8-bit text and a line longer than SMTP allows, as some servers write
    dsn = as_piped(build_dsn(sent, email)).replace(
        b"I'm sorry",
        "Spiacenti, non è stato possibile. ".encode() + b"x" * 2000 + b"\nI'm sorry",
    )
    with mail_server_port(admin, free_port()):  # nothing listens there
        mailgate(odoo, admin, dsn)
        run_bounce_cron(admin)
    assert register_entry(admin, "sale.order", order_id, state="bounced")
    [row] = notices_of(admin, order_id)
    assert row["state"] == "sending"
    assert not strict_sink.messages()
    with mail_server_port(admin, strict_sink.port):
        run_bounce_cron(admin)  # puts the failed email back in the queue
        run_mail_queue(admin)
        run_bounce_cron(admin)
        run_mail_queue(admin)
    [notice] = told(strict_sink, salesperson)
    msg = message_from_bytes(notice["raw"], policy=policy.SMTP)
    [report] = list(msg.iter_attachments())
    assert report.get_content_type() == "message/global"
    assert report["Content-Transfer-Encoding"] == "base64"
    [row] = notices_of(admin, order_id)
    assert row["state"] == "done"


KILLED_GATEWAY = """
import os, signal
from pathlib import Path
for index, path in enumerate(sorted(Path(%(folder)r).glob("*.eml"))):
    env["mail.thread"].message_process(False, path.read_bytes())
    env.cr.commit()  # as fetchmail does after each message
    if index + 1 == %(kill_after)s:
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-batch
"""


def fetch_batch(odoo, folder, kill_after=0):
    """Feed the DSNs of ``folder`` to the gateway as fetchmail does."""
    return subprocess.run(
        odoo_cmd("shell", "-d", odoo.db, "--no-http", "--log-level", "warn"),
        input=KILLED_GATEWAY % {"folder": str(folder), "kill_after": kill_after},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_worker_killed_mid_batch_tells_each_sender_once(
    odoo, admin, salesperson, product_id, mailbox, unique, tmp_path
):
    orders = []
    for n in range(3):
        email = "batch%s-%s@client.test" % (unique, n)
        order_id, sent = sent_quotation(
            odoo, admin, salesperson, product_id, mailbox, email
        )
        orders.append(order_id)
        (tmp_path / ("%s.eml" % n)).write_bytes(as_piped(build_dsn(sent, email)))
    killed = fetch_batch(odoo, tmp_path, kill_after=2)
    assert killed.returncode == -9, killed.stderr[-2000:]
    # the mailbox still holds all three: the next fetch gets them again
    again = fetch_batch(odoo, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    run_bounce_cron(admin)
    for order_id in orders:
        assert len(notices_of(admin, order_id)) == 1
        assert register_entry(admin, "sale.order", order_id, state="bounced")
    told = mailbox.wait(
        count=4,
        timeout=20,
        predicate=lambda m: (
            m["message"].get(NOTICE_HEADER) is not None
            and email_of(salesperson) in m["rcpt_tos"]
        ),
    )
    assert len(told) == 3
