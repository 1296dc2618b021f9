import re
from email import message_from_string

from odoo.tests import tagged

from .common import SengerioMailCommon

TRACKING_MARKS = (
    re.compile(r"/mail/track/"),  # open-tracking pixel
    re.compile(r"https?://[^\s\"'<>]+/r/[A-Za-z0-9]+"),  # shortened links
    re.compile(r"/mail/tracking/open/|data-odoo-tracking-email"),  # mail_tracking
)
TRACKING_HEADERS = (
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
    "X-Odoo-MailTracking-ID",  # mail_tracking
)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestPrivacy(SengerioMailCommon):
    """No document email carries tracking, even with mass_mailing installed."""

    def assertNoTracking(self):
        self.assertTrue(self.emails)
        for email in self.emails:
            message = message_from_string(email["message"])
            for header in TRACKING_HEADERS:
                self.assertNotIn(header, message.keys())
            for part in message.walk():
                if part.get_content_maintype() != "text":
                    continue
                text = part.get_payload(decode=True).decode(
                    part.get_content_charset() or "utf-8", "replace"
                )
                for mark in TRACKING_MARKS:
                    self.assertIsNone(mark.search(text), mark.pattern)

    def test_document_send_has_no_tracking(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        self.assertNoTracking()

    def test_mass_mode_with_mailing_name_has_no_tracking(self):
        """mass_mailing turns a named mass send into a tracked mailing."""
        if "mailing.mailing" not in self.env:
            self.skipTest("mass_mailing is not installed")
        self.user_sales.groups_id += self.env.ref(
            "mass_mailing.group_mass_mailing_user"
        )
        orders = self._create_order() | self._create_order(partner=self.customer_2)
        orders.order_line.name = "See https://www.sengerio.example.com/tour for details"
        template = self.env.ref("sale.email_template_edi_sale")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_mass(orders, template, mass_mailing_name="Spring offers")
        self.assertEqual(len(self.emails), 2)
        self.assertNoTracking()
        mailing = self.env["mailing.mailing"].search([("name", "=", "Spring offers")])
        self.assertFalse(mailing.mailing_trace_ids)
        self.assertHiddenCopy(
            "sally.sales@agency.example.com", "carla@client.example.com", total=2
        )
