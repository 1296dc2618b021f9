import smtplib
from email import message_from_string
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.sengerio_mailing.tests.common import SengerioMailCommon

SALLY = "sally.sales@agency.example.com"
CARLA = "carla@client.example.com"
CESARE = "cesare@client.example.com"
# what mail_tracking adds to the emails it tracks
TRACKING_HEADER = "X-Odoo-MailTracking-ID"
TRACKING_MARKS = ("/mail/tracking/open/", "data-odoo-tracking-email")


@tagged("post_install", "-at_install", "sengerio_mailing_mail_tracking")
class TestDocumentUntracked(SengerioMailCommon):
    """Beside mail_tracking: document emails untracked, the others tracked."""

    def _trackings(self, records):
        return self.env["mail.tracking.email"].search(
            [("mail_message_id", "in", records.message_ids.ids)]
        )

    def _entry(self, record):
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)]
        )

    def _is_tracked(self, email):
        message = message_from_string(email["message"])
        texts = [
            part.get_payload(decode=True).decode(
                part.get_content_charset() or "utf-8", "replace"
            )
            for part in message.walk()
            if part.get_content_maintype() == "text"
        ]
        marks = [mark for mark in TRACKING_MARKS for text in texts if mark in text]
        return TRACKING_HEADER in message.keys() or bool(marks)

    def assertUntracked(self, emails):
        self.assertTrue(emails, "no email was sent at all")
        for email in emails:
            self.assertFalse(self._is_tracked(email), email["smtp_to_list"])

    def _refusing_everyone(self):
        """The SMTP server refuses every recipient, as smtplib reports it."""

        def send_message(message, smtp_from, smtp_to_list):
            raise smtplib.SMTPRecipientsRefused(
                {email: (550, b"5.1.1 User unknown") for email in smtp_to_list}
            )

        return patch.object(
            self.testing_smtp_session, "send_message", side_effect=send_message
        )

    def _post_chatter_message(self, order):
        """A message to the customer from the chatter: no document."""
        order.with_user(self.user_sales).message_post(
            body="Can we move the tour one day later?",
            partner_ids=self.customer.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )

    def test_quotation_is_untracked(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertUntracked(self.emails)
        self.assertFalse(self._trackings(order))
        self.assertHiddenCopy(SALLY, CARLA)

    def test_booking_confirmation_is_untracked(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order.sudo()._validate_order()
        self.assertUntracked(self.emails)
        self.assertFalse(self._trackings(order))
        self.assertHiddenCopy(SALLY, CARLA)

    def test_mass_mode_quotations_are_untracked(self):
        orders = self._create_order() | self._create_order(partner=self.customer_2)
        template = self.env.ref("sale.email_template_edi_sale")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_mass(orders, template)
        self.assertEqual(len(self.emails), 2)
        self.assertUntracked(self.emails)
        self.assertFalse(self._trackings(orders))
        self.assertHiddenCopy(SALLY, CARLA, total=2)
        self.assertHiddenCopy(SALLY, CESARE, total=2)

    def test_invoice_is_untracked(self):
        invoice = self._create_invoice()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_invoice(invoice)
        self.assertUntracked(self.emails)
        self.assertFalse(self._trackings(invoice))
        self.assertHiddenCopy(SALLY, CARLA)

    def test_chatter_message_keeps_its_tracking(self):
        """mail_tracking keeps tracking what is not a document."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._post_chatter_message(order)
        [email] = self._smtp_emails_to(CARLA)
        self.assertTrue(self._is_tracked(email))
        tracking = self._trackings(order)
        self.assertEqual(tracking.recipient_address, CARLA)
        self.assertEqual(tracking.state, "sent")

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_refused_invoice_fails_and_waits_for_a_resend(self):
        """As without mail_tracking: failed email and entry, Resend works."""
        invoice = self._create_invoice()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with self._refusing_everyone():
                self._send_invoice(invoice)
            entry = self._entry(invoice)
            mail = self.env["mail.mail"].search(
                [("mail_message_id", "=", entry.mail_message_id.id)]
            )
            self.assertEqual(mail.state, "exception")
            self.assertIn("SMTPRecipientsRefused", mail.failure_reason)
            self.assertEqual(entry.state, "exception")
            self.assertEqual(entry.recipient_ids.state, "exception")
            self.assertFalse(mail.sengerio_bcc_sent)
            self.assertFalse(self._trackings(invoice))
            self._resend_from_register(entry)
        self.assertEqual(entry.state, "sent")
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertUntracked(self.emails)

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_refused_chatter_message_is_mail_trackings_error(self):
        """What is not a document keeps mail_tracking's way with failures."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with self._refusing_everyone():
                self._post_chatter_message(order)
        tracking = self._trackings(order)
        self.assertEqual(tracking.state, "error")
        self.assertIn("SMTPRecipientsRefused", tracking.error_description)
