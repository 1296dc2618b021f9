"""Send a handful of demo documents through Odoo's real flows.

``make run`` runs it once, when it creates the demo database, against the
running server and its local SMTP sink, so that *Generated Documents* opens
on documents really sent: quotations, a booking confirmation, invoices, a
credit note, an RFQ and a purchase order (each with its hidden copy), a
pro-forma and a payment receipt (no copy), one quotation to a customer whose
server bounces it (the sink returns a delivery report through Odoo's mail
gateway, the bounce cron tells the sender) and one send that fails on the
mail server and waits for *Resend*. Nothing is written in the register by
hand. A second run sends nothing: the database remembers it was seeded.

    python dev/seed_demo.py --url http://127.0.0.1:8069 --db sengerio_demo
"""

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flows import (  # noqa: E402
    create_invoice,
    create_order,
    register_entry,
    run_bounce_cron,
    send_invoice,
    send_with_composer,
)
from harness import OdooClient  # noqa: E402

SEEDED_PARAM = "sengerio_mailing.demo_seeded"
# The customer whose mail server refuses every address: the local sink
# answers for it with a delivery report (dev/smtp_sink.py --bounce-domain).
BOUNCE_DOMAIN = "nowhere.example"
BOUNCING_CUSTOMER = ("Nowhere Travel", "bookings@%s" % BOUNCE_DOMAIN)


def log(message, *args):
    print("[seed] " + (message % args if args else message), file=sys.stderr)


def _partner(admin, name, email=None):
    found = admin.call("res.partner", "search", [("name", "=", name)], limit=1)
    if found:
        return found[0]
    return admin.call("res.partner", "create", {"name": name, "email": email})


def _product(admin, name, price):
    found = admin.call("product.product", "search", [("name", "=", name)], limit=1)
    if found:
        return found[0]
    return admin.call(
        "product.product",
        "create",
        {
            "name": name,
            "type": "service",
            "list_price": price,
            "standard_price": price * 0.6,
            "invoice_policy": "order",
        },
    )


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what, check, timeout=120):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for %s" % what)
        time.sleep(0.5)


def seed(url, db, password="admin", demo_password="demo"):
    """Send the demo documents; return what was sent, or None if done before."""
    admin = OdooClient(url, db, "admin", password)
    if admin.call("ir.config_parameter", "get_param", SEEDED_PARAM):
        log("%s was seeded before: nothing sent", db)
        return None
    demo = OdooClient(url, db, "demo", demo_password)
    tour = _product(admin, "Dolomites Walking Tour (7 days)", 1250.0)
    venice = _product(admin, "Venice Day Trip", 180.0)
    customers = {
        name: _partner(admin, name)
        for name in ("Azure Interior", "Deco Addict", "Gemini Furniture")
    }
    vendor = _partner(admin, "Wood Corner")
    nowhere = _partner(admin, *BOUNCING_CUSTOMER)
    sent = {}

    log("quotations and a pro-forma, by Marc Demo")
    for name in ("Azure Interior", "Deco Addict"):
        order = create_order(demo, customers[name], tour)
        send_with_composer(demo, "sale.order", order, "action_quotation_send")
        sent.setdefault("quotation", []).append(order)
    proforma = create_order(demo, customers["Azure Interior"], venice, quantity=4)
    send_with_composer(
        demo, "sale.order", proforma, "action_quotation_send", {"proforma": True}
    )
    sent["other"] = [("sale.order", proforma)]

    log("a booking confirmation, by Marc Demo")
    booking = create_order(demo, customers["Gemini Furniture"], tour)
    demo.call("sale.order", "action_confirm", [booking], context={"send_email": True})
    sent["booking_confirmation"] = [booking]

    log("invoices and a credit note, by Marc Demo")
    invoices = [
        create_invoice(admin, "demo", customers[name], tour, "out_invoice")
        for name in ("Deco Addict", "Gemini Furniture")
    ]
    refund = create_invoice(
        admin, "demo", customers["Deco Addict"], venice, "out_refund"
    )
    for move in [*invoices, refund]:
        send_invoice(demo, move)
    sent["invoice"], sent["credit_note"] = invoices, [refund]

    log("a payment receipt, by Mitchell Admin")
    journal = admin.call("account.journal", "search", [("type", "=", "bank")], limit=1)[
        0
    ]
    payment = admin.call(
        "account.payment",
        "create",
        {
            "payment_type": "inbound",
            "partner_type": "customer",
            "partner_id": customers["Gemini Furniture"],
            "amount": 1250.0,
            "journal_id": journal,
        },
    )
    admin.call("account.payment", "action_post", [payment])
    template = admin.ref("account.mail_template_data_payment_receipt")
    context = {
        "default_model": "account.payment",
        "default_res_ids": [payment],
        "default_composition_mode": "comment",
        "default_template_id": template,
        "default_email_layout_xmlid": "mail.mail_notification_light",
    }
    wizard = admin.call("mail.compose.message", "create", {}, context=context)
    admin.call("mail.compose.message", "action_send_mail", [wizard], context=context)
    sent["other"].append(("account.payment", payment))

    log("an RFQ and a purchase order, by Marc Demo")
    purchases = []
    for confirm in (False, True):
        po = demo.call(
            "purchase.order",
            "create",
            {
                "partner_id": vendor,
                "user_id": demo.uid,
                "order_line": [(0, 0, {"product_id": venice, "product_qty": 12})],
            },
        )
        if confirm:
            demo.call("purchase.order", "button_confirm", [po])
        send_with_composer(
            demo, "purchase.order", po, "action_rfq_send", {"send_rfq": not confirm}
        )
        purchases.append(po)
    sent["supplier_document"] = purchases

    log("a quotation to %s, whose server bounces it", BOUNCING_CUSTOMER[1])
    bounced = create_order(demo, nowhere, venice)
    send_with_composer(demo, "sale.order", bounced, "action_quotation_send")
    _wait(
        "the delivery report",
        lambda: admin.call("sengerio.bounce.notice", "search_count", []),
    )
    run_bounce_cron(admin)
    register_entry(admin, "sale.order", bounced, state="bounced", timeout=60)
    sent["bounced"] = [bounced]

    log("a quotation while the mail server is down: it waits for Resend")
    [server] = admin.call(
        "ir.mail_server", "search_read", [], fields=["smtp_port"], limit=1
    )
    port = server["smtp_port"]
    admin.call("ir.mail_server", "write", [server["id"]], {"smtp_port": _closed_port()})
    try:
        failed = create_order(demo, customers["Deco Addict"], venice, quantity=6)
        send_with_composer(demo, "sale.order", failed, "action_quotation_send")
    finally:
        admin.call("ir.mail_server", "write", [server["id"]], {"smtp_port": port})
    register_entry(admin, "sale.order", failed, state="exception")
    sent["failed"] = [failed]

    admin.call("ir.config_parameter", "set_param", SEEDED_PARAM, "1")
    log("done: %s", ", ".join("%s %s" % (len(v), k) for k, v in sent.items()))
    return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--db", default="sengerio_demo")
    args = parser.parse_args()
    seed(args.url, args.db)


if __name__ == "__main__":
    main()
