"""The plumbing: Odoo with the addon, Odoo's composer, real SMTP, the sink."""

from email.utils import getaddresses

from conftest import ALIAS_DOMAIN


def test_quotation_sent_through_composer_reaches_the_sink(
    odoo, admin, salesperson, mailbox, unique
):
    customer_email = "customer%s@client.test" % unique
    partner_id = admin.call(
        "res.partner",
        "create",
        {"name": "Customer %s" % unique, "email": customer_email},
    )
    product_id = admin.call(
        "product.product", "create", {"name": "Tour %s" % unique, "list_price": 120.0}
    )
    sales = odoo.client(salesperson, salesperson)
    order_id = sales.call(
        "sale.order",
        "create",
        {
            "partner_id": partner_id,
            "order_line": [(0, 0, {"product_id": product_id, "product_uom_qty": 2})],
        },
    )
    order_name = sales.call("sale.order", "read", [order_id], ["name"])[0]["name"]

    # What the Send button does: open the composer with the action's context,
    # then click "Send" in it.
    action = sales.call("sale.order", "action_quotation_send", [order_id])
    ctx = action["context"]
    wizard_id = sales.call("mail.compose.message", "create", {}, context=ctx)
    sales.call("mail.compose.message", "action_send_mail", [wizard_id], context=ctx)

    received = mailbox.wait(predicate=lambda m: customer_email in m["rcpt_tos"])
    assert len(received) == 1, "the quotation did not reach the SMTP sink"
    mail = received[0]
    msg = mail["message"]

    # The envelope: Odoo's bounce address on the alias domain, the customer.
    assert mail["mail_from"] == "bounce@%s" % ALIAS_DOMAIN
    assert customer_email in mail["rcpt_tos"]
    # The headers the customer sees.
    assert order_name in msg["Subject"]
    assert [a for _n, a in getaddresses([msg["To"]])] == [customer_email]
    assert "%s@sengerio-agency.test" % salesperson in msg["From"]
    assert msg["Message-Id"]
    # The quotation PDF rendered by wkhtmltopdf travels with it.
    pdfs = [
        p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"
    ]
    assert len(pdfs) == 1
    assert pdfs[0].get_content().startswith(b"%PDF")
    assert order_name.replace("/", "_") in pdfs[0].get_filename()
