"""True BCC over real SMTP: one test per document type, read off the sink."""

import base64

import pytest
from conftest import email_of
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
