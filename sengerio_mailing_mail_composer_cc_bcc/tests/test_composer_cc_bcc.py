from email import message_from_string
from email.utils import getaddresses

from odoo.tests import tagged

from odoo.addons.sengerio_mailing.tests.common import SengerioMailCommon

SALLY = "sally.sales@agency.example.com"
BRUNO = "bruno.buyer@agency.example.com"
CARLA = "carla@client.example.com"
CESARE = "cesare@client.example.com"
CHIARA = "chiara@client.example.com"
VITTORIA = "vittoria@vendor.example.com"


@tagged("post_install", "-at_install", "sengerio_mailing_mail_composer_cc_bcc")
class TestComposerCcBcc(SengerioMailCommon):
    """Beside mail_composer_cc_bcc: the hidden copy on every composer send."""

    def _send_quotation(self, order=None, **composer_values):
        order = order or self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(), self.user_sales, **composer_values
            )
        return order

    def _shown(self, email, header):
        message = message_from_string(email["message"])
        return [a.lower() for _n, a in getaddresses(message.get_all(header, []))]

    def test_quotation_from_the_composer(self):
        self._send_quotation()
        self.assertHiddenCopy(SALLY, CARLA)

    def test_booking_confirmation_from_the_composer(self):
        order = self._create_order()
        order.action_confirm()
        self._send_quotation(order)
        self.assertHiddenCopy(SALLY, CARLA)
        self.assertEqual(
            self._last_document_message(order).sengerio_document_type,
            "booking_confirmation",
        )

    def test_booking_confirmation_portal_signature(self):
        """The confirmation goes through the composer too (a template)."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            order.sudo()._validate_order()
        self.assertHiddenCopy(SALLY, CARLA)

    def test_rfq_from_the_composer(self):
        purchase = self._create_purchase()
        action = purchase.with_user(self.user_buyer).action_rfq_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(action, self.user_buyer)
        self.assertHiddenCopy(BRUNO, VITTORIA)

    def test_two_recipients_one_copy(self):
        self._send_quotation(
            partner_ids=[(6, 0, (self.customer | self.customer_2).ids)]
        )
        self.assertEqual(len(self._smtp_emails_to(CARLA)), 1)
        self.assertEqual(len(self._smtp_emails_to(CESARE)), 1)
        self.assertHiddenCopy(SALLY, CARLA)

    def test_cc_and_bcc_recipients_get_what_the_composer_promises(self):
        """Cc shown to all, Bcc shown to nobody, each in an email of its own."""
        self._send_quotation(
            partner_cc_ids=[(6, 0, self.customer_2.ids)],
            partner_bcc_ids=[(6, 0, self.customer_3.ids)],
        )
        carrier = self.assertHiddenCopy(SALLY, CARLA)
        self.assertEqual(sorted(carrier["smtp_to_list"]), sorted([CARLA, SALLY]))
        [cc_email] = self._smtp_emails_to(CESARE)
        [bcc_email] = self._smtp_emails_to(CHIARA)
        self.assertEqual(cc_email["smtp_to_list"], [CESARE])
        self.assertEqual(bcc_email["smtp_to_list"], [CHIARA])
        self.assertEqual(len(self.emails), 3)
        for email in self.emails:
            self.assertEqual(self._shown(email, "To"), [CARLA])
            self.assertEqual(self._shown(email, "Cc"), [CESARE])
            self.assertNotIn(CHIARA, email["message"].lower())

    def test_sender_in_the_bcc_field_gets_one_copy(self):
        """Notified by email or in Odoo, she never gets two."""
        for notification_type in ("email", "inbox"):
            with self.subTest(notification_type=notification_type):
                self.user_sales.notification_type = notification_type
                self._send_quotation(
                    partner_bcc_ids=[(6, 0, self.user_sales.partner_id.ids)]
                )
                self.assertEqual(len(self._smtp_emails_to(SALLY)), 1)
                self.assertEqual(len(self._smtp_emails_to(CARLA)), 1)
                for email in self.emails:
                    self.assertEqual(self._shown(email, "To"), [CARLA])
                    self.assertNotIn("Bcc", message_from_string(email["message"]))

    def test_invalid_address_fails_then_resend_carries_the_copy(self):
        """mail_composer_cc_bcc fails the whole email (its IndexError on an
        address-less recipient): the entry fails, no copy; Resend once the
        address is fixed reaches the customer, with the one copy."""
        self.customer.email = "carla-at-client.example.com"
        order = self._send_quotation()
        entry = self.env["sengerio.generated.document"].search(
            [("res_model", "=", "sale.order"), ("res_id", "=", order.id)]
        )
        self.assertEqual(entry.state, "exception")
        self.assertFalse(self._smtp_emails_to(SALLY))

        self.customer.email = CARLA
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._resend_from_register(entry)
        self.assertEqual(entry.state, "sent")
        self.assertHiddenCopy(SALLY, CARLA)
