"""The real mail chain: Postfix relays, Dovecot holds the mailboxes, Odoo fetches.

Odoo runs with ``--workers`` and a cron worker, its outgoing mail server is a
private Postfix (``dev/mailchain.py``) and every mailbox is read back over
IMAP from a private Dovecot. Documents go out through Odoo's own Send flows;
the failing customers' reports are written by Postfix itself and come back
into Odoo the two ways an admin sets up: an Incoming Mail Server on the
bounce mailbox, fetched by Odoo's fetchmail cron, or Postfix piping the
bounce address into Odoo's ``odoo-mailgate.py``. No test calls
``message_process``.
"""

import time
from email import policy
from email.parser import BytesParser

import databases
import mailchain
import pytest
from conftest import ALIAS_DOMAIN, VAR, db_name, email_of
from harness import ODOO_SRC, OdooServer, RpcError
from mailcheck import AUTHOR_HEADERS, assert_no_tracking, raw_headers
from test_bcc_e2e import (
    create_invoice,
    create_order,
    document_message,
    register_entry,
    send_invoice,
    send_rfq,
    send_with_composer,
)

NOTICE_HEADER = "X-Sengerio-Bounce-Notice"
CUSTOMERS = "@" + mailchain.CUSTOMER_DOMAIN
FETCHMAIL_CRON = "mail.ir_cron_mail_gateway_action"
NOTICE_CRON = "sengerio_mailing.ir_cron_bounce_notices"
PARSER = BytesParser(policy=policy.default)


def parse(raw):
    return PARSER.parsebytes(raw)


# Fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chain():
    """Postfix and Dovecot, stopped at the end with nothing left running."""
    chain = mailchain.MailChain(
        VAR / "mailchain", ALIAS_DOMAIN, delay_warning="5s", queue_lifetime="40s"
    )
    chain.start()
    try:
        yield chain
    finally:
        chain.stop()
    pids, ports = chain.leftovers()
    assert not pids and not ports, "left running: pids %s, ports %s" % (pids, ports)


@pytest.fixture(scope="module")
def chain_odoo(prepared_dbs, chain):
    """Odoo with workers and a cron worker, sending through Postfix.

    Its database is a copy of the ``queued`` template without the queued
    emails; every cron waits a day, except those a test makes due (a write
    of ``nextcall`` wakes the cron worker at once, with
    ``ODOO_NOTIFY_CRON_CHANGES``).
    """
    db = db_name("mailchain")
    databases.copy_db(prepared_dbs.queued, db)
    databases.query(db, "DELETE FROM mail_mail")
    databases.set_smtp_port(db, chain.smtp_port)
    databases.pause_crons(db)
    server = OdooServer(
        db,
        VAR / "mailchain-odoo.log",
        extra_args=["--workers", "2", "--max-cron-threads", "1"],
        env={"ODOO_NOTIFY_CRON_CHANGES": "1"},
    )
    server.start()
    try:
        admin = server.client()
        admin.call("ir.config_parameter", "set_param", "report.url", server.url)
        admin.call("ir.config_parameter", "set_param", "web.base.url", server.url)
        # the agency's own addresses are mailboxes of the chain (a follower's
        # notification to an address Postfix refuses would fail the entry)
        agency = "@" + mailchain.AGENCY_DOMAIN
        admin.call("res.users", "write", [admin.uid], {"email": "admin" + agency})
        company_id = admin.call("res.users", "read", [admin.uid], ["company_id"])[0]
        admin.call(
            "res.company",
            "write",
            [company_id["company_id"][0]],
            {"email": "office" + agency},
        )
        # the Incoming Mail Server an admin creates for the bounce mailbox
        fetchmail_id = admin.call(
            "fetchmail.server",
            "create",
            {
                "name": "Bounces (Dovecot)",
                "server_type": "imap",
                "server": "127.0.0.1",
                "port": chain.imap_port,
                "is_ssl": False,
                "user": chain.bounce_email,
                "password": mailchain.PASSWORD,
            },
        )
        admin.call("fetchmail.server", "button_confirm_login", [fetchmail_id])
        yield server
    finally:
        server.stop()
        databases.drop_db(db)


@pytest.fixture(scope="module")
def chain_admin(chain_odoo):
    return chain_odoo.client()


def new_seller(admin, unique):
    """A salesperson who may send invoices and purchase orders too.

    Created without Odoo's invitation email, so that their mailbox holds
    only what the tests send.
    """
    login = "seller%s" % unique
    groups = [
        "sales_team.group_sale_salesman",
        "account.group_account_invoice",
        "purchase.group_purchase_user",
    ]
    admin.call(
        "res.users",
        "create",
        {
            "name": "Sara Seller %s" % unique,
            "login": login,
            "password": login,
            "email": email_of(login),
            "groups_id": [(6, 0, [admin.ref(g) for g in groups])],
        },
        context={"no_reset_password": True},
    )
    return login


@pytest.fixture
def seller(chain_admin, unique):
    return new_seller(chain_admin, unique)


@pytest.fixture
def chain_product(chain_admin, unique):
    return chain_admin.call(
        "product.product",
        "create",
        {"name": "Tour %s" % unique, "list_price": 120.0, "standard_price": 80.0},
    )


# Helpers ------------------------------------------------------------------


def partner(admin, prefix, unique):
    """A customer of the customer domain; the prefix decides its fate."""
    email = "%s%s%s" % (prefix, unique, CUSTOMERS)
    partner_id = admin.call(
        "res.partner", "create", {"name": "%s %s" % (prefix, unique), "email": email}
    )
    return partner_id, email


def run_cron(admin, xmlid, timeout=120):
    """Make a cron due now and wait until the cron worker has run it."""
    cron_id = admin.ref(xmlid)
    [before] = admin.call("ir.cron", "read", [cron_id], ["lastcall"])
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.call("ir.cron", "write", [cron_id], {"nextcall": now})
            break
        except RpcError:  # running right now: it may not be modified
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    while True:
        [after] = admin.call("ir.cron", "read", [cron_id], ["lastcall"])
        if after["lastcall"] != before["lastcall"]:
            return
        assert time.monotonic() < deadline, "cron %s did not run" % xmlid
        time.sleep(0.5)


def wait_report(chain, email, subject="Undelivered Mail Returned to Sender"):
    """Postfix's report about ``email`` in the bounce mailbox: (uid, raw)."""
    found = chain.wait_messages(
        chain.bounce_email,
        predicate=lambda raw: (
            email.encode() in raw and parse(raw)["Subject"] == subject
        ),
    )
    assert found, "no %r about %s in the bounce mailbox" % (subject, email)
    [(uid, _flags, raw)] = found
    return uid, raw


def fetch_bounces(chain, admin, uid):
    """Odoo's fetchmail cron takes the bounce mailbox; ``uid`` is then seen."""
    run_cron(admin, FETCHMAIL_CRON)
    deadline = time.monotonic() + 60
    while True:
        [flags] = [f for u, f, _raw in chain.messages(chain.bounce_email) if u == uid]
        if "\\Seen" in flags:
            return
        assert time.monotonic() < deadline, "the fetchmail cron did not take it"
        time.sleep(0.5)


def notices(chain, email):
    """The bounce notices in ``email``'s mailbox, parsed."""
    return [
        parse(raw)
        for _uid, _flags, raw in chain.messages(email)
        if parse(raw)[NOTICE_HEADER]
    ]


def wait_notice(chain, email, timeout=60):
    deadline = time.monotonic() + timeout
    while not notices(chain, email) and time.monotonic() < deadline:
        time.sleep(0.5)
    found = notices(chain, email)
    assert found, "no bounce notice reached %s" % email
    return found


def returned_report(notice):
    """The report attached to a bounce notice, parsed."""
    [part] = [
        p for p in notice.iter_attachments() if p.get_content_type() == "message/rfc822"
    ]
    return part.get_payload()[0]


def recipient_line(admin, entry_id):
    [line] = admin.call(
        "sengerio.generated.document.recipient",
        "search_read",
        [("document_id", "=", entry_id)],
        fields=["email", "state", "dsn_status", "failure_reason"],
    )
    return line


def summary(msg):
    """What the customer and the hidden copy must share, part by part."""
    bodies = [
        p.get_content()
        for p in msg.walk()
        if p.get_content_maintype() == "text" and not p.is_attachment()
    ]
    attachments = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    ]
    headers = {h: msg[h] for h in ("Message-Id", "Subject", "From", "To", "Date")}
    return headers, bodies, attachments


def assert_private(raw, sender):
    """No Bcc header, and the sender shows only where they are the author."""
    for name, value in raw_headers(raw):
        assert name not in ("bcc", "x-odoo-bcc"), "a Bcc header was delivered"
        if name not in AUTHOR_HEADERS:
            assert sender not in value.lower(), "%s shows the hidden copy" % name


def assert_delivered_with_one_hidden_copy(chain, customer, sender):
    """Customer's mailbox: the document; sender's: exactly one identical copy."""
    [(_u, _f, raw)] = chain.wait_messages(customer)
    [(_u, _f, copy_raw)] = chain.wait_messages(sender)
    time.sleep(2)  # a late second copy would show up now
    assert len(chain.messages(customer)) == 1
    assert len(chain.messages(sender)) == 1, "more than one copy for the sender"
    mail, copy = parse(raw), parse(copy_raw)
    assert summary(mail) == summary(copy)
    assert mail["To"].addresses[0].addr_spec == customer
    assert_private(raw, sender)
    assert "bcc" not in [name for name, _value in raw_headers(copy_raw)]
    assert_no_tracking([{"raw": raw, "message": mail}])
    return mail


# Documents ----------------------------------------------------------------


def send_quotation(admin, sales, partner_id, product_id):
    order_id = create_order(sales, partner_id, product_id)
    send_with_composer(sales, "sale.order", order_id, "action_quotation_send")
    return "sale.order", order_id


def send_booking_confirmation(admin, sales, partner_id, product_id):
    order_id = create_order(sales, partner_id, product_id)
    sales.call("sale.order", "action_confirm", [order_id], context={"send_email": True})
    return "sale.order", order_id


def send_move(move_type):
    def send(admin, sales, partner_id, product_id):
        move_id = create_invoice(admin, sales.login, partner_id, product_id, move_type)
        send_invoice(sales, move_id)
        return "account.move", move_id

    return send


def send_purchase_order(admin, sales, partner_id, product_id):
    return "purchase.order", send_rfq(sales, partner_id, product_id)


DOCUMENTS = {
    "quotation": send_quotation,
    "booking_confirmation": send_booking_confirmation,
    "invoice": send_move("out_invoice"),
    "credit_note": send_move("out_refund"),
    "supplier_document": send_purchase_order,
}


@pytest.mark.parametrize("document_type", list(DOCUMENTS))
def test_document_reaches_the_customer_with_one_hidden_copy(
    chain, chain_odoo, chain_admin, seller, chain_product, unique, document_type
):
    partner_id, email = partner(chain_admin, "ok", unique)
    sales = chain_odoo.client(seller, seller)
    model, res_id = DOCUMENTS[document_type](
        chain_admin, sales, partner_id, chain_product
    )

    mail = assert_delivered_with_one_hidden_copy(chain, email, email_of(seller))
    if document_type != "booking_confirmation":
        pdfs = [
            p.get_content()
            for p in mail.iter_attachments()
            if p.get_content_type() == "application/pdf"
        ]
        assert pdfs and pdfs[0].startswith(b"%PDF")
    [message] = document_message(chain_admin, model, res_id)
    assert message["sengerio_document_type"] == document_type
    entry = register_entry(chain_admin, model, res_id)
    assert (entry["state"], entry["bcc_email"]) == ("sent", email_of(seller))


# Bounces through the Incoming Mail Server ---------------------------------


@pytest.fixture(scope="module")
def bounced(chain, chain_odoo, chain_admin):
    """A quotation to each failing customer, its report fetched by Odoo.

    ``{prefix: namespace}`` with the customer, the seller, the entry, the
    report's IMAP uid and bytes, and the notices the seller received.
    """
    admin = chain_admin
    cases = {}
    for prefix in ("unknown", "full"):
        unique = "%s%s" % (int(time.time()) % 10**6, prefix)
        seller = new_seller(admin, unique)
        product_id = admin.call("product.product", "create", {"name": "Tour"})
        partner_id, email = partner(admin, prefix, unique)
        sales = chain_odoo.client(seller, seller)
        model, order_id = send_quotation(admin, sales, partner_id, product_id)
        cases[prefix] = {
            "email": email,
            "seller": email_of(seller),
            "order_id": order_id,
        }
    for case in cases.values():
        case["uid"], case["report"] = wait_report(chain, case["email"])
        # the hidden copy went through: the seller holds it already
        [(_u, _f, copy)] = chain.wait_messages(case["seller"])
        case["copy"] = parse(copy)
    fetch_bounces(chain, admin, max(c["uid"] for c in cases.values()))
    run_cron(admin, NOTICE_CRON)
    for case in cases.values():
        case["entry"] = register_entry(
            admin, "sale.order", case["order_id"], state="bounced"
        )
        case["notices"] = wait_notice(chain, case["seller"])
    return cases


@pytest.mark.parametrize(
    "prefix, status, reason",
    [
        ("unknown", "5.1.1", "the address does not exist"),
        ("full", "5.2.2", "the mailbox is full"),
    ],
)
def test_postfix_report_fetched_marks_bounced_and_tells_the_sender(
    chain, chain_admin, bounced, prefix, status, reason
):
    case = bounced[prefix]
    report = parse(case["report"])
    assert report["From"].addresses[0].addr_spec.startswith("MAILER-DAEMON@")
    assert "Reporting-MTA: dns; mx.%s" % ALIAS_DOMAIN in case["report"].decode()

    assert case["entry"]["state"] == "bounced"
    line = recipient_line(chain_admin, case["entry"]["id"])
    assert (line["email"], line["state"], line["dsn_status"]) == (
        case["email"],
        "bounced",
        status,
    )
    assert line["failure_reason"].startswith(reason)

    [notice] = case["notices"]
    assert notice["To"].addresses[0].addr_spec == case["seller"]
    returned = returned_report(notice)
    assert returned["Message-Id"] == report["Message-Id"]
    assert returned["Subject"] == "Undelivered Mail Returned to Sender"
    assert case["email"] in notice.get_body(("html", "plain")).get_content()
    # the report returns the very email the customer was sent
    assert case["copy"]["Message-Id"] in case["report"].decode()
    assert_private(case["report"], case["seller"])


def test_fetching_the_report_again_changes_nothing(chain, chain_admin, bounced):
    case = bounced["unknown"]
    before = recipient_line(chain_admin, case["entry"]["id"])

    def reports():
        """The delivery reports kept for the entry, with what was done."""
        return chain_admin.call(
            "sengerio.bounce.notice",
            "search_read",
            [("document_id", "=", case["entry"]["id"])],
            fields=["state", "told_date"],
        )

    # the cron's next run sees the notice's email sent: the sender is told
    run_cron(chain_admin, NOTICE_CRON)
    kept = reports()
    assert [report["state"] for report in kept] == ["done"]
    chain.mark_unseen(chain.bounce_email, case["uid"])  # as a mail client may
    fetch_bounces(chain, chain_admin, case["uid"])
    run_cron(chain_admin, NOTICE_CRON)
    time.sleep(5)  # a second notice would be sent by now
    assert recipient_line(chain_admin, case["entry"]["id"]) == before
    assert reports() == kept, "the report fetched again is kept once"
    assert len(notices(chain, case["seller"])) == 1


def test_deferred_customer_gets_a_delay_note_then_bounces(
    chain, chain_odoo, chain_admin, seller, chain_product, unique
):
    """Postfix warns of the delay first, and bounces when it gives up."""
    partner_id, email = partner(chain_admin, "deferred", unique)
    sales = chain_odoo.client(seller, seller)
    _model, order_id = send_quotation(chain_admin, sales, partner_id, chain_product)

    uid, warning = wait_report(chain, email, "Delayed Mail (still being retried)")
    assert b"Action: delayed" in warning
    fetch_bounces(chain, chain_admin, uid)
    run_cron(chain_admin, NOTICE_CRON)
    entry = register_entry(chain_admin, "sale.order", order_id)
    assert entry["state"] == "sent"
    notes = chain_admin.call(
        "mail.message",
        "search_read",
        [("model", "=", "sale.order"), ("res_id", "=", order_id)],
        fields=["body"],
    )
    [delay_note] = [n for n in notes if "is delayed" in n["body"]]
    assert email in delay_note["body"]
    assert not notices(chain, email_of(seller)), "a delay is no bounce"

    uid, final = wait_report(chain, email)
    assert b"Action: failed" in final
    fetch_bounces(chain, chain_admin, uid)
    run_cron(chain_admin, NOTICE_CRON)
    entry = register_entry(chain_admin, "sale.order", order_id, state="bounced")
    line = recipient_line(chain_admin, entry["id"])
    # Postfix returns an expired message with the last attempt's status
    assert (line["state"], line["dsn_status"]) == ("bounced", "4.4.1")
    assert line["failure_reason"].startswith(
        "the recipient's server could not be reached"
    )
    [notice] = wait_notice(chain, email_of(seller))
    assert returned_report(notice)["Message-Id"] == parse(final)["Message-Id"]


def test_customer_refused_at_rcpt_is_failed(
    chain, chain_odoo, chain_admin, seller, chain_product, unique
):
    partner_id, email = partner(chain_admin, "refused", unique)
    sales = chain_odoo.client(seller, seller)
    _model, order_id = send_quotation(chain_admin, sales, partner_id, chain_product)

    # the hidden copy was accepted and delivered; the customer's was not
    [(_u, _f, _copy)] = chain.wait_messages(email_of(seller))
    assert not chain.messages(email)
    assert "NOQUEUE: reject: RCPT" in chain.log()
    entry = register_entry(chain_admin, "sale.order", order_id, state="exception")
    assert entry["state"] == "exception"
    line = recipient_line(chain_admin, entry["id"])
    assert (line["email"], line["state"]) == (email, "exception")


# Bounces piped into odoo-mailgate -----------------------------------------


@pytest.fixture(scope="module")
def piped(chain, chain_odoo, chain_admin):
    """Postfix pipes the bounce address into Odoo's own odoo-mailgate.py.

    A quotation to an unknown customer is sent with that route, and the
    bounce notice cron has run: ``{email, seller, order_id, delivery}``,
    with Postfix's log line of the pipe's delivery.
    """
    admin = chain_admin
    chain.route_bounces(
        {
            "script": mailchain.odoo_mailgate_script(ODOO_SRC),
            "port": chain_odoo.port,
            "db": chain_odoo.db,
            "uid": admin.uid,
            "password": admin.password,
        }
    )
    try:
        unique = "%spiped" % (int(time.time()) % 10**6)
        seller = new_seller(admin, unique)
        product_id = admin.call("product.product", "create", {"name": "Tour"})
        partner_id, email = partner(admin, "unknown", unique)
        sales = chain_odoo.client(seller, seller)
        _model, order_id = send_quotation(admin, sales, partner_id, product_id)
        piped = "to=<%s>, relay=odoo-mailgate" % chain.bounce_email
        deadline = time.monotonic() + 60
        while piped not in chain.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        delivery = [line for line in chain.log().splitlines() if piped in line]
        run_cron(admin, NOTICE_CRON)
    finally:
        chain.route_bounces(None)
    return {
        "email": email,
        "seller": email_of(seller),
        "order_id": order_id,
        "delivery": delivery,
    }


def test_report_piped_into_mailgate_marks_bounced(chain, chain_admin, piped):
    [delivery] = piped["delivery"]
    assert "status=sent" in delivery, delivery
    entry = register_entry(chain_admin, "sale.order", piped["order_id"], "bounced")
    line = recipient_line(chain_admin, entry["id"])
    assert (line["state"], line["dsn_status"]) == ("bounced", "5.1.1")
    assert line["failure_reason"].startswith("the address does not exist")
    # the pipe handed the report to Odoo: it never reached the bounce mailbox
    assert not [
        raw
        for _uid, _flags, raw in chain.messages(chain.bounce_email)
        if piped["email"].encode() in raw
    ]


def test_piped_report_reaches_the_sender_in_a_notice(chain, piped):
    [notice] = wait_notice(chain, piped["seller"])
    report = returned_report(notice)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert "Reporting-MTA: dns; mx.%s" % ALIAS_DOMAIN in report.as_string()
