import smtplib
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import SengerioMailCommon

SALLY = "sally.sales@agency.example.com"


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestRegister(SengerioMailCommon):
    """Generated Documents: one entry per send, kept after auto-delete."""

    def _entry(self, record):
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)]
        )

    def _send_quotation(self, order=None, **composer_values):
        order = order or self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(), self.user_sales, **composer_values
            )
        return order

    def test_entry_survives_auto_delete(self):
        order = self._send_quotation()
        entry = self._entry(order)
        self.assertEqual(len(entry), 1)
        message = entry.mail_message_id
        self.assertFalse(
            self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        )
        self.assertRecordValues(
            entry,
            [
                {
                    "document_type": "quotation",
                    "res_name": order.name,
                    "message_id": message.message_id,
                    "subject": message.subject,
                    "author_id": self.user_sales.partner_id.id,
                    "user_id": self.user_sales.id,
                    "bcc_email": SALLY,
                    "has_bcc": True,
                    "state": "sent",
                    "company_id": order.company_id.id,
                    "failure_reason": False,
                }
            ],
        )
        self.assertEqual(entry.attachment_ids, message.attachment_ids)
        self.assertTrue(entry.attachment_ids)
        self.assertEqual(entry.recipient_ids.partner_id, self.customer)
        self.assertEqual(entry.recipient_ids.state, "sent")
        self.assertEqual(order.sengerio_document_count, 1)
        action = order.action_view_sengerio_documents()
        self.assertEqual(self.env[action["res_model"]].search(action["domain"]), entry)

    def test_mass_mode_is_tracked(self):
        orders = self._create_order() | self._create_order(partner=self.customer_2)
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_mass(orders, self.env.ref("sale.email_template_edi_sale"))
        for order, customer in zip(
            orders, self.customer | self.customer_2, strict=True
        ):
            entry = self._entry(order)
            self.assertEqual(len(entry), 1)
            self.assertEqual(entry.state, "sent")
            self.assertEqual(entry.recipient_ids.partner_id, customer)
            self.assertEqual(entry.bcc_email, SALLY)

    def test_chatter_message_is_not_listed(self):
        order = self._create_order()
        order.with_user(self.user_sales).message_post(
            body="See you tomorrow",
            partner_ids=self.customer.ids,
            message_type="comment",
        )
        self.assertFalse(self._entry(order))

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_smtp_failure_then_retry(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            session = self.testing_smtp_session
            with patch.object(
                session,
                "send_message",
                side_effect=smtplib.SMTPDataError(451, b"4.3.0 try again later"),
            ):
                self._send_with_composer(order.action_quotation_send(), self.user_sales)
            entry = self._entry(order)
            self.assertEqual(entry.state, "exception")
            self.assertIn("The mail server refused the email.", entry.failure_reason)
            self.assertIn("try again later", entry.failure_reason)
            mail = self._new_mails
            mail.action_retry()
            mail.send()
        self.assertEqual(entry.state, "sent")
        self.assertFalse(entry.failure_reason)
        self.assertHiddenCopy(SALLY, "carla@client.example.com")

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_smtp_failure_then_resend_from_register_keeps_the_hidden_copy(self):
        """The server refused the first attempt: the resend carries the copy."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with patch.object(
                self.testing_smtp_session,
                "send_message",
                side_effect=smtplib.SMTPDataError(451, b"4.3.0 try again later"),
            ):
                self._send_with_composer(order.action_quotation_send(), self.user_sales)
            entry = self._entry(order)
            self.assertEqual(entry.state, "exception")
            first = self._new_mails
            action = entry.with_user(self.user_sales).action_resend()
            wizard = (
                self.env["mail.resend.message"]
                .with_user(self.user_sales)
                .with_context(**action["context"])
                .create({})
            )
            wizard.resend_mail_action()
            self.assertEqual(entry.state, "sent")
            self.assertHiddenCopy(SALLY, "carla@client.example.com")
            # retrying the first email as well sends no second hidden copy
            first.action_retry()
            first.send()
        self.assertEqual(len(self._smtp_emails_to(SALLY)), 1)

    def test_invalid_address_then_resend_without_second_copy(self):
        self.customer.email = "carla-at-client.example.com"
        order = self._send_quotation()
        entry = self._entry(order)
        self.assertEqual(entry.state, "exception")
        self.assertIn("The email address is not valid.", entry.failure_reason)
        self.assertEqual(len(self._smtp_emails_to(SALLY)), 0)

        # the user fixes the address and resends from the register
        self.customer.email = "carla@client.example.com"
        action = entry.with_user(self.user_sales).action_resend()
        self.assertEqual(action["res_model"], "mail.resend.message")
        wizard = (
            self.env["mail.resend.message"]
            .with_user(self.user_sales)
            .with_context(**action["context"])
            .create({})
        )
        with self.mock_mail_gateway(mail_unlink_sent=True):
            wizard.resend_mail_action()
        self.assertEqual(entry.state, "sent")
        self.assertEqual(len(self._smtp_emails_to("carla@client.example.com")), 1)
        # no SMTP server took the copy the first time: the resend carries it
        self.assertHiddenCopy(SALLY, "carla@client.example.com")

    def test_worst_recipient_status_wins(self):
        order = self._send_quotation(
            partner_ids=[(6, 0, (self.customer | self.customer_2).ids)]
        )
        entry = self._entry(order)
        self.assertEqual(entry.state, "sent")
        notification = entry.mail_message_id.notification_ids.filtered(
            lambda n: n.res_partner_id == self.customer_2
        )
        notification.write(
            {"notification_status": "exception", "failure_type": "mail_email_invalid"}
        )
        self.assertEqual(entry.state, "exception")
        line = entry.recipient_ids.filtered(lambda r: r.partner_id == self.customer_2)
        self.assertEqual(line.state, "exception")
        self.assertEqual(line.failure_reason, "The email address is not valid.")
        self.assertEqual(
            entry.recipient_ids.filtered(lambda r: r.partner_id == self.customer).state,
            "sent",
        )
        self.assertEqual(entry.bounce_rate, 0)

    def test_deleted_document_keeps_its_entry(self):
        order = self._send_quotation()
        entry = self._entry(order)
        name = order.name
        order = order.sudo()
        order._action_cancel()
        order.unlink()
        entry.invalidate_recordset()
        self.assertTrue(entry.exists())
        self.assertTrue(entry.res_deleted)
        self.assertEqual(entry.res_name, name)
        self.assertEqual(entry.display_name, entry.subject)

    def test_unknown_model_and_missing_attachment_do_not_break(self):
        entry = self.env["sengerio.generated.document"].create(
            {
                "document_type": "other",
                "res_model": "x_sengerio.uninstalled",
                "res_id": 42,
                "res_name": "Old thing",
                "date": fields.Datetime.now(),
            }
        )
        entry.attachment_ids = self.env["ir.attachment"].create(
            {"name": "gone.pdf", "raw": b"%PDF-1.4"}
        )
        entry.attachment_ids.unlink()
        values = entry.read(
            ["res_model_name", "res_deleted", "attachment_ids", "state"]
        )
        self.assertEqual(values[0]["res_model_name"], "x_sengerio.uninstalled")
        self.assertTrue(values[0]["res_deleted"])
        self.assertEqual(values[0]["attachment_ids"], [])
        self.env["sengerio.generated.document"].web_search_read(
            [("id", "=", entry.id)],
            {"res_name": {}, "state": {}, "recipient_names": {}},
        )

    def test_backfill_of_documents_sent_before_install(self):
        order = self._create_order()
        attachment = self.env["ir.attachment"].create(
            {"name": "Quotation.pdf", "raw": b"%PDF-1.4 test"}
        )
        with self.mock_mail_gateway(mail_unlink_sent=True):
            message = order.sudo().message_post(
                author_id=self.user_sales.partner_id.id,
                body="Your quotation",
                partner_ids=self.customer.ids,
                attachment_ids=attachment.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        self.assertFalse(self._entry(order))
        self.assertEqual(self.env["sengerio.generated.document"]._backfill(), 1)
        entry = self._entry(order)
        self.assertEqual(entry.mail_message_id, message)
        self.assertEqual(entry.document_type, "quotation")
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.attachment_ids, attachment)
        # running it again registers nothing twice
        self.assertEqual(self.env["sengerio.generated.document"]._backfill(), 0)

    def test_backfill_of_a_purchase_order_sent_before_install(self):
        purchase = self._create_purchase()
        attachment = self.env["ir.attachment"].create(
            {"name": "Request for Quotation.pdf", "raw": b"%PDF-1.4 test"}
        )
        with self.mock_mail_gateway(mail_unlink_sent=True):
            purchase.sudo().message_post(
                author_id=self.user_buyer.partner_id.id,
                body="Your request for quotation",
                partner_ids=self.vendor.ids,
                attachment_ids=attachment.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        self.assertEqual(self.env["sengerio.generated.document"]._backfill(), 1)
        entry = self._entry(purchase)
        self.assertEqual(entry.document_type, "supplier_document")
        self.assertEqual(entry.state, "sent")

    def test_retention(self):
        order = self._send_quotation()
        entry = self._entry(order)
        entry.date = fields.Datetime.now() - timedelta(days=400)
        Register = self.env["sengerio.generated.document"]
        Register._gc_retention()
        self.assertTrue(entry.exists(), "kept forever by default")
        self.env["ir.config_parameter"].set_param(
            "sengerio_mailing.retention_days", 365
        )
        Register._gc_retention()
        self.assertFalse(entry.exists())
