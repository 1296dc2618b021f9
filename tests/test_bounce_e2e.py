"""Bounces end to end: real SMTP out, a DSN back in through the mail gateway."""

from email import message_from_bytes, policy

from conftest import ALIAS_DOMAIN, email_of
from flows import build_dsn as _build_dsn
from flows import (  # noqa: F401 (imported from here)
    create_order,
    mailgate,
    register_entry,
    run_bounce_cron,
    send_with_composer,
)


def build_dsn(returned_raw, failed, status="5.1.1"):
    """A delivery report to the test database's bounce address."""
    return _build_dsn(returned_raw, failed, status, alias_domain=ALIAS_DOMAIN)


NOTICE_HEADER = "X-Sengerio-Bounce-Notice"


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
