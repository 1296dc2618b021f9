from collections import Counter
from unittest.mock import patch

import psycopg2

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from ..models import sengerio_generated_document as register_module
from .common import SengerioMailCommon

REGISTER = "sengerio.generated.document"
RECIPIENT = "sengerio.generated.document.recipient"
NOTICE = "sengerio.bounce.notice"
# A leaf on a column the counts are not kept by: the register itself answers.
FROM_REGISTER = [("id", "!=", 0)]


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestRegisterAccess(SengerioMailCommon):
    """A user sees an entry exactly when they may read its document.

    Every expectation is computed from what Odoo lets each user read of the
    source documents, then checked against the register's search, counts,
    groups, reads, recipients and files.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company_a, company_b = cls.company_admin, cls.company_2
        both = [(6, 0, (company_a | company_b).ids)]
        user = new_test_user
        env = cls.env
        cls.own_1 = user(env, "sg_own_1", "sales_team.group_sale_salesman")
        cls.own_2 = user(env, "sg_own_2", "sales_team.group_sale_salesman")
        cls.sales_all = user(env, "sg_all", "sales_team.group_sale_salesman_all_leads")
        cls.billing = user(env, "sg_billing", "account.group_account_invoice")
        cls.purchase = user(env, "sg_purchase", "purchase.group_purchase_user")
        cls.plain = user(env, "sg_plain", "base.group_user")
        cls.portal = user(env, "sg_portal", "base.group_portal")
        cls.other_company = user(
            env,
            "sg_company_b",
            "sales_team.group_sale_salesman_all_leads",
            company_id=company_b.id,
            company_ids=[(6, 0, company_b.ids)],
        )
        cls.manager = user(
            env,
            "sg_manager",
            "base.group_user,sengerio_mailing.sengerio_mailing_group_manager",
            company_ids=both,
        )
        cls.users = (
            cls.own_1,
            cls.own_2,
            cls.sales_all,
            cls.billing,
            cls.purchase,
            cls.plain,
            cls.other_company,
            cls.manager,
        )

        def order(salesperson, company=company_a):
            return cls.env["sale.order"].create(
                {
                    "partner_id": cls.customer.id,
                    "user_id": salesperson.id,
                    "company_id": company.id,
                    "order_line": [(0, 0, {"product_id": cls.product.id})],
                }
            )

        def move(move_type, salesperson):
            return cls.env["account.move"].create(
                {
                    "move_type": move_type,
                    "partner_id": cls.customer.id,
                    "invoice_user_id": salesperson.id,
                    "invoice_line_ids": [
                        (0, 0, {"product_id": cls.product.id, "price_unit": 50.0})
                    ],
                }
            )

        journal = cls.env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", company_a.id)], limit=1
        )
        documents = {
            "quotation_own_1": (order(cls.own_1), "quotation"),
            "quotation_own_2": (order(cls.own_2), "quotation"),
            "booking_own_1": (order(cls.own_1), "booking_confirmation"),
            "quotation_company_b": (
                order(cls.other_company, company_b),
                "quotation",
            ),
            "invoice_own_1": (move("out_invoice", cls.own_1), "invoice"),
            "credit_note_own_2": (move("out_refund", cls.own_2), "credit_note"),
            "rfq": (
                cls.env["purchase.order"].create(
                    {
                        "partner_id": cls.vendor.id,
                        "order_line": [
                            (0, 0, {"product_id": cls.product.id, "product_qty": 1})
                        ],
                    }
                ),
                "supplier_document",
            ),
            # a model outside the five document types
            "receipt": (
                cls.env["account.payment"].create(
                    {
                        "payment_type": "inbound",
                        "partner_type": "customer",
                        "partner_id": cls.customer.id,
                        "amount": 30.0,
                        "journal_id": journal.id,
                    }
                ),
                "other",
            ),
            "deleted": (order(cls.own_1), "quotation"),
        }
        Register = cls.env[REGISTER]
        now = fields.Datetime.now()
        cls.entries, cls.notices, cls.reports, cls.pdfs = {}, {}, {}, {}
        for index, (key, (record, document_type)) in enumerate(documents.items()):
            pdf = cls.env["ir.attachment"].create(
                {
                    "name": "%s.pdf" % key,
                    "raw": b"%PDF-1.4 " + key.encode(),
                    "res_model": record._name,
                    "res_id": record.id,
                }
            )
            entry = Register.create(
                {
                    "document_type": document_type,
                    "res_model": record._name,
                    "res_id": record.id,
                    "res_name": record.display_name,
                    "subject": key,
                    "date": now,
                    "company_id": record.company_id.id,
                    "attachment_ids": [(6, 0, pdf.ids)],
                    "recipient_ids": [
                        (
                            0,
                            0,
                            {
                                "email": "carla@client.example.com",
                                "partner_id": cls.customer.id,
                                "state": ("sent", "bounced", "exception")[index % 3],
                            },
                        )
                    ],
                }
            )
            cls.entries[key] = entry
            cls.pdfs[key] = pdf
            # a delivery report about it, kept by its notice
            cls.notices[key] = cls.env[NOTICE].create(
                {
                    "document_id": entry.id,
                    "kind": "failed",
                    "recipients": [["carla@client.example.com", "5.1.1", "gone"]],
                }
            )
            cls.reports[key] = cls.env["ir.attachment"].create(
                {
                    "name": "delivery-report.eml",
                    "raw": b"Subject: Undelivered Mail\r\n\r\n" + key.encode(),
                    "mimetype": "message/rfc822",
                    "res_model": NOTICE,
                    "res_id": cls.notices[key].id,
                }
            )
        deleted = documents["deleted"][0]
        deleted._action_cancel()
        deleted.unlink()

    # What Odoo lets the user read ------------------------------------------

    def _may_read(self, user, model, res_id):
        """Whether Odoo lets ``user`` read that document."""
        Model = self.env[model].with_user(user).with_context(active_test=False)
        return Model.has_access("read") and bool(
            Model.search_count([("id", "=", res_id)])
        )

    def _readable(self, user):
        """Keys of the entries whose document ``user`` may read."""
        companies = self.env(user=user).companies
        return {
            key
            for key, entry in self.entries.items()
            if entry.company_id in companies
            and self._may_read(user, entry.res_model, entry.res_id)
        }

    def _expected(self, user):
        if user == self.manager:
            return set(self.entries)  # every entry of its companies
        return self._readable(user)

    def _mine(self, domain=None):
        return [("id", "in", [e.id for e in self.entries.values()])] + (domain or [])

    def _keys(self, entries):
        by_id = {entry.id: key for key, entry in self.entries.items()}
        return {by_id[entry.id] for entry in entries}

    # The scenario is what it claims to be -----------------------------------

    def test_scenario_covers_every_case(self):
        self.assertEqual(
            self._readable(self.own_1),
            {"quotation_own_1", "booking_own_1", "invoice_own_1"},
            "own documents only: her orders and her invoices",
        )
        self.assertNotIn("quotation_own_1", self._readable(self.own_2))
        self.assertIn("quotation_own_2", self._readable(self.sales_all))
        self.assertIn("receipt", self._readable(self.billing))
        self.assertNotIn("receipt", self._readable(self.own_1))
        self.assertEqual(self._readable(self.purchase), {"rfq"})
        self.assertEqual(self._readable(self.other_company), {"quotation_company_b"})
        for user in self.users:
            self.assertNotIn("deleted", self._readable(user))

    # Entries ---------------------------------------------------------------

    def test_search_and_count(self):
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            expected = self._expected(user)
            with self.subTest(user=user.login):
                self.assertEqual(self._keys(Register.search(self._mine())), expected)
                self.assertEqual(Register.search_count(self._mine()), len(expected))
                bounced = {
                    key
                    for key in expected
                    if self.entries[key].sudo().state == "bounced"
                }
                found = Register.search(self._mine([("state", "=", "bounced")]))
                self.assertEqual(self._keys(found), bounced)

    def test_entries_of_given_documents(self):
        """As a document's *Sent documents* button asks: its model and ids."""
        keys = ("quotation_own_1", "quotation_own_2", "invoice_own_1", "deleted")
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            expected = self._expected(user)
            with self.subTest(user=user.login):
                for model in ("sale.order", "account.move"):
                    named = [
                        key for key in keys if self.entries[key].res_model == model
                    ]
                    domain = [
                        ("res_model", "=", model),
                        ("res_id", "in", [self.entries[k].res_id for k in named]),
                    ]
                    found = Register.search(domain)
                    self.assertEqual(
                        self._keys(found), {key for key in named if key in expected}
                    )
                    self.assertEqual(Register.search_count(domain), len(found))

    def test_counts_without_a_domain(self):
        """The list's own calls, with nothing but the record rules."""
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            with self.subTest(user=user.login):
                found = Register.search([])
                self.assertEqual(Register.search_count([]), len(found))
                self.assertEqual(Register.search_count([], limit=2), min(2, len(found)))
                self.assertEqual(
                    Register.search_count([("state", "=", "bounced")]),
                    len(found.filtered(lambda e: e.state == "bounced")),
                )
                for groupby in ("state", "document_type"):
                    groups = Register.web_read_group([], ["__count"], [groupby])
                    self.assertEqual(
                        {g[groupby]: g["%s_count" % groupby] for g in groups["groups"]},
                        dict(Counter(found.mapped(groupby))),
                    )

    def _setup_cost(self):
        self.env.cr.execute("SHOW parallel_setup_cost")
        return self.env.cr.fetchone()[0]

    def test_statements_of_a_restricted_user_are_planned_for_few_rows(self):
        """Parallel workers are priced higher while the register reads the
        entries of a user who does not see all, and only then."""
        Model = type(self.env[REGISTER])
        original = Model._sengerio_access_condition
        seen = []

        def access_condition(records, domain=()):
            # reading the records found checks them by id: a few rows anyway
            if records._sengerio_domain_ids(domain) is None:
                seen.append(self._setup_cost())
            return original(records, domain)

        before = self._setup_cost()
        self.assertNotEqual(before, register_module.PARALLEL_SETUP_COST)
        calls = {
            "search": lambda R: R.search(FROM_REGISTER),
            "search_count": lambda R: R.search_count(FROM_REGISTER),
            "read_group": lambda R: R._read_group(FROM_REGISTER, ["state"]),
            "web_search_read": lambda R: R.web_search_read(
                FROM_REGISTER, {"subject": {}}
            ),
        }
        with patch.object(Model, "_sengerio_access_condition", access_condition):
            for user, planned in ((self.own_1, True), (self.manager, False)):
                for name, call in calls.items():
                    with self.subTest(user=user.login, call=name):
                        seen.clear()
                        call(self.env[REGISTER].with_user(user))
                        self.assertTrue(seen)
                        expected = (
                            register_module.PARALLEL_SETUP_COST if planned else before
                        )
                        self.assertEqual(set(seen), {expected})
                        self.assertEqual(self._setup_cost(), before)

    def test_planner_setting_restored_after_an_error(self):
        """An error inside leaves the setting as it was, and stays the error."""
        Register = self.env[REGISTER].with_user(self.own_1)
        before = self._setup_cost()
        with self.assertRaises(ValueError):
            with Register._sengerio_planned():
                raise ValueError("not about SQL")
        self.assertEqual(self._setup_cost(), before)
        # an SQL error aborts the transaction: nothing more may run in it
        with self.assertRaises(psycopg2.errors.DivisionByZero):
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                with Register._sengerio_planned():
                    self.env.cr.execute("SELECT 1 / 0")
        self.assertEqual(self._setup_cost(), before)

    def test_groups_by_state_and_type(self):
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            entries = [self.entries[key].sudo() for key in self._expected(user)]
            with self.subTest(user=user.login):
                for groupby in ("state", "document_type"):
                    groups = Register._read_group(self._mine(), [groupby], ["__count"])
                    self.assertEqual(
                        dict(groups), dict(Counter(entry[groupby] for entry in entries))
                    )
                    self.assertEqual(
                        {
                            group[groupby]: group["__count"]
                            for group in Register.read_group(
                                self._mine(), ["__count"], [groupby], lazy=False
                            )
                        },
                        dict(Counter(entry[groupby] for entry in entries)),
                    )

    def test_pivot_and_graph_count_what_the_user_sees(self):
        """Bounce rate by month, as the pivot and graph views ask for it."""
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            entries = [self.entries[key].sudo() for key in self._expected(user)]
            with self.subTest(user=user.login):
                groups = Register.read_group(
                    self._mine(),
                    ["bounce_rate:avg", "__count"],
                    ["date:month", "document_type"],
                    lazy=False,
                )
                self.assertEqual(sum(g["__count"] for g in groups), len(entries))
                bounced = sum(1 for entry in entries if entry.state == "bounced")
                self.assertAlmostEqual(
                    sum(g["bounce_rate"] * g["__count"] for g in groups),
                    100.0 * bounced,
                )

    def test_kept_counts_answer_only_with_the_same_number(self):
        for user in self.users:
            Register = self.env[REGISTER].with_user(user)
            with self.subTest(user=user.login):
                for domain in ([], [("state", "=", "bounced")]):
                    self.assertEqual(
                        Register.search_count(domain),
                        Register.search_count(domain + FROM_REGISTER),
                    )
                    self.assertEqual(
                        Register._read_group(domain, ["document_type"], ["__count"]),
                        Register._read_group(
                            domain + FROM_REGISTER, ["document_type"], ["__count"]
                        ),
                    )

    def test_read(self):
        for user in self.users:
            expected = self._expected(user)
            for key, entry in self.entries.items():
                with self.subTest(user=user.login, entry=key):
                    entry = entry.with_user(user)
                    if key in expected:
                        self.assertEqual(entry.read(["subject"])[0]["subject"], key)
                        self.assertTrue(entry.has_access("read"))
                    else:
                        self.assertFalse(entry.has_access("read"))
                        with self.assertRaises(AccessError):
                            entry.read(["subject"])

    def test_deleted_document_is_for_managers(self):
        entry = self.entries["deleted"]
        self.assertTrue(entry.res_deleted)
        self.assertTrue(entry.with_user(self.manager).has_access("read"))
        for user in (self.own_1, self.sales_all, self.plain):
            self.assertFalse(entry.with_user(user).has_access("read"))

    def test_manager_sees_only_its_companies(self):
        self.manager.company_ids = self.company_admin
        self.manager.company_id = self.company_admin
        Register = self.env[REGISTER].with_user(self.manager)
        self.assertEqual(
            self._keys(Register.search(self._mine())),
            set(self.entries) - {"quotation_company_b"},
        )

    def test_portal_and_public_see_nothing(self):
        public = self.env.ref("base.public_user")
        for user in (self.portal, public):
            for model in (REGISTER, RECIPIENT, NOTICE):
                Model = self.env[model].with_user(user)
                with self.subTest(user=user.login, model=model):
                    for call in (
                        lambda M=Model: M.search([]),
                        lambda M=Model: M.search_count([]),
                        lambda M=Model: M.read_group([], ["__count"], ["create_uid"]),
                    ):
                        with self.assertRaises(AccessError):
                            call()
            with self.assertRaises(AccessError):
                self.entries["quotation_own_1"].with_user(user).read(["subject"])

    def test_users_cannot_edit_entries(self):
        entry = self.entries["quotation_own_1"]
        for user in (self.own_1, self.sales_all):
            with self.assertRaises(AccessError):
                entry.with_user(user).write({"subject": "changed"})

    # Recipients and files --------------------------------------------------

    def test_recipients_follow_their_entry(self):
        lines = self.env[RECIPIENT].search(
            [("document_id", "in", [e.id for e in self.entries.values()])]
        )
        for user in self.users:
            expected = self._expected(user)
            Recipient = self.env[RECIPIENT].with_user(user)
            with self.subTest(user=user.login):
                found = Recipient.search([("id", "in", lines.ids)])
                self.assertEqual(self._keys(found.sudo().document_id), expected)
                self.assertEqual(
                    Recipient.search_count([("id", "in", lines.ids)]), len(expected)
                )
                for line in lines:
                    key = self._keys(line.document_id).pop()
                    self.assertEqual(
                        line.with_user(user).has_access("read"), key in expected
                    )
                    if key not in expected:
                        with self.assertRaises(AccessError):
                            line.with_user(user).read(["email"])

    def test_delivery_reports_follow_their_entry(self):
        notices = self.env[NOTICE].concat(*self.notices.values())
        for user in self.users:
            expected = self._expected(user)
            with self.subTest(user=user.login):
                found = (
                    self.env[NOTICE].with_user(user).search([("id", "in", notices.ids)])
                )
                self.assertEqual(
                    {key for key, notice in self.notices.items() if notice in found},
                    expected,
                )
                for key, notice in self.notices.items():
                    self.assertEqual(
                        notice.with_user(user).has_access("read"), key in expected
                    )
                with self.assertRaises(AccessError):
                    notices.with_user(user).action_retry()

    def test_delivery_report_follows_its_entry(self):
        reports = self.env["ir.attachment"].concat(*self.reports.values())
        for user in self.users:
            expected = self._expected(user)
            Attachment = self.env["ir.attachment"].with_user(user)
            with self.subTest(user=user.login):
                found = Attachment.search([("id", "in", reports.ids)])
                self.assertEqual(
                    {key for key, report in self.reports.items() if report in found},
                    expected,
                )
                for key, report in self.reports.items():
                    if key in expected:
                        self.assertTrue(report.with_user(user).raw)
                    else:
                        with self.assertRaises(AccessError):
                            report.with_user(user).check("read")

    def test_sent_pdf_keeps_the_access_of_its_document(self):
        for user in self.users:
            readable = self._readable(user)
            for key, pdf in self.pdfs.items():
                if key == "deleted":
                    continue  # Odoo deleted it with its document
                with self.subTest(user=user.login, pdf=key):
                    if key in readable:
                        pdf.with_user(user).check("read")
                        self.assertEqual(
                            self.entries[key].with_user(user).attachment_ids, pdf
                        )
                    else:
                        with self.assertRaises(AccessError):
                            pdf.with_user(user).check("read")

    def test_smart_button_counts_what_the_user_sees(self):
        orders = self.env["sale.order"].browse(
            [
                self.entries[key].res_id
                for key in ("quotation_own_1", "booking_own_1", "quotation_own_2")
            ]
        )
        counts = orders.with_user(self.sales_all).mapped("sengerio_document_count")
        self.assertEqual(counts, [1, 1, 1])
        mine = orders[:2].with_user(self.own_1).mapped("sengerio_document_count")
        self.assertEqual(mine, [1, 1])

    # Hidden-copy fields ----------------------------------------------------

    def test_hidden_copy_fields_are_for_internal_users(self):
        order = self.env["sale.order"].browse(self.entries["quotation_own_1"].res_id)
        message = order.message_post(
            body="Your quotation",
            partner_ids=self.portal.partner_id.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )
        message.sudo().write(
            {
                "sengerio_bcc_email": "sg_own_1@example.com",
                "sengerio_bcc_note": "a note",
            }
        )
        as_portal = message.with_user(self.portal)
        self.assertEqual(as_portal.read(["body"])[0]["id"], message.id)
        for field in ("sengerio_bcc_email", "sengerio_bcc_note"):
            with self.subTest(field=field), self.assertRaises(AccessError):
                as_portal.read([field])
        self.assertEqual(
            message.with_user(self.own_1).sengerio_bcc_email, "sg_own_1@example.com"
        )

    # Backfill --------------------------------------------------------------

    def test_backfill_keeps_the_same_rule(self):
        """Past emails of documents a user cannot read stay out of their list."""
        receipt = self.env["account.payment"].browse(self.entries["receipt"].res_id)
        order = self.env["sale.order"].browse(self.entries["quotation_own_2"].res_id)
        posted = self.env["mail.message"]
        with self.mock_mail_gateway(mail_unlink_sent=True):
            for record in (receipt, order):
                attachment = self.env["ir.attachment"].create(
                    {
                        "name": "past.pdf",
                        "raw": b"%PDF-1.4 past",
                        "res_model": record._name,
                        "res_id": record.id,
                    }
                )
                posted |= record.message_post(
                    body="Past document",
                    partner_ids=self.customer.ids,
                    attachment_ids=attachment.ids,
                    message_type="comment",
                    subtype_xmlid="mail.mt_comment",
                )
        self.env[REGISTER]._backfill()
        past = self.env[REGISTER].search([("mail_message_id", "in", posted.ids)])
        self.assertEqual(len(past), 2)
        for user in self.users:
            with self.subTest(user=user.login):
                visible = (
                    self.env[REGISTER].with_user(user).search([("id", "in", past.ids)])
                )
                self.assertEqual(
                    set(visible.sudo().mapped("res_model")),
                    {
                        entry.res_model
                        for entry in past
                        if user == self.manager
                        or self._may_read(user, entry.res_model, entry.res_id)
                    },
                )
