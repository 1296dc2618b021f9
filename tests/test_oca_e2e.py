"""Beside OCA's mail_tracking and mail_composer_cc_bcc, over real SMTP.

``make test`` runs these (with the BCC, register and bounce tests) on its
second database, where both OCA addons and the bridges are installed; on a
database without them they are skipped.
"""

import pytest
from conftest import Mailbox, email_of
from flows import create_invoice, create_order, register_entry, send_invoice
from mailcheck import TRACKING_HEADERS, assert_no_tracking, assert_true_bcc, raw_headers
from test_bcc_e2e import picky_sink, received_for, resend_from_register  # noqa: F401

OCA_MODULES = ("mail_tracking", "mail_composer_cc_bcc")


@pytest.fixture(autouse=True)
def oca_installed(admin):
    installed = admin.call(
        "ir.module.module",
        "search_count",
        [("name", "in", OCA_MODULES), ("state", "=", "installed")],
    )
    if installed != len(OCA_MODULES):
        pytest.skip("the OCA mail addons are not installed on this database")


def partner(admin, unique, name):
    email = "%s%s@client.test" % (name, unique)
    return admin.call("res.partner", "create", {"name": name, "email": email}), email


def send_quotation(client, order_id, **values):
    """The Send button, with the composer's fields (Cc, Bcc...) filled in."""
    action = client.call("sale.order", "action_quotation_send", [order_id])
    ctx = action["context"]
    wizard_id = client.call("mail.compose.message", "create", values, context=ctx)
    client.call("mail.compose.message", "action_send_mail", [wizard_id], context=ctx)


def envelope(received, email):
    [mail] = [m for m in received if email in m["rcpt_tos"]]
    return sorted(mail["rcpt_tos"])


def test_cc_and_bcc_recipients_beside_the_hidden_copy(
    odoo, admin, salesperson, customer, product_id, mailbox, unique
):
    partner_id, email = customer
    cc_id, cc_email = partner(admin, unique, "cc")
    bcc_id, bcc_email = partner(admin, unique, "bcc")
    sender = email_of(salesperson)
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_quotation(
        sales,
        order_id,
        partner_cc_ids=[(6, 0, [cc_id])],
        partner_bcc_ids=[(6, 0, [bcc_id])],
    )

    mailbox.wait(count=3)
    received = mailbox.wait(count=4, timeout=2)  # and nothing more
    assert len(received) == 3, [m["rcpt_tos"] for m in received]
    assert_true_bcc(received, email, sender)
    assert envelope(received, cc_email) == [cc_email]
    assert envelope(received, bcc_email) == [bcc_email]
    for mail in received:
        assert mail["message"]["Cc"].addresses[0].addr_spec == cc_email
        assert bcc_email.encode() not in mail["raw"].lower(), "the Bcc shows"
    assert_no_tracking(received)
    assert register_entry(admin, "sale.order", order_id)["state"] == "sent"


@pytest.mark.parametrize("notification_type", ["email", "inbox"])
def test_sender_in_the_bcc_field_gets_one_copy(
    odoo, admin, salesperson, customer, product_id, mailbox, notification_type
):
    partner_id, email = customer
    sender = email_of(salesperson)
    [user] = admin.call(
        "res.users",
        "search_read",
        [("login", "=", salesperson)],
        fields=["partner_id"],
    )
    admin.call(
        "res.users", "write", [user["id"]], {"notification_type": notification_type}
    )
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    send_quotation(sales, order_id, partner_bcc_ids=[(6, 0, [user["partner_id"][0]])])

    received = received_for(mailbox, email)
    assert len([m for m in received if sender in m["rcpt_tos"]]) == 1
    assert len([m for m in received if email in m["rcpt_tos"]]) == 1
    for mail in received:
        assert "Bcc" not in mail["message"]
    assert_no_tracking(received)


def test_invoice_refused_by_the_relay_fails_then_resends(
    odoo,
    admin,
    salesperson,
    customer,
    product_id,
    picky_sink,  # noqa: F811
):
    """Every recipient refused: a failure to resend, never *Sent*."""
    partner_id, email = customer
    sender = email_of(salesperson)
    picky_sink.handler.refuse.update({email, sender})
    mailbox = Mailbox(picky_sink)
    move_id = create_invoice(admin, salesperson, partner_id, product_id, "out_invoice")
    sales = odoo.client(salesperson, salesperson)
    send_invoice(sales, move_id)

    entry = register_entry(admin, "account.move", move_id, state="exception")
    assert entry["state"] == "exception"
    assert "5.1.1 <%s>: Recipient address rejected" % email in entry["failure_reason"]
    [mail] = admin.call(
        "mail.mail",
        "search_read",
        [("mail_message_id", "=", entry["mail_message_id"][0])],
        fields=["state"],
    )
    assert mail["state"] == "exception"
    assert not admin.call(
        "mail.tracking.email",
        "search",
        [("mail_message_id", "=", entry["mail_message_id"][0])],
    )

    picky_sink.handler.refuse.clear()
    resend_from_register(sales, entry["id"])
    received = received_for(mailbox, email)
    assert_true_bcc(received, email, sender)
    assert_no_tracking(received)
    assert register_entry(admin, "account.move", move_id)["state"] == "sent"


def test_other_emails_keep_mail_tracking(
    odoo, salesperson, customer, product_id, mailbox
):
    """A chatter message is no document: mail_tracking tracks it as before."""
    partner_id, email = customer
    sales = odoo.client(salesperson, salesperson)
    order_id = create_order(sales, partner_id, product_id)
    sales.call(
        "sale.order",
        "message_post",
        [order_id],
        body="Can we move the tour one day later?",
        partner_ids=[partner_id],
        message_type="comment",
        subtype_xmlid="mail.mt_comment",
    )

    [mail] = received_for(mailbox, email)
    assert {name for name, _value in raw_headers(mail["raw"])} & TRACKING_HEADERS
    assert (
        b"/mail/tracking/open/"
        in mail["message"].get_body(("html",)).get_content().encode()
    )
