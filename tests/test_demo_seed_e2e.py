"""The first picture of ``make run``: its demo seeding, on a fresh database.

``dev/seed_demo.py`` sends the demo documents through Odoo's flows to a
real SMTP sink that bounces one customer's domain back through the mail
gateway; this test runs it on a new demo database and checks the register
it leaves and what the sink received.
"""

import re
from collections import Counter

import databases
import pytest
import seed_demo
from conftest import ALIAS_DOMAIN, VAR, db_name
from harness import OdooServer, configure_db, run_odoo
from mailcheck import raw_headers
from playwright.sync_api import expect
from smtp_sink import Bouncer, SmtpSink
from test_browser import (  # noqa: F401 (the chromium fixture)
    TIMEOUT_MS,
    VIEWPORT,
    chromium,
    open_generated_documents,
    screenshot,
)

REGISTER = "sengerio.generated.document"
NOTICE_HEADER = "x-sengerio-bounce-notice"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A new demo database served by Odoo, its sink bouncing one domain."""
    db = db_name("demo_seed")
    log = VAR / "demo_seed.log"
    VAR.mkdir(parents=True, exist_ok=True)
    databases.drop_db(db)
    run_odoo(
        "-d", db, "-i", "sengerio_mailing", "--stop-after-init", "--no-http",
        "--log-level=warn", log_path=log,
    )  # fmt: skip
    bouncer = Bouncer(seed_demo.BOUNCE_DOMAIN, url=None, db=db, delay=0.2)
    try:
        with SmtpSink(tmp_path_factory.mktemp("demo_mail"), bouncer=bouncer) as sink:
            configure_db(db, sink.port, ALIAS_DOMAIN, log)
            server = OdooServer(db, log).start()
            try:
                bouncer.url = server.url
                admin = server.client()
                # wkhtmltopdf fetches the report assets from this very server
                for param in ("report.url", "web.base.url"):
                    admin.call("ir.config_parameter", "set_param", param, server.url)
                yield server, sink
            finally:
                server.stop()
    finally:
        databases.drop_db(db)


def _message_id(raw):
    for name, value in raw_headers(raw):
        if name == "message-id":
            return value.strip()
    return None


@pytest.fixture(scope="module")
def seeded(demo):
    """The demo database once seeded: (server, sink, what was sent)."""
    server, sink = demo
    sent = seed_demo.seed(server.url, server.db)
    assert sent, "a new database is seeded"
    return server, sink, sent


def test_first_run_shows_every_state_and_one_copy_per_email(seeded):
    server, sink, _sent = seeded
    admin = server.client()
    entries = admin.call(
        REGISTER,
        "search_read",
        [],
        fields=["document_type", "state", "bcc_email", "message_id", "user_id"],
    )
    assert Counter(e["document_type"] for e in entries) == {
        "quotation": 4,  # two sent, one bounced, one failed
        "booking_confirmation": 1,
        "invoice": 2,
        "credit_note": 1,
        "supplier_document": 2,  # an RFQ and a purchase order
        "other": 2,  # a pro-forma and a payment receipt
    }
    assert Counter(e["state"] for e in entries) == {
        "sent": 10,
        "bounced": 1,
        "exception": 1,
    }

    demo_user = admin.call(
        "res.users", "search_read", [("login", "=", "demo")], fields=["email"]
    )[0]
    sender = demo_user["email"].lower()
    received = sink.messages()
    by_message_id = {}
    for mail in received:
        by_message_id.setdefault(_message_id(mail["raw"]), []).append(mail)
    for entry in entries:
        mails = by_message_id.get(entry["message_id"], [])
        copies = [m for m in mails if sender in [r.lower() for r in m["rcpt_tos"]]]
        if entry["state"] == "exception":
            assert not mails, "the failed send reached no server"
        elif entry["document_type"] == "other":
            assert mails and not copies, "no hidden copy of other documents"
        else:
            assert entry["bcc_email"] == sender, entry
            assert len(copies) == 1, "one hidden copy per document email"
            assert len(copies[0]["rcpt_tos"]) == 2  # the customer and the sender
        for mail in mails:
            names = {name for name, _value in raw_headers(mail["raw"])}
            assert not names & {"bcc", "x-odoo-bcc"}

    # the bounce went back to the sender's own mailbox, with the report
    notices = [
        m
        for m in received
        if NOTICE_HEADER in {name for name, _v in raw_headers(m["raw"])}
    ]
    assert len(notices) == 1
    assert notices[0]["rcpt_tos"] == [sender]
    assert re.search(rb"(?i)content-type:\s*message/rfc822", notices[0]["raw"])
    assert seed_demo.BOUNCING_CUSTOMER[1].encode() in notices[0]["raw"]

    # a restart of make run sends nothing again
    assert seed_demo.seed(server.url, server.db) is None
    assert len(sink.messages()) == len(received)
    assert admin.call(REGISTER, "search_count", []) == len(entries)


def test_first_run_in_the_browser(seeded, chromium):  # noqa: F811
    """What a newcomer sees: the list with every state, the bounced entry."""
    server, _sink, _sent = seeded
    for login in ("admin", "demo"):
        context = chromium.new_context(
            viewport=VIEWPORT, locale="en-US", timezone_id="Europe/Rome"
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(server.url + "/web/login")
            page.fill("input[name=login]", login)
            page.fill("input[name=password]", login)
            page.click("form button[type=submit]")
            page.wait_for_selector(".o_main_navbar", timeout=4 * TIMEOUT_MS)
            open_generated_documents(page)
            states = page.locator(".o_data_row td[name=state]")
            for label in ("Sent", "Bounced", "Failed"):
                expect(states.filter(has_text=label).first).to_be_visible()
            if login == "admin":
                screenshot(page, "generated_documents_list")
                page.locator(".o_data_row", has_text="Bounced").first.click()
                form = page.locator(".o_form_view")
                expect(form.locator(".ribbon")).to_have_text("Bounced")
                expect(
                    form.locator(".o_field_widget[name=recipient_ids]")
                ).to_contain_text("the address does not exist")
                screenshot(page, "generated_document_form")
        finally:
            page.screenshot(path=VAR / ("demo_seed_%s.png" % login))
            context.close()
