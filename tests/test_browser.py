"""In a real browser: Chromium drives Odoo's web client as people would.

A salesperson sends a quotation from its form, finds it in Generated
Documents, sees it turn Bounced and downloads the PDF that went out; an
Italian salesperson reads the register in Italian; an administrator sees
every kind of document and switches a hidden copy off in Settings.

With ``SENGERIO_SCREENSHOTS=<dir>`` the run also saves the README's
screenshots there (``make screenshots``). The last page of every test is
kept in ``var/e2e/browser/`` to see what went wrong.
"""

import io
import os
import re
import time
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import VAR, Mailbox
from mailcheck import assert_true_bcc, pdf_attachments
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from PyPDF2 import PdfReader
from test_bcc_e2e import (
    create_order,
    received_for,
    register_entry,
    send_with_composer,
)
from test_bounce_e2e import build_dsn, mailgate, run_bounce_cron

CHROMIUM = os.environ.get("SENGERIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
TIMEOUT_MS = 60_000
SCREENSHOTS = os.environ.get("SENGERIO_SCREENSHOTS")
APP_XMLID = "sengerio_mailing.sengerio_generated_document_menu_root"
# A busy machine renders PDFs slowly: wait long for pages and assertions.
expect.set_options(timeout=TIMEOUT_MS)

User = namedtuple("User", "login password name email")


# Fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def login(chromium, odoo, request):
    """``login(user)``: a new browser session logged in through /web/login."""
    contexts = []

    def open_page(user):
        context = chromium.new_context(
            viewport=VIEWPORT, locale="en-US", timezone_id="Europe/Rome"
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(odoo.url + "/web/login")
        page.fill("input[name=login]", user.login)
        page.fill("input[name=password]", user.password)
        page.click("form button[type=submit]")
        # the first page ever also builds the web client's assets
        page.wait_for_selector(".o_main_navbar", timeout=4 * TIMEOUT_MS)
        expect(page.locator(".o_main_navbar .o_user_menu")).to_be_visible()
        return page

    yield open_page
    shots = VAR / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    for n, context in enumerate(contexts):
        for page in context.pages:
            name = "%s-%s" % (request.node.name, n)
            # a test may end on a page that is still loading (Settings
            # reload the web client when saved): keep it once it has loaded
            page.wait_for_load_state()
            page.screenshot(path=shots / (name + ".png"))
            (shots / (name + ".html")).write_text(_page_content(page))
        context.close()


def _page_content(page, attempts=3):
    """The page's HTML, once it stops navigating."""
    for _attempt in range(attempts - 1):
        try:
            return page.content()
        except PlaywrightError:
            page.wait_for_load_state()
    return page.content()


@pytest.fixture(scope="module")
def token():
    return "%s%s" % (int(time.time()) % 10**6, os.getpid() % 100)


def create_user(admin, token, name, groups, lang="en_US"):
    first, last = name.lower().split()
    login = "%s.%s" % (first, token)
    user = User(
        login, "Pw-%s" % login, name, "%s.%s@sengerio-agency.test" % (first, last)
    )
    admin.call(
        "res.users",
        "create",
        {
            "name": name,
            "login": user.login,
            "password": user.password,
            "email": user.email,
            "lang": lang,
            "tz": "Europe/Rome",
            "groups_id": [(6, 0, [admin.ref(g) for g in groups])],
        },
    )
    return user


@pytest.fixture(scope="module")
def italian(admin):
    """Italian added the way an administrator does: Settings > Languages."""
    [lang] = admin.call(
        "res.lang",
        "search_read",
        [("code", "=", "it_IT")],
        fields=["active"],
        context={"active_test": False},
    )
    if not lang["active"]:
        wizard_id = admin.call(
            "base.language.install", "create", {"lang_ids": [(6, 0, [lang["id"]])]}
        )
        admin.call("base.language.install", "lang_install", [wizard_id])
    return lang["id"]


@pytest.fixture(scope="module")
def staff(admin, token, italian):
    """The agency's people, each with no more rights than their job needs."""
    sales = "sales_team.group_sale_salesman"
    return {
        "sales": create_user(admin, token, "Giulia Bianchi", [sales]),
        "accounting": create_user(
            admin, token, "Paolo Conti", ["account.group_account_invoice"]
        ),
        "purchase": create_user(
            admin, token, "Bruno Ferri", ["purchase.group_purchase_user"]
        ),
        # she reads her colleagues' documents: Sales / User: All Documents
        "italian": create_user(
            admin,
            token,
            "Lucia Romano",
            ["sales_team.group_sale_salesman_all_leads"],
            "it_IT",
        ),
        "admin": User("admin", "admin", "Mitchell Admin", None),
    }


def client(odoo, user):
    return odoo.client(user.login, user.password)


def create_partner(admin, name, email):
    return admin.call("res.partner", "create", {"name": name, "email": email})


def create_product(admin, name, price):
    return admin.call(
        "product.product",
        "create",
        {"name": name, "list_price": price, "standard_price": price * 0.7},
    )


def record_name(admin, model, record_id):
    return admin.call(model, "read", [record_id], ["name"])[0]["name"]


class Agency:
    """The staff's ways of sending each kind of document, over JSON-RPC."""

    def __init__(self, odoo, staff):
        self.sales = client(odoo, staff["sales"])
        self.accounting = client(odoo, staff["accounting"])
        self.purchase = client(odoo, staff["purchase"])

    def quotation(self, partner_id, product_id):
        order_id = create_order(self.sales, partner_id, product_id)
        send_with_composer(self.sales, "sale.order", order_id, "action_quotation_send")
        return "sale.order", order_id

    def booking_confirmation(self, partner_id, product_id):
        order_id = create_order(self.sales, partner_id, product_id)
        self.sales.call(
            "sale.order", "action_confirm", [order_id], context={"send_email": True}
        )
        return "sale.order", order_id

    def _move(self, move_type, partner_id, product_id):
        move_id = self.accounting.call(
            "account.move",
            "create",
            {
                "move_type": move_type,
                "partner_id": partner_id,
                "invoice_user_id": self.accounting.uid,
                "invoice_line_ids": [(0, 0, {"product_id": product_id})],
            },
        )
        self.accounting.call("account.move", "action_post", [move_id])
        ctx = {"active_model": "account.move", "active_ids": [move_id]}
        wizard = self.accounting.call(
            "account.move.send.wizard", "create", {}, context=ctx
        )
        self.accounting.call(
            "account.move.send.wizard", "action_send_and_print", [wizard]
        )
        return "account.move", move_id

    def invoice(self, partner_id, product_id):
        return self._move("out_invoice", partner_id, product_id)

    def credit_note(self, partner_id, product_id):
        return self._move("out_refund", partner_id, product_id)

    def supplier_document(self, partner_id, product_id):
        po_id = self.purchase.call(
            "purchase.order",
            "create",
            {
                "partner_id": partner_id,
                "user_id": self.purchase.uid,
                "order_line": [(0, 0, {"product_id": product_id, "product_qty": 2})],
            },
        )
        send_with_composer(
            self.purchase,
            "purchase.order",
            po_id,
            "action_rfq_send",
            {"send_rfq": True},
        )
        return "purchase.order", po_id


# (kind, partner, email, product): one document of every kind, and a
# quotation to an address that does not exist
DOCUMENTS = [
    ("quotation", "Hotel Bellavista", "booking@bellavista.test", "tour"),
    ("booking_confirmation", "Marco Rossi", "marco.rossi@client.test", "trek"),
    ("invoice", "Agenzia Viaggi Sole", "amministrazione@sole.test", "trek"),
    ("credit_note", "Anna Verdi", "anna.verdi@client.test", "tour"),
    ("supplier_document", "Pullman Express", "noleggio@pullman.test", "coach"),
    ("bounced", "Luca Neri", "luca.neri@client.test", "tour"),
]


@pytest.fixture(scope="module")
def documents(odoo, admin, staff, smtp_sink):
    """Documents of every kind, sent the way the staff send them.

    Returns {kind: name of the source document}; kind "bounced" is a
    quotation whose bounce came back through the mail gateway.
    """
    mailbox = Mailbox(smtp_sink)
    agency = Agency(odoo, staff)
    products = {
        "tour": create_product(admin, "Amalfi Coast day tour", 95.0),
        "trek": create_product(admin, "Dolomites trekking weekend", 380.0),
        "coach": create_product(admin, "Coach with driver, 50 seats", 900.0),
        "room": create_product(admin, "Double room, half board", 140.0),
    }
    partners = {}
    names = {}
    for kind, name, email, product in DOCUMENTS:
        if email not in partners:
            partners[email] = create_partner(admin, name, email)
        send = getattr(agency, "quotation" if kind == "bounced" else kind)
        model, record_id = send(partners[email], products[product])
        if kind == "bounced":
            [sent] = mailbox.wait(predicate=lambda m, e=email: e in m["rcpt_tos"])
            mailgate(odoo, admin, build_dsn(sent["raw"], email))
            run_bounce_cron(admin)
        register_entry(
            admin, model, record_id, "bounced" if kind == "bounced" else "sent"
        )
        names.setdefault(kind, record_name(admin, model, record_id))
    return names


# Helpers ------------------------------------------------------------------


def screenshot(page, name):
    """Save a README screenshot when SENGERIO_SCREENSHOTS is set."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    expect(page.locator(".o_loading_indicator")).to_have_count(0)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_function("() => [...document.images].every((img) => img.complete)")
    page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover effects
    page.screenshot(path=folder / ("%s.png" % name))


def open_app(page, xmlid):
    """Open an app from the main menu (the apps grid of the navbar)."""
    page.click(".o_navbar_apps_menu button")
    app = page.locator(".o-dropdown--menu .o_app[data-menu-xmlid='%s']" % xmlid)
    name = app.text_content()
    app.click()
    expect(page.locator(".o_main_navbar .o_menu_brand")).to_have_text(name)


def open_generated_documents(page):
    page.click(".o_navbar_apps_menu button")
    app = page.locator(".o-dropdown--menu .o_app[data-menu-xmlid='%s']" % APP_XMLID)
    expect(app).to_have_text("Generated Documents")
    app.click()
    expect(page.locator(".o_breadcrumb")).to_have_text("Generated Documents")
    expect(page.locator(".o_list_view .o_data_row").first).to_be_visible()


def row_of(page, name):
    """The list row of a source document, by its name."""
    cell = page.locator(
        "td[name=res_name]", has_text=re.compile("^%s$" % re.escape(name))
    )
    return page.locator(".o_data_row", has=cell)


def toggle_filter(page, label):
    page.click(".o_searchview_dropdown_toggler")
    page.locator(".o_filter_menu .o_menu_item", has_text=label).click()
    expect(page.locator(".o_searchview_facet")).to_contain_text(label)
    page.keyboard.press("Escape")


def bcc_credit_note(admin, company_id):
    [company] = admin.call(
        "res.company", "read", [company_id], ["sengerio_bcc_credit_note"]
    )
    return company["sengerio_bcc_credit_note"]


def is_pdf(data):
    """True for a PDF that a reader can open, with at least one page."""
    return data.startswith(b"%PDF-") and len(PdfReader(io.BytesIO(data)).pages) > 0


# Tests --------------------------------------------------------------------


def test_manager_sees_every_kind_of_document(staff, login, documents):
    page = login(staff["admin"])
    open_generated_documents(page)
    for document_type, label in (
        ("quotation", "Quotation"),
        ("booking_confirmation", "Booking Confirmation"),
        ("invoice", "Invoice"),
        ("credit_note", "Credit Note"),
        ("supplier_document", "Supplier Document"),
    ):
        row = row_of(page, documents[document_type])
        expect(row.locator("td[name=document_type]")).to_have_text(label)
        expect(row.locator("td[name=state]")).to_have_text("Sent")
    row = row_of(page, documents["bounced"])
    expect(row.locator("td[name=state]")).to_have_text("Bounced")
    row.click()
    form = page.locator(".o_form_view")
    expect(form.locator(".ribbon")).to_have_text("Bounced")
    expect(form.locator(".o_field_widget[name=recipient_ids]")).to_contain_text(
        "the address does not exist"
    )


def test_salesperson_sends_a_quotation_and_sees_it_bounce(
    odoo, admin, staff, login, mailbox, unique
):
    user = staff["sales"]
    sales = client(odoo, user)
    email = "elena.galli%s@client.test" % unique
    partner_id = create_partner(admin, "Elena Galli", email)
    product_id = create_product(admin, "Venice gondola tour", 80.0)
    order_id = create_order(sales, partner_id, product_id)
    order_name = record_name(sales, "sale.order", order_id)

    # 1. log in, 2. open the quotation and send it by email
    page = login(user)
    open_app(page, "sale.sale_menu_root")
    page.locator(".o_data_row td[name=name]", has_text=order_name).click()
    expect(page.locator(".o_form_view .o_field_widget[name=name]")).to_have_text(
        order_name
    )
    page.locator(
        ".o_form_statusbar button[name=action_quotation_send]",
        has_text="Send by Email",
    ).click()
    # the composer opens with the quotation template and its PDF
    composer = page.locator(".modal")
    expect(composer.locator(".o_field_widget[name=subject] input")).to_have_value(
        re.compile(re.escape(order_name))
    )
    attachments = composer.locator(".modal-body .o_field_widget[name=attachment_ids]")
    expect(attachments).to_contain_text("%s.pdf" % order_name)
    composer.locator(".modal-footer button.o_mail_send").click()
    expect(page.locator(".modal")).to_have_count(0)

    mail = assert_true_bcc(received_for(mailbox, email), email, user.email)
    assert register_entry(admin, "sale.order", order_id)["state"] == "sent"

    # 3. Generated Documents, from the main menu: the quotation is there
    open_generated_documents(page)
    row = row_of(page, order_name)
    expect(row.locator("td[name=document_type]")).to_have_text("Quotation")
    expect(row.locator("td[name=recipient_names]")).to_have_text("Elena Galli")
    expect(row.locator("td[name=state]")).to_have_text("Sent")

    # 4. the customer's server refuses it: the bounce comes back through the
    # mail gateway, and the Bounced filter shows it
    mailgate(odoo, admin, build_dsn(mail["raw"], email))
    run_bounce_cron(admin)
    toggle_filter(page, "Bounced")
    expect(row.locator("td[name=state]")).to_have_text("Bounced")
    states = page.locator(".o_data_row td[name=state]")
    expect(states.filter(has_not_text="Bounced")).to_have_count(0)

    # 5. the entry's form: why it bounced, and the PDF that went out
    row.click()
    form = page.locator(".o_form_view")
    expect(form.locator(".ribbon")).to_have_text("Bounced")
    recipient = form.locator(".o_field_widget[name=recipient_ids] .o_data_row")
    expect(recipient).to_contain_text(email)
    expect(recipient).to_contain_text("the address does not exist")
    form.locator(".o_notebook .nav-link", has_text="Attachments").click()
    link = form.locator(
        ".o_field_widget[name=attachment_ids] .o_attachment a[download]"
    )
    with page.expect_download() as download:
        link.first.click()
    data = Path(download.value.path()).read_bytes()
    assert is_pdf(data)
    assert data == pdf_attachments(mail)[0]


def test_italian_user_reads_the_register_in_italian(staff, login, documents):
    page = login(staff["italian"])
    page.click(".o_navbar_apps_menu button")
    app = page.locator(".o-dropdown--menu .o_app[data-menu-xmlid='%s']" % APP_XMLID)
    expect(app).to_have_text("Documenti generati")
    app.click()
    expect(page.locator(".o_breadcrumb")).to_have_text("Documenti generati")
    for field, label in (
        ("date", "Data"),
        ("document_type", "Tipologia"),
        ("res_name", "Documento"),
        ("author_id", "Mittente"),
        ("state", "Stato"),
        ("failure_reason", "Causa errore"),
    ):
        header = page.locator(".o_list_view thead th[data-name=%s]" % field)
        expect(header).to_have_text(label)
    row = row_of(page, documents["quotation"])
    expect(row.locator("td[name=document_type]")).to_have_text("Preventivo")
    expect(row.locator("td[name=state]")).to_have_text("Inviato")
    expect(row_of(page, documents["bounced"]).locator("td[name=state]")).to_have_text(
        "Rimbalzato"
    )
    toggle_filter(page, "Rimbalzato")
    states = page.locator(".o_data_row td[name=state]")
    expect(states.filter(has_not_text="Rimbalzato")).to_have_count(0)
    expect(row_of(page, documents["bounced"])).to_be_visible()


def test_settings_switch_off_a_hidden_copy(odoo, admin, staff, login):
    [user] = admin.call("res.users", "read", [admin.uid], ["company_id"])
    company_id = user["company_id"][0]
    assert bcc_credit_note(admin, company_id)
    page = login(staff["admin"])
    open_app(page, "base.menu_administration")
    page.click(".settings_tab .tab[data-key=sengerio_mailing]")
    block = page.locator(".app_settings_block[data-key=sengerio_mailing]")
    expect(block).to_contain_text("Hidden copy to the sender")
    switch = block.locator("#sengerio_bcc_credit_note_setting input[type=checkbox]")
    expect(switch).to_be_checked()
    screenshot(page, "settings")
    try:
        switch.uncheck()
        # saving reloads the web client, which shows the switch off
        with page.expect_navigation():
            page.click(".o_control_panel .o_form_button_save")
        assert not bcc_credit_note(admin, company_id)
        page.click(".settings_tab .tab[data-key=sengerio_mailing]")
        expect(switch).not_to_be_checked()
    finally:
        admin.call(
            "res.company", "write", [company_id], {"sengerio_bcc_credit_note": True}
        )
