"""Odoo's document flows driven from outside, as a user clicks them.

Shared by the end-to-end tests, the demo seeding of ``make run`` and the
local SMTP sink: each function makes the JSON-RPC calls the web client makes
for one button (Send, Send & Print, Confirm...), as the given user, or hands
a delivery report to Odoo's mail gateway the way ``odoo-mailgate`` does.
"""

import time
import xmlrpc.client


def create_order(client, partner_id, product_id, quantity=2):
    """A quotation of ``client``'s user (its salesperson)."""
    return client.call(
        "sale.order",
        "create",
        {
            "partner_id": partner_id,
            "user_id": client.uid,
            "order_line": [
                (0, 0, {"product_id": product_id, "product_uom_qty": quantity})
            ],
        },
    )


def send_with_composer(client, model, record_id, action_method, context=None):
    """What the Send button does: open the composer from the action, Send."""
    action = client.call(model, action_method, [record_id], context=context or {})
    ctx = action["context"]
    wizard_id = client.call("mail.compose.message", "create", {}, context=ctx)
    client.call("mail.compose.message", "action_send_mail", [wizard_id], context=ctx)


def send_rfq(client, vendor_id, product_id):
    """A request for quotation, created by ``client`` and sent with Send."""
    po_id = client.call(
        "purchase.order",
        "create",
        {
            "partner_id": vendor_id,
            "user_id": client.uid,
            "order_line": [(0, 0, {"product_id": product_id, "product_qty": 3})],
        },
    )
    send_with_composer(
        client, "purchase.order", po_id, "action_rfq_send", {"send_rfq": True}
    )
    return po_id


def create_invoice(admin, salesperson, partner_id, product_id, move_type):
    """A posted customer invoice or credit note of ``salesperson`` (a login)."""
    sales_uid = admin.call(
        "res.users", "search", [("login", "=", salesperson)], limit=1
    )[0]
    move_id = admin.call(
        "account.move",
        "create",
        {
            "move_type": move_type,
            "partner_id": partner_id,
            "invoice_user_id": sales_uid,
            "invoice_line_ids": [
                (0, 0, {"product_id": product_id, "price_unit": 240.0})
            ],
        },
    )
    admin.call("account.move", "action_post", [move_id])
    return move_id


def send_invoice(client, move_id):
    """The invoice's Send & Print button, then its wizard's Send."""
    ctx = {"active_model": "account.move", "active_ids": [move_id]}
    wizard_id = client.call("account.move.send.wizard", "create", {}, context=ctx)
    client.call("account.move.send.wizard", "action_send_and_print", [wizard_id])


def register_entry(admin, model, record_id, state="sent", timeout=30):
    """The Generated Documents entry of a record, once it reaches ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        entries = admin.call(
            "sengerio.generated.document",
            "search_read",
            [("res_model", "=", model), ("res_id", "=", record_id)],
            fields=[
                "document_type",
                "state",
                "bcc_email",
                "attachment_ids",
                "failure_reason",
                "mail_message_id",
            ],
        )
        if (entries and entries[0]["state"] == state) or time.monotonic() > deadline:
            assert len(entries) == 1
            return entries[0]
        time.sleep(0.3)


def build_dsn(returned_raw, failed, status="5.1.1", alias_domain="sengerio.test"):
    """A Postfix-style RFC 3464 report returning the message a server got.

    :param returned_raw: the bytes of the message that could not be delivered
    :param failed: the recipient that failed
    :param alias_domain: the Odoo alias domain, whose bounce address gets it
    """
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
    ) % {"domain": alias_domain, "failed": failed, "status": status, "b": boundary}
    return head.encode() + returned_raw + ("\r\n--%s--\r\n" % boundary).encode()


def message_process(url, db, uid, password, raw):
    """What ``odoo-mailgate`` does with a message: ``message_process``."""
    models = xmlrpc.client.ServerProxy(url + "/xmlrpc/2/object", allow_none=True)
    return models.execute_kw(
        db,
        uid,
        password,
        "mail.thread",
        "message_process",
        [False, xmlrpc.client.Binary(raw)],
        {},
    )


def mailgate(odoo, admin, raw):
    """A message into ``odoo``'s mail gateway, as its administrator."""
    return message_process(odoo.url, odoo.db, admin.uid, admin.password, raw)


def run_bounce_cron(admin):
    """The bounce notice cron, which runs every minute, run now.

    The gateway only queues a bounce: this cron marks the entry bounced and
    tells the sender. ("Run Manually": the test servers run no cron thread.)
    """
    cron_id = admin.ref("sengerio_mailing.ir_cron_bounce_notices")
    admin.call("ir.cron", "method_direct_trigger", [cron_id])
