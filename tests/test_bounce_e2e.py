"""Bounces end to end: real SMTP out, a DSN back in through the mail gateway."""

import xmlrpc.client
from email import message_from_bytes, policy

from conftest import ALIAS_DOMAIN, email_of
from test_bcc_e2e import create_order, register_entry, send_with_composer

NOTICE_HEADER = "X-Sengerio-Bounce-Notice"


def build_dsn(returned_raw, failed, status="5.1.1"):
    """A Postfix-style RFC 3464 report returning the message the sink got."""
    boundary = "dsn-boundary-e2e"
    head = (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mx.client.test (Mail Delivery System)\r\n"
        "To: bounce@%(domain)s\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-Id: <dsn-%(failed)s@mx.client.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        ' boundary="%(b)s"\r\n\r\n'
        "--%(b)s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "<%(failed)s>: host mx.client.test said: 550 %(status)s <%(failed)s>:\r\n"
        "    Recipient address rejected: User unknown\r\n\r\n"
        "--%(b)s\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.client.test\r\n"
        "Arrival-Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n"
        "Final-Recipient: rfc822; %(failed)s\r\n"
        "Original-Recipient: rfc822;%(failed)s\r\n"
        "Action: failed\r\nStatus: %(status)s\r\n"
        "Remote-MTA: dns; mx.client.test\r\n"
        "Diagnostic-Code: smtp; 550 %(status)s <%(failed)s>: Recipient address\r\n"
        "    rejected: User unknown\r\n\r\n"
        "--%(b)s\r\nContent-Type: message/rfc822\r\n\r\n"
    ) % {"domain": ALIAS_DOMAIN, "failed": failed, "status": status, "b": boundary}
    return head.encode() + returned_raw + ("\r\n--%s--\r\n" % boundary).encode()


def mailgate(odoo, admin, raw):
    """What odoo-mailgate does: message_process over XML-RPC."""
    models = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object", allow_none=True)
    return models.execute_kw(
        odoo.db,
        admin.uid,
        admin.password,
        "mail.thread",
        "message_process",
        [False, xmlrpc.client.Binary(raw)],
        {},
    )


def run_bounce_cron(admin):
    """The bounce notice cron, which runs every minute, run now.

    The gateway only queues a bounce: this cron marks the entry bounced and
    tells the sender. ("Run Manually": the test servers run no cron thread.)
    """
    cron_id = admin.ref("sengerio_mailing.ir_cron_bounce_notices")
    admin.call("ir.cron", "method_direct_trigger", [cron_id])


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
        "sengerio.bounce.notice", "search_read", [], fields=["kind", "recipients"]
    )
    assert queued["kind"] == "failed"
    assert [email for email, _status, _text in queued["recipients"]] == [email]
    run_bounce_cron(admin)
    assert not admin.call("sengerio.bounce.notice", "search", [])

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
