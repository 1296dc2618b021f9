from unittest.mock import patch

from odoo import fields
from odoo.sql_db import Cursor
from odoo.tests import tagged

from odoo.addons.mail.tests.common import mail_new_test_user

from .common import SengerioMailCommon

# A leaf on a column the counts are not kept by: the register answers.
FROM_REGISTER = [("id", "!=", 0)]


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestRegisterCounts(SengerioMailCommon):
    """The kept counts answer exactly what the register itself would."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_manager = mail_new_test_user(
            cls.env,
            login="sengerio_count_manager",
            groups="base.group_user,sengerio_mailing.sengerio_mailing_group_manager",
            company_ids=[(6, 0, (cls.company_admin | cls.company_2).ids)],
        )
        Register = cls.env["sengerio.generated.document"]
        now = fields.Datetime.now()
        cls.entries = Register
        for index, (model, document_type, company, states) in enumerate(
            [
                ("sale.order", "quotation", cls.company_admin, ["sent"]),
                ("sale.order", "quotation", cls.company_admin, ["sent", "bounced"]),
                ("sale.order", "booking_confirmation", cls.company_admin, ["outgoing"]),
                ("sale.order", "quotation", cls.company_2, ["bounced"]),
                ("account.move", "invoice", cls.company_admin, ["exception"]),
                ("account.move", "credit_note", cls.company_admin, ["sent"]),
                ("purchase.order", "supplier_document", cls.company_admin, ["sent"]),
                ("account.payment", "other", cls.company_admin, ["cancel"]),
            ]
        ):
            cls.entries |= Register.create(
                {
                    "document_type": document_type,
                    "res_model": model,
                    "res_id": index + 1,
                    "date": now,
                    "company_id": company.id,
                    "recipient_ids": [
                        (0, 0, {"email": "r%s@client.example.com" % n, "state": state})
                        for n, state in enumerate(states)
                    ],
                }
            )

    def _check_counts(self, user):
        Register = self.env["sengerio.generated.document"].with_user(user)
        for domain in (
            [],
            [("state", "=", "bounced")],
            [("state", "in", ["exception", "bounced"])],
            [("document_type", "=", "quotation")],
            ["|", ("res_model", "=", "account.move"), ("state", "!=", "sent")],
        ):
            with self.subTest(user=user.login, domain=domain):
                self.assertEqual(
                    Register.search_count(domain),
                    Register.search_count(domain + FROM_REGISTER),
                )
                self.assertEqual(
                    Register.search_count(domain, limit=2),
                    Register.search_count(domain + FROM_REGISTER, limit=2),
                )
                for groupby in (["document_type"], ["state"], ["company_id", "state"]):
                    self.assertEqual(
                        Register._read_group(domain, groupby, ["__count"]),
                        Register._read_group(
                            domain + FROM_REGISTER, groupby, ["__count"]
                        ),
                    )
                self.assertEqual(
                    self._groups(Register, domain),
                    self._groups(Register, domain + FROM_REGISTER),
                )

    def _groups(self, Register, domain):
        """The list grouped by type, the most frequent first, as the UI reads it."""
        return [
            (group["document_type"], group["document_type_count"])
            for group in Register.web_read_group(
                domain,
                ["__count"],
                ["document_type"],
                orderby="__count desc, document_type",
            )["groups"]
        ]

    def _check_all_users(self):
        for user in (self.user_sales, self.user_manager, self.user_admin):
            self._check_counts(user)

    def test_counts_match_the_register(self):
        self.assertEqual(
            self.env["sengerio.generated.document"]
            .with_user(self.user_manager)
            .search_count([("id", "in", self.entries.ids), ("state", "=", "bounced")]),
            2,
        )
        self._check_all_users()

    def test_counts_follow_every_change(self):
        first, second = self.entries[:2]
        # a recipient bounces, another one is resent, one entry changes company
        first.recipient_ids.state = "bounced"
        second.recipient_ids.write({"state": "outgoing"})
        self.entries[2].company_id = self.company_2
        self._check_all_users()
        # entries deleted by the ORM and by SQL (e.g. a cascade)
        self.entries[3].unlink()
        self.env.flush_all()
        self.env.cr.execute(
            "DELETE FROM sengerio_generated_document WHERE id = %s",
            [self.entries[4].id],
        )
        self.env.invalidate_all()
        self._check_all_users()
        # the rows of changes summed up: one row per key, same answers
        Count = self.env["sengerio.generated.document.count"]
        Count._compact()
        keys = Count.search([]).mapped(
            lambda c: (c.company_id, c.res_model, c.document_type, c.state)
        )
        self.assertEqual(len(keys), len(set(keys)))
        self._check_all_users()

    def test_counts_follow_bulk_loads_in_replica_mode(self):
        self.env.flush_all()
        self.env.cr.execute("SET LOCAL session_replication_role = replica")
        self.env.cr.execute(
            """
            INSERT INTO sengerio_generated_document
                (document_type, res_model, res_id, date, company_id, state)
            SELECT 'invoice', 'account.move', n, now(), %s, 'bounced'
            FROM generate_series(1, 5) AS n
            """,
            [self.company_admin.id],
        )
        self.env.cr.execute("SET LOCAL session_replication_role = DEFAULT")
        self.env.invalidate_all()
        self._check_all_users()

    def _register_queries(self, user):
        """The SQL of the Bounced count and the grouped list, as ``user``."""
        Register = self.env["sengerio.generated.document"].with_user(user)
        Register.search_count([])  # rules and the registry warmed up
        queries = []
        execute = Cursor.execute

        def record(cursor, query, params=None, log_exceptions=True):
            queries.append(str(query))
            return execute(cursor, query, params, log_exceptions)

        with patch.object(Cursor, "execute", record):
            Register.search_count([("state", "=", "bounced")])
            Register.web_read_group([], ["__count"], ["document_type"], lazy=True)
        self.assertTrue(queries)
        return [q for q in queries if '"sengerio_generated_document"' in q]

    def test_counts_do_not_read_the_register(self):
        self.assertFalse(
            self._register_queries(self.user_manager),
            "counted from sengerio_generated_document_count only",
        )

    def test_counts_of_documents_a_user_may_read_come_from_the_register(self):
        """The kept counts cannot tell which documents a salesperson may read."""
        self.assertTrue(self._register_queries(self.user_sales))

    def test_other_questions_go_to_the_register(self):
        Register = self.env["sengerio.generated.document"]
        self.assertEqual(
            Register._read_group(
                [("id", "in", self.entries.ids)], ["date:month"], ["__count"]
            )[0][1],
            len(self.entries),
        )
        self.assertEqual(
            Register.search_count(
                [("id", "in", self.entries.ids), ("subject", "=", False)]
            ),
            len(self.entries),
        )
