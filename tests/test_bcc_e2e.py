"""True BCC over real SMTP: one test per document type, read off the sink."""

import asyncio
import base64
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Mailbox, email_of
from flows import (  # noqa: F401 (the other tests import them from here)
    create_invoice,
    create_order,
    register_entry,
    send_invoice,
    send_rfq,
    send_with_composer,
)
from mailcheck import (
    assert_no_hidden_copy,
    assert_no_tracking,
    assert_true_bcc,
    pdf_attachments,
)
from smtp_sink import SmtpSink, SpoolHandler


def received_for(mailbox, email):
    received = mailbox.wait(predicate=lambda m: email in m["rcpt_tos"])
    assert received, "nothing reached the sink for %s" % email
    # give a late duplicate the chance to show up
    return mailbox.wait(count=len(received) + 1, timeout=1)


def document_message(admin, model, record_id):
    return admin.call(
        "mail.message",
        "search_read",
        [
            ("model", "=", model),
            ("res_id", "=", record_id),
            ("sengerio_document_type", "!=", False),
        ],
        fields=["sengerio_document_type", "sengerio_bcc_email"],
    )


def test_quotation(odoo, admin, salesperson, customer, product_id, mailbox):
    partner_id, email = customer
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")

    received = received_for(mailbox, email)
    mail = assert_true_bcc(received, email, email_of(salesperson))
    assert_no_tracking(received)
    assert pdf_attachments(mail)[0].startswith(b"%PDF")
    [message] = document_message(admin, "sale.order", order_id)
    assert message["sengerio_document_type"] == "quotation"
    assert message["sengerio_bcc_email"] == email_of(salesperson)
    entry = register_entry(admin, "sale.order", order_id)
    assert entry["state"] == "sent"
    assert entry["document_type"] == "quotation"
    assert entry["bcc_email"] == email_of(salesperson)
    [attachment] = admin.call(
        "ir.attachment", "read", entry["attachment_ids"], ["datas", "mimetype"]
    )
    assert attachment["mimetype"] == "application/pdf"
    assert base64.b64decode(attachment["datas"]) == pdf_attachments(mail)[0]


def test_booking_confirmation(odoo, admin, salesperson, customer, product_id, mailbox):
    """Confirming with the confirmation email, as portal signature does."""
    partner_id, email = customer
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    sales.call("sale.order", "action_confirm", [order_id], context={"send_email": True})

    received = received_for(mailbox, email)
    assert_true_bcc(received, email, email_of(salesperson))
    assert_no_tracking(received)
    [message] = document_message(admin, "sale.order", order_id)
    assert message["sengerio_document_type"] == "booking_confirmation"


@pytest.mark.parametrize(
    "move_type, document_type",
    [("out_invoice", "invoice"), ("out_refund", "credit_note")],
)
def test_invoice_and_credit_note(
    odoo, admin, salesperson, customer, product_id, mailbox, move_type, document_type
):
    partner_id, email = customer
    move_id = create_invoice(admin, salesperson, partner_id, product_id, move_type)
    send_invoice(odoo.client(salesperson, salesperson), move_id)

    received = received_for(mailbox, email)
    mail = assert_true_bcc(received, email, email_of(salesperson))
    assert_no_tracking(received)
    assert pdf_attachments(mail)[0].startswith(b"%PDF")
    [message] = document_message(admin, "account.move", move_id)
    assert message["sengerio_document_type"] == document_type
    entry = register_entry(admin, "account.move", move_id)
    assert (entry["state"], entry["document_type"]) == ("sent", document_type)


def test_supplier_document(odoo, admin, purchaser, product_id, mailbox, unique):
    email = "vendor%s@supplier.test" % unique
    vendor_id = admin.call(
        "res.partner", "create", {"name": "Vendor %s" % unique, "email": email}
    )
    po_id = send_rfq(odoo.client(purchaser, purchaser), vendor_id, product_id)

    received = received_for(mailbox, email)
    assert_true_bcc(received, email, email_of(purchaser))
    assert_no_tracking(received)
    [message] = document_message(admin, "purchase.order", po_id)
    assert message["sengerio_document_type"] == "supplier_document"
    assert register_entry(admin, "purchase.order", po_id)["state"] == "sent"


def test_other_document_goes_out_plainly(
    odoo, admin, salesperson, customer, product_id, mailbox
):
    """A pro-forma invoice of an order: no hidden copy, no tracking."""
    partner_id, email = customer
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(
        sales, "sale.order", order_id, "action_quotation_send", {"proforma": True}
    )

    received = received_for(mailbox, email)
    assert len(received) == 1
    assert received[0]["rcpt_tos"] == [email]
    assert_no_hidden_copy(received)
    assert_no_tracking(received)
    assert not [m for m in received if email_of(salesperson) in m["rcpt_tos"]]
    [message] = document_message(admin, "sale.order", order_id)
    assert message["sengerio_document_type"] == "other"
    assert not message["sengerio_bcc_email"]
    entry = register_entry(admin, "sale.order", order_id)
    assert (entry["state"], entry["document_type"]) == ("sent", "other")
    assert not entry["bcc_email"]


def test_mass_send_from_list_with_mass_mailing_installed(
    odoo, admin, salesperson, product_id, mailbox, unique
):
    """Quotations sent together from the list, named as a mailing: no tracking."""
    admin.call(
        "res.users",
        "write",
        [odoo.client(salesperson, salesperson).uid],
        {
            "groups_id": [
                (4, admin.ref("mass_mailing.group_mass_mailing_user")),
                # the mailing keeps the template's dynamic body
                (4, admin.ref("mail.group_mail_template_editor")),
            ]
        },
    )
    sales = odoo.client(salesperson, salesperson)
    emails, order_ids = [], []
    for n in range(2):
        email = "list%s-%s@client.test" % (unique, n)
        partner_id = admin.call(
            "res.partner", "create", {"name": "List %s" % n, "email": email}
        )
        emails.append(email)
        order_ids.append(create_order(sales, partner_id, product_id))
    ctx = {
        "default_composition_mode": "mass_mail",
        "default_model": "sale.order",
        "default_res_ids": order_ids,
        "default_template_id": admin.ref("sale.email_template_edi_sale"),
    }
    wizard_id = sales.call(
        "mail.compose.message",
        "create",
        {"mass_mailing_name": "Spring offers %s" % unique},
        context=ctx,
    )
    sales.call("mail.compose.message", "action_send_mail", [wizard_id], context=ctx)

    received = mailbox.wait(
        count=2, predicate=lambda m: set(m["rcpt_tos"]) & set(emails)
    )
    assert len(received) == 2
    assert_no_tracking(received)
    for email in emails:
        assert_true_bcc(
            [m for m in received if email in m["rcpt_tos"]],
            email,
            email_of(salesperson),
        )
    for order_id in order_ids:
        assert register_entry(admin, "sale.order", order_id)["state"] == "sent"


class PickySpool(SpoolHandler):
    """Refuses some addresses at RCPT, as a relay refusing unknown users.

    ``data_delay`` makes the server take its time over each message, so
    that two senders are in the middle of a send together.
    """

    def __init__(self, spool):
        super().__init__(spool)
        self.refuse = set()
        self.data_delay = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def picky_sink(admin, tmp_path):
    """A sink of this test's own, which the Odoo server sends to meanwhile."""
    sink = SmtpSink(tmp_path / "mail")
    sink.handler = PickySpool(tmp_path / "mail")
    sink.start()
    servers = admin.call("ir.mail_server", "search_read", [], fields=["smtp_port"])
    for server in servers:
        admin.call("ir.mail_server", "write", [server["id"]], {"smtp_port": sink.port})
    try:
        yield sink
    finally:
        for server in servers:
            admin.call(
                "ir.mail_server",
                "write",
                [server["id"]],
                {"smtp_port": server["smtp_port"]},
            )
        sink.stop()


def resend_from_register(client, entry_id):
    """The register's Resend, through Odoo's resend wizard."""
    action = client.call("sengerio.generated.document", "action_resend", [entry_id])
    ctx = action["context"]
    wizard_id = client.call("mail.resend.message", "create", {}, context=ctx)
    client.call("mail.resend.message", "resend_mail_action", [wizard_id], context=ctx)


def test_refused_customer_is_failed_and_a_resend_reaches_only_them(
    odoo, admin, salesperson, customer, product_id, picky_sink
):
    """The relay refuses the customer at RCPT and takes the sender's copy."""
    partner_id, email = customer
    sender = email_of(salesperson)
    picky_sink.handler.refuse.add(email)
    mailbox = Mailbox(picky_sink)
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")

    [copy] = mailbox.wait(predicate=lambda m: sender in m["rcpt_tos"])
    assert copy["rcpt_tos"] == [sender]
    entry = register_entry(admin, "sale.order", order_id, state="exception")
    assert entry["state"] == "exception"
    assert "The mail server refused the email." in entry["failure_reason"]
    assert (
        "550 5.1.1 <%s>: Recipient address rejected" % email
        in (entry["failure_reason"])
    )
    # Odoo's own notification shows the failure (red envelope, resend)
    [notification] = admin.call(
        "mail.notification",
        "search_read",
        [("mail_message_id", "=", entry["mail_message_id"][0])],
        fields=["notification_status"],
    )
    assert notification["notification_status"] == "exception"

    picky_sink.handler.refuse.clear()  # the user exists now
    resend_from_register(sales, entry["id"])
    [resent] = mailbox.wait(predicate=lambda m: email in m["rcpt_tos"])
    assert resent["rcpt_tos"] == [email], "the resend carries no second copy"
    assert len(mailbox.wait(count=3, timeout=2)) == 2
    assert register_entry(admin, "sale.order", order_id)["state"] == "sent"


def test_send_later_quotation_posted_by_the_cron(
    odoo, admin, salesperson, customer, product_id, mailbox
):
    """The composer's Send Later: Odoo's cron posts it, with copy and entry."""
    partner_id, email = customer
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    action = sales.call("sale.order", "action_quotation_send", [order_id])
    ctx = action["context"]
    wizard_id = sales.call("mail.compose.message", "create", {}, context=ctx)
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    sales.call(
        "mail.compose.message",
        "action_schedule_message",
        [wizard_id],
        scheduled_date=when.strftime("%Y-%m-%d %H:%M:%S"),
        context=ctx,
    )
    assert not document_message(admin, "sale.order", order_id)
    time.sleep(max(0, (when - datetime.now(timezone.utc)).total_seconds()) + 1)
    cron_id = admin.ref("mail.ir_cron_post_scheduled_message")
    admin.call("ir.cron", "method_direct_trigger", [cron_id])

    received = received_for(mailbox, email)
    assert_true_bcc(received, email, email_of(salesperson))
    assert_no_tracking(received)
    [message] = document_message(admin, "sale.order", order_id)
    assert message["sengerio_document_type"] == "quotation"
    entry = register_entry(admin, "sale.order", order_id)
    assert (entry["state"], entry["bcc_email"]) == ("sent", email_of(salesperson))


def test_sibling_emails_sent_by_two_processes_at_once(
    odoo, admin, salesperson, purchaser, customer, product_id, picky_sink
):
    """One message, two emails (customer, colleague), sent together.

    Both transactions are open while the slow server takes each message:
    whatever the addon records after SMTP must not roll either back, or the
    queue would send that email (and its copy) again.
    """
    partner_id, email = customer
    sender = email_of(salesperson)
    colleague = email_of(purchaser)
    [colleague_partner] = admin.call(
        "res.partner", "search", [("email", "=", colleague)], limit=1
    )
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    action = sales.call("sale.order", "action_quotation_send", [order_id])
    # queued, as with many recipients: the mail queue sends them
    ctx = dict(action["context"], mail_notify_force_send=False)
    wizard_id = sales.call(
        "mail.compose.message",
        "create",
        {"partner_ids": [(6, 0, [partner_id, colleague_partner])]},
        context=ctx,
    )
    sales.call("mail.compose.message", "action_send_mail", [wizard_id], context=ctx)
    entry = register_entry(admin, "sale.order", order_id, state="outgoing")
    mail_ids = admin.call(
        "mail.mail",
        "search",
        [("mail_message_id", "=", entry["mail_message_id"][0])],
    )
    assert len(mail_ids) == 2, "one email per recipient group"

    picky_sink.handler.data_delay = 1.5
    errors = []

    def send(mail_id):
        try:
            odoo.client().call("mail.mail", "send", [mail_id])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(m,)) for m in mail_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    picky_sink.handler.data_delay = 0
    assert not errors, errors
    # the queue runs after them: nothing is left to send again
    admin.call("mail.mail", "process_email_queue")

    time.sleep(2)  # give a second delivery the time to show up
    deliveries = Counter(frozenset(m["rcpt_tos"]) for m in picky_sink.messages())
    assert deliveries == {frozenset({email, sender}): 1, frozenset({colleague}): 1}
    entry = register_entry(admin, "sale.order", order_id)
    assert entry["state"] == "sent"
    lines = admin.call(
        "sengerio.generated.document.recipient",
        "search_read",
        [("document_id", "=", entry["id"])],
        fields=["email", "state"],
    )
    assert {(line["email"], line["state"]) for line in lines} == {
        (email, "sent"),
        (colleague, "sent"),
    }
