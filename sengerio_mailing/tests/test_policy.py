from odoo.tests import BaseCase, tagged

from odoo.addons.sengerio_mailing import policy
from odoo.addons.sengerio_mailing.policy import Sender

PERSON = Sender("Sally", "sally@agency.example.com", True)
COMPANY = Sender("Agency", "info@agency.example.com", False)
RESPONSIBLE = Sender("Rita", "rita@agency.example.com", True)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestPolicy(BaseCase):
    def test_sale_order_types(self):
        self.assertEqual(policy.sale_order_document_type("draft"), "quotation")
        self.assertEqual(policy.sale_order_document_type("sent"), "quotation")
        self.assertEqual(
            policy.sale_order_document_type("sale"), "booking_confirmation"
        )
        self.assertEqual(policy.sale_order_document_type("cancel"), "other")
        self.assertEqual(
            policy.sale_order_document_type("draft", proforma=True), "other"
        )
        self.assertEqual(
            policy.sale_order_document_type(
                "sale", template_xmlid="sale.mail_template_sale_payment_executed"
            ),
            "other",
        )
        self.assertEqual(policy.sale_order_document_type("sale", cancel=True), "other")

    def test_account_move_types(self):
        self.assertEqual(policy.account_move_document_type("out_invoice"), "invoice")
        self.assertEqual(policy.account_move_document_type("out_refund"), "credit_note")
        for move_type in ("out_receipt", "in_invoice", "in_refund", "entry"):
            self.assertEqual(policy.account_move_document_type(move_type), "other")

    def test_purchase_types(self):
        for xmlid in policy.PURCHASE_DOCUMENT_TEMPLATES:
            self.assertEqual(
                policy.purchase_order_document_type(xmlid), "supplier_document"
            )
        self.assertEqual(
            policy.purchase_order_document_type(
                "purchase.email_template_edi_purchase_reminder"
            ),
            "other",
        )
        self.assertEqual(policy.purchase_order_document_type(None), "other")

    def test_author_person_wins(self):
        self.assertEqual(
            policy.choose_bcc_recipient(PERSON, RESPONSIBLE, []),
            (PERSON, "sally@agency.example.com", None),
        )

    def test_company_author_falls_back_to_responsible(self):
        self.assertEqual(
            policy.choose_bcc_recipient(COMPANY, RESPONSIBLE, [])[1],
            "rita@agency.example.com",
        )

    def test_author_without_email_falls_back(self):
        author = Sender("Sally", False, True)
        self.assertEqual(
            policy.choose_bcc_recipient(author, RESPONSIBLE, [])[1],
            "rita@agency.example.com",
        )

    def test_nobody(self):
        self.assertEqual(
            policy.choose_bcc_recipient(COMPANY, None, []),
            (None, None, policy.NO_BCC_SENDER),
        )

    def test_invalid_email(self):
        author = Sender("Sally", "sally@@agency", True)
        self.assertEqual(
            policy.choose_bcc_recipient(author, RESPONSIBLE, []),
            (author, None, policy.NO_BCC_INVALID_EMAIL),
        )

    def test_visible_recipient(self):
        self.assertEqual(
            policy.choose_bcc_recipient(PERSON, None, ["Sally@Agency.example.com"])[2],
            policy.NO_BCC_VISIBLE,
        )
