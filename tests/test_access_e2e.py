"""Generated Documents over HTTP: each user's own session, Odoo's own rules.

A salesperson with *Own Documents Only* sends a quotation that bounces, so
that its entry has a delivery report. Her colleague (also own documents
only) and the portal customer then ask the server what the web client asks,
with their own session cookie: the counts, the grouped list and the report.
"""

import pytest
from conftest import _create_user
from harness import RpcError, WebSession
from test_bcc_e2e import create_order, register_entry, send_with_composer
from test_bounce_e2e import build_dsn, mailgate, run_bounce_cron

REGISTER = "sengerio.generated.document"
OWN_DOCUMENTS = ["sales_team.group_sale_salesman"]


@pytest.fixture
def bounced_quotation(odoo, admin, product_id, mailbox, unique):
    """A quotation of salesperson A, bounced: (A, entry id, report id)."""
    seller = _create_user(admin, unique, "own", "Olga Own", OWN_DOCUMENTS)
    email = "gone%s@client.test" % unique
    partner_id = admin.call(
        "res.partner", "create", {"name": "Gone %s" % unique, "email": email}
    )
    sales = odoo.client(seller, seller)
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")
    [sent] = mailbox.wait(predicate=lambda m: email in m["rcpt_tos"])
    mailgate(odoo, admin, build_dsn(sent["raw"], email))
    run_bounce_cron(admin)
    entry = register_entry(admin, "sale.order", order_id, state="bounced")
    notices = admin.call(
        "sengerio.bounce.notice", "search", [("document_id", "=", entry["id"])]
    )
    reports = admin.call(
        "ir.attachment",
        "search_read",
        [("res_model", "=", "sengerio.bounce.notice"), ("res_id", "in", notices)],
        fields=["mimetype"],
    )
    assert [r["mimetype"] for r in reports] == ["message/rfc822"]
    return seller, partner_id, entry["id"], reports[0]["id"]


def _session(odoo, login):
    return WebSession(odoo.url, odoo.db, login, login)


def _counts(session):
    """What the list shows: its count, the Bounced count, the grouped list."""
    grouped = session.call_kw(
        REGISTER, "web_read_group", [[], ["__count"], ["state"]], {"lazy": True}
    )
    return (
        session.call_kw(REGISTER, "search_count", [[]]),
        session.call_kw(REGISTER, "search_count", [[("state", "=", "bounced")]]),
        {g["state"]: g["state_count"] for g in grouped["groups"]},
    )


def test_own_documents_salesperson_sees_only_hers(
    odoo, admin, bounced_quotation, unique
):
    seller, _partner_id, entry_id, report_id = bounced_quotation
    colleague = _create_user(admin, unique, "colleague", "Oscar", OWN_DOCUMENTS)

    mine = _session(odoo, seller)
    ids = mine.call_kw(REGISTER, "search", [[]])
    assert entry_id in ids
    total, bounced, groups = _counts(mine)
    assert total == len(ids) and bounced >= 1 and sum(groups.values()) == total
    report = mine.get("/web/content/%s?download=true" % report_id)
    assert report.status_code == 200
    assert b"Undelivered Mail Returned to Sender" in report.content

    theirs = _session(odoo, colleague)
    assert theirs.call_kw(REGISTER, "search", [[("id", "=", entry_id)]]) == []
    total, bounced, groups = _counts(theirs)
    assert (total, bounced, groups) == (0, 0, {}), "the colleague sent nothing"
    with pytest.raises(RpcError) as denied:
        theirs.call_kw(REGISTER, "read", [[entry_id], ["subject"]])
    assert denied.value.name == "odoo.exceptions.AccessError"
    report = theirs.get("/web/content/%s?download=true" % report_id)
    assert report.status_code in (403, 404)
    assert b"Undelivered Mail Returned to Sender" not in report.content


def test_portal_customer_sees_nothing(odoo, admin, bounced_quotation, unique):
    _seller, partner_id, entry_id, report_id = bounced_quotation
    login = "portal%s" % unique
    admin.call(
        "res.users",
        "create",
        {
            "name": "Portal %s" % unique,
            "login": login,
            "password": login,
            "partner_id": partner_id,
            "groups_id": [(6, 0, [admin.ref("base.group_portal")])],
        },
    )
    portal = _session(odoo, login)
    for method, args in (
        ("search_count", [[]]),
        ("search_count", [[("state", "=", "bounced")]]),
        ("web_read_group", [[], ["__count"], ["state"]]),
        ("read", [[entry_id], ["subject"]]),
    ):
        with pytest.raises(RpcError) as denied:
            portal.call_kw(REGISTER, method, args)
        assert denied.value.name == "odoo.exceptions.AccessError", method
    report = portal.get("/web/content/%s?download=true" % report_id)
    assert report.status_code in (403, 404)
    assert b"Undelivered Mail Returned to Sender" not in report.content
