import smtplib
from datetime import timedelta
from unittest.mock import patch

from odoo import SUPERUSER_ID, fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import SengerioMailCommon

SALLY = "sally.sales@agency.example.com"
BRUNO = "bruno.buyer@agency.example.com"
CARLA = "carla@client.example.com"
CESARE = "cesare@client.example.com"
CHIARA = "chiara@client.example.com"
VITTORIA = "vittoria@vendor.example.com"


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccDocumentTypes(SengerioMailCommon):
    """Each document type, through each send path, with auto-delete on."""

    def assertDocumentSend(self, record, document_type, bcc):
        message = self._last_document_message(record)
        self.assertEqual(message.sengerio_document_type, document_type)
        self.assertEqual(message.sengerio_bcc_email or False, bcc)
        # auto-delete removed the sent mail.mail rows; the decision stays
        self.assertFalse(
            self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        )
        return message

    # quotation ------------------------------------------------------------

    def test_quotation_send_button(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(order, "quotation", SALLY)

    def test_quotation_mass_mode_from_list(self):
        orders = self._create_order() | self._create_order(partner=self.customer_2)
        template = self.env.ref("sale.email_template_edi_sale")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_mass(orders, template)
        self.assertHiddenCopy(SALLY, CARLA, total=2)
        self.assertHiddenCopy(SALLY, CESARE, total=2)
        for order in orders:
            self.assertDocumentSend(order, "quotation", SALLY)

    def test_proforma_is_other_without_copy(self):
        order = self._create_order()
        action = order.with_context(proforma=True).action_quotation_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(action, self.user_sales)
        self.assertNoHiddenCopy()
        self.assertDocumentSend(order, "other", False)

    # booking confirmation -----------------------------------------------

    def test_booking_confirmation_manual_send(self):
        order = self._create_order()
        order.action_confirm()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(order, "booking_confirmation", SALLY)

    def test_booking_confirmation_portal_signature(self):
        """Portal signature and online payment confirm through _validate_order."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order.sudo()._validate_order()
        self.assertEqual(order.state, "sale")
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(order, "booking_confirmation", SALLY)

    def test_booking_confirmation_async_cron(self):
        self.env["ir.config_parameter"].set_param("sale.async_emails", "True")
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order.with_context(send_email=True).action_confirm()
            self.assertFalse(self.emails, "the email waits for the cron")
            self.env["sale.order"].with_user(SUPERUSER_ID)._cron_send_pending_emails(
                auto_commit=False
            )
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(order, "booking_confirmation", SALLY)

    def test_payment_executed_mail_is_other(self):
        order = self._create_order()
        order.action_confirm()
        template = self.env.ref("sale.mail_template_sale_payment_executed")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order._send_order_notification_mail(template)
        self.assertNoHiddenCopy()
        self.assertDocumentSend(order, "other", False)

    # invoices and credit notes ------------------------------------------

    def test_invoice_send_wizard(self):
        invoice = self._create_invoice()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_invoice(invoice)
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(invoice, "invoice", SALLY)

    def test_invoice_and_credit_note_batch_cron(self):
        invoice = self._create_invoice()
        refund = self._create_invoice("out_refund", partner=self.customer_2)
        moves = invoice | refund
        wizard = (
            self.env["account.move.send.batch.wizard"]
            .with_user(self.user_sales)
            .with_context(active_model="account.move", active_ids=moves.ids)
            .create({})
        )
        wizard.action_send_and_print()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self.env["account.move"].with_user(SUPERUSER_ID)._cron_account_move_send()
        self.assertHiddenCopy(SALLY, CARLA, total=2)
        self.assertHiddenCopy(SALLY, CESARE, total=2)
        self.assertDocumentSend(invoice, "invoice", SALLY)
        self.assertDocumentSend(refund, "credit_note", SALLY)

    def test_invoice_automatic_on_payment(self):
        """Invoicing on online payment sends as superuser (sale's _send_invoice)."""
        invoice = self._create_invoice()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self.env["account.move.send"].with_user(
                SUPERUSER_ID
            )._generate_and_send_invoices(invoice, sending_methods=["email"])
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(invoice, "invoice", SALLY)

    def test_credit_note_send_wizard(self):
        refund = self._create_invoice("out_refund")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_invoice(refund)
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertDocumentSend(refund, "credit_note", SALLY)

    def test_receipt_is_other(self):
        receipt = self._create_invoice("out_receipt")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_invoice(receipt)
        self.assertNoHiddenCopy()
        self.assertDocumentSend(receipt, "other", False)

    # supplier documents -------------------------------------------------

    def test_rfq_send(self):
        purchase = self._create_purchase()
        action = purchase.with_user(self.user_buyer).action_rfq_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(action, self.user_buyer)
        self.assertHiddenCopy(BRUNO, VITTORIA)
        self.assertDocumentSend(purchase, "supplier_document", BRUNO)

    def test_purchase_order_send(self):
        purchase = self._create_purchase()
        purchase.button_confirm()
        action = purchase.with_user(self.user_buyer).action_rfq_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(action, self.user_buyer)
        self.assertHiddenCopy(BRUNO, VITTORIA)
        message = self.assertDocumentSend(purchase, "supplier_document", BRUNO)
        self.assertIn(purchase.name, message.subject)

    def test_purchase_reminder_is_other(self):
        self.vendor.receipt_reminder_email = True
        purchase = self._create_purchase()
        purchase.button_confirm()
        purchase.date_planned = fields.Datetime.now() + timedelta(
            days=purchase.reminder_date_before_receipt
        )
        self.env.user.groups_id += self.env.ref("purchase.group_send_reminder")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            purchase._send_reminder_mail()
        self.assertNoHiddenCopy()
        self.assertDocumentSend(purchase, "other", False)

    # not documents ------------------------------------------------------

    def test_chatter_message_is_not_a_document(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order.with_user(self.user_sales).message_post(
                body="Can we move the tour one day later?",
                partner_ids=self.customer.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        self.assertNoHiddenCopy()
        self.assertFalse(self._last_document_message(order))


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccRules(SengerioMailCommon):
    """Who gets the copy, and exactly once."""

    def test_multi_recipient_single_copy(self):
        order = self._create_order()
        action = order.action_quotation_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            composer = self._send_with_composer(
                action,
                self.user_sales,
                partner_ids=[(6, 0, (self.customer | self.customer_2).ids)],
            )
        self.assertEqual(composer.partner_ids, self.customer | self.customer_2)
        self.assertEqual(len(self._smtp_emails_to(CARLA)), 1)
        self.assertEqual(len(self._smtp_emails_to(CESARE)), 1)
        self.assertHiddenCopy(SALLY, CARLA)

    def test_copy_once_across_split_emails(self):
        """Recipients split over several mail.mail rows still give one copy."""
        self.env["ir.config_parameter"].set_param("mail.batch_size", 1)
        order = self._create_order()
        recipients = self.customer | self.customer_2 | self.customer_3
        with self.mock_mail_gateway():
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                partner_ids=[(6, 0, recipients.ids)],
            )
        message = self._last_document_message(order)
        mails = self._new_mails.filtered(lambda m: m.mail_message_id == message)
        self.assertEqual(len(mails), 3)
        self.assertEqual(len(mails.filtered("sengerio_bcc_holder")), 1)
        self.assertHiddenCopy(SALLY, CARLA)

    def test_sender_also_recipient_gets_no_copy(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                partner_ids=[(6, 0, (self.customer | self.user_sales.partner_id).ids)],
            )
        self.assertNoHiddenCopy()
        message = self._last_document_message(order)
        self.assertFalse(message.sengerio_bcc_email)
        self.assertIn(SALLY, message.sengerio_bcc_note)

    def test_switch_off(self):
        self.company.sengerio_bcc_quotation = False
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertNoHiddenCopy()
        message = self._last_document_message(order)
        self.assertEqual(message.sengerio_document_type, "quotation")
        self.assertTrue(message.sengerio_bcc_note)
        # the other switches are untouched
        invoice = self._create_invoice()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_invoice(invoice)
        self.assertHiddenCopy(SALLY, CARLA)

    def test_company_author_falls_back_to_salesperson(self):
        """A send authored by OdooBot (crons) copies the salesperson."""
        order = self._create_order()
        order.message_unsubscribe(partner_ids=self.user_sales.partner_id.ids)
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.env.ref("base.user_root"),
                author_id=self.partner_root.id,
            )
        self.assertHiddenCopy(SALLY, CARLA)

    def test_following_salesperson_gets_no_second_copy(self):
        """The salesperson follows the order: their own email is their copy."""
        order = self._create_order()
        self.assertIn(self.user_sales.partner_id, order.message_partner_ids)
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.env.ref("base.user_root"),
                author_id=self.partner_root.id,
            )
        self.assertEqual(len(self._smtp_emails_to(SALLY)), 1)
        self.assertNoHiddenCopy()
        self.assertIn(
            "already receives", self._last_document_message(order).sengerio_bcc_note
        )

    def test_invalid_sender_email_never_blocks_customer(self):
        self.user_sales.partner_id.email = "sally.sales@@agency"
        order = self._create_order()
        with (
            self.mock_mail_gateway(mail_unlink_sent=True),
            self.assertLogs("odoo.addons.sengerio_mailing", "WARNING") as logs,
        ):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertEqual(len(self._smtp_emails_to(CARLA)), 1)
        self.assertNoHiddenCopy()
        message = self._last_document_message(order)
        self.assertIn("is not valid", message.sengerio_bcc_note)
        self.assertIn("is not valid", logs.output[0])

    def test_no_sender_at_all(self):
        self.user_sales.partner_id.email = False
        order = self._create_order()
        order.user_id = False
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.env.ref("base.user_root"),
                author_id=self.partner_root.id,
            )
        self.assertEqual(len(self._smtp_emails_to(CARLA)), 1)
        self.assertNoHiddenCopy()
        self.assertIn("neither", self._last_document_message(order).sengerio_bcc_note)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccRetry(SengerioMailCommon):
    """SMTP failures and retries never give the sender a second copy."""

    def _flaky_smtp(self, fail_when):
        session = self.testing_smtp_session
        original = session.send_message

        def send_message(message, smtp_from, smtp_to_list):
            if fail_when(smtp_to_list):
                raise smtplib.SMTPDataError(451, b"4.3.0 try again later")
            return original(message, smtp_from, smtp_to_list)

        return patch.object(session, "send_message", side_effect=send_message)

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_smtp_down_then_retry(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with self._flaky_smtp(lambda to: True):
                self._send_with_composer(order.action_quotation_send(), self.user_sales)
            mail = self._new_mails
            self.assertEqual(mail.state, "exception")
            self.assertFalse(mail.sengerio_bcc_sent)
            self.assertFalse(self.emails)
            mail.action_retry()
            mail.send()
        self.assertHiddenCopy(SALLY, CARLA)

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_partial_failure_retry_sends_no_second_copy(self):
        """One email carries Cesare + Chiara: the copy goes with Cesare's,
        Chiara's fails, then the whole email is retried."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with self._flaky_smtp(lambda to: CHIARA in to):
                self._send_with_composer(
                    order.action_quotation_send(),
                    self.user_sales,
                    partner_ids=[(6, 0, (self.customer_2 | self.customer_3).ids)],
                )
            mail = self._new_mails
            self.assertEqual(len(mail), 1)
            self.assertEqual(mail.state, "exception")
            self.assertTrue(mail.sengerio_bcc_sent)
            self.assertEqual(len(self._smtp_emails_to(SALLY)), 1)
            mail.action_retry()
            mail.send()
        self.assertEqual(len(self._smtp_emails_to(CHIARA)), 1)
        self.assertHiddenCopy(SALLY, CESARE)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccTrackingMessages(SengerioMailCommon):
    def test_log_posted_during_a_send_is_not_a_document(self):
        """A send also logs e.g. "RFQ sent" (a note): only the send counts."""
        purchase = self._create_purchase().with_context(
            sengerio_document_send=True,
            sengerio_template_id=self.env.ref(
                "purchase.email_template_edi_purchase"
            ).id,
        )
        with self.mock_mail_gateway(mail_unlink_sent=True):
            note = purchase.message_post(
                body="RFQ sent",
                message_type="notification",
                subtype_xmlid="mail.mt_note",
            )
            send = purchase.message_post(
                body="Your RFQ",
                partner_ids=self.vendor.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        self.assertFalse(note.sengerio_document_type)
        self.assertEqual(send.sengerio_document_type, "supplier_document")
        self.assertHiddenCopy(BRUNO, VITTORIA)
