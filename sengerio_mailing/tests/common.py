from email import message_from_string
from email.utils import getaddresses

from odoo.addons.mail.tests.common import MailCommon, mail_new_test_user

# Headers that identify the author; the hidden copy's address (the author's
# own) may appear there and nowhere else.
AUTHOR_HEADERS = ("From", "Sender", "Reply-To")


class SengerioMailCommon(MailCommon):
    """Document users, partners and products, plus hidden-copy assertions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the bounce notice cron starts from an empty queue
        cls.env["sengerio.bounce.notice"].search([]).unlink()
        cls.company = cls.company_admin
        cls.user_sales = mail_new_test_user(
            cls.env,
            login="sengerio_sales",
            name="Sally Sales",
            email="sally.sales@agency.example.com",
            groups="sales_team.group_sale_salesman,account.group_account_invoice",
            company_id=cls.company.id,
            notification_type="email",
        )
        cls.user_buyer = mail_new_test_user(
            cls.env,
            login="sengerio_buyer",
            name="Bruno Buyer",
            email="bruno.buyer@agency.example.com",
            groups="purchase.group_purchase_user",
            company_id=cls.company.id,
            notification_type="email",
        )
        cls.customer = cls.env["res.partner"].create(
            {"name": "Carla Customer", "email": "carla@client.example.com"}
        )
        cls.customer_2 = cls.env["res.partner"].create(
            {"name": "Cesare Customer", "email": "cesare@client.example.com"}
        )
        cls.customer_3 = cls.env["res.partner"].create(
            {"name": "Chiara Customer", "email": "chiara@client.example.com"}
        )
        cls.vendor = cls.env["res.partner"].create(
            {"name": "Vittoria Vendor", "email": "vittoria@vendor.example.com"}
        )
        cls.product = cls.env["product.product"].create(
            {
                "name": "Dolomites Tour",
                "list_price": 100.0,
                "standard_price": 60.0,
                "invoice_policy": "order",
            }
        )

    # Documents ----------------------------------------------------------

    def _create_order(self, user=None, partner=None):
        user = user or self.user_sales
        return (
            self.env["sale.order"]
            .with_user(user)
            .create(
                {
                    "partner_id": (partner or self.customer).id,
                    "user_id": user.id,
                    "order_line": [(0, 0, {"product_id": self.product.id})],
                }
            )
        )

    def _create_invoice(self, move_type="out_invoice", user=None, partner=None):
        user = user or self.user_sales
        move = self.env["account.move"].create(
            {
                "move_type": move_type,
                "partner_id": (partner or self.customer).id,
                "invoice_user_id": user.id,
                "invoice_line_ids": [
                    (0, 0, {"product_id": self.product.id, "price_unit": 100.0})
                ],
            }
        )
        move.action_post()
        return move

    def _create_purchase(self, user=None):
        user = user or self.user_buyer
        return (
            self.env["purchase.order"]
            .with_user(user)
            .create(
                {
                    "partner_id": self.vendor.id,
                    "user_id": user.id,
                    "order_line": [
                        (0, 0, {"product_id": self.product.id, "product_qty": 1})
                    ],
                }
            )
        )

    def _send_with_composer(self, action, user, **values):
        """What the Send button does: composer from the action, then Send."""
        composer = (
            self.env["mail.compose.message"]
            .with_user(user)
            .with_context(**action["context"])
            .create(values)
        )
        composer.action_send_mail()
        return composer

    def _send_mass(self, records, template, user=None, **values):
        """Send from the list: the composer in mass mode, one email per record."""
        composer = (
            self.env["mail.compose.message"]
            .with_user(user or self.user_sales)
            .with_context(
                default_composition_mode="mass_mail",
                default_model=records._name,
                default_res_ids=records.ids,
                default_template_id=template.id,
            )
            .create(values)
        )
        composer.action_send_mail()
        return composer

    def _gateway(self, raw):
        """A message through Odoo's mail gateway, then the bounce notice cron."""
        with self.mock_mail_gateway():
            res = self.env["mail.thread"].message_process(None, raw)
            self.env["sengerio.bounce.notice"]._cron_send_notices()
        return res

    def _send_invoice(self, move, user=None):
        wizard = (
            self.env["account.move.send.wizard"]
            .with_user(user or self.user_sales)
            .with_context(active_model="account.move", active_ids=move.ids)
            .create({})
        )
        wizard.action_send_and_print()

    def _resend_from_register(self, entry, user=None):
        """Resend in Generated Documents, through Odoo's resend wizard."""
        user = user or self.user_sales
        action = entry.with_user(user).action_resend()
        wizard = (
            self.env["mail.resend.message"]
            .with_user(user)
            .with_context(**action["context"])
            .create({})
        )
        wizard.resend_mail_action()

    def _last_document_message(self, record):
        return record.message_ids.filtered("sengerio_document_type")[:1]

    # Assertions ---------------------------------------------------------

    def _smtp_emails_to(self, address):
        return [e for e in self.emails if address in e["smtp_to_list"]]

    def assertHiddenCopy(self, bcc, customer_email, total=1):
        """``bcc`` got one copy: the customer's very SMTP message.

        ``total`` is how many copies ``bcc`` got in all (one per send).
        """
        self.assertEqual(len(self._smtp_emails_to(bcc)), total)
        carriers = [
            e for e in self._smtp_emails_to(bcc) if customer_email in e["smtp_to_list"]
        ]
        self.assertEqual(len(carriers), 1, "expected exactly one hidden copy")
        carrier = carriers[0]
        self.assertIn(customer_email, carrier["smtp_to_list"])
        message = message_from_string(carrier["message"])
        for header, value in message.items():
            if header not in AUTHOR_HEADERS:
                self.assertNotIn(bcc, str(value).lower(), "%s shows the copy" % header)
        to = [a.lower() for _n, a in getaddresses(message.get_all("To", []))]
        if self._composer_cc_bcc_installed():
            # OCA's mail_composer_cc_bcc shows every recipient in To
            self.assertIn(customer_email, to)
        else:
            self.assertEqual(to, [customer_email])
        self.assertNotIn("Bcc", message.keys())
        self.assertNotIn("X-Odoo-Bcc", message.keys())
        return carrier

    def _composer_cc_bcc_installed(self):
        module = self.env["ir.module.module"]._get("mail_composer_cc_bcc")
        return module.state == "installed"

    def assertNoHiddenCopy(self):
        """No SMTP email has an envelope recipient missing from its headers."""
        self.assertTrue(self.emails, "no email was sent at all")
        for email in self.emails:
            message = message_from_string(email["message"])
            shown = {
                a.lower()
                for header in ("To", "Cc")
                for _n, a in getaddresses(message.get_all(header, []))
            }
            self.assertLessEqual(set(email["smtp_to_list"]), shown)


def build_dsn(
    returned,
    failed,
    to,
    status="5.1.1",
    diagnostic=None,
    original_recipient=None,
    report_id="<dsn-1@mx.client.example.com>",
    extra_headers="",
    linesep="\n",
):
    """An RFC 3464 report as Postfix writes it, returning ``returned``.

    :param returned: the returned email's text (its headers at least)
    :param failed: Final-Recipient
    :param to: where the report is delivered (To and Delivered-To)
    :param original_recipient: Original-Recipient, if any
    """
    diagnostic = diagnostic or "smtp; 550 %s <%s>: no such user" % (status, failed)
    original = (
        "Original-Recipient: rfc822;%s\n" % original_recipient
        if original_recipient
        else ""
    )
    text = (
        "Delivered-To: %(to)s\n"
        "From: MAILER-DAEMON@mx.client.example.com (Mail Delivery System)\n"
        "To: %(to)s\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "Message-Id: %(report_id)s\n"
        "%(extra)s"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        ' boundary="sengerio-test-boundary"\n'
        "\n--sengerio-test-boundary\nContent-Type: text/plain\n\n"
        "Delivery failed.\n"
        "\n--sengerio-test-boundary\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.client.example.com\n\n"
        "Final-Recipient: rfc822; %(failed)s\n%(original)s"
        "Action: failed\nStatus: %(status)s\nDiagnostic-Code: %(diagnostic)s\n"
        "\n--sengerio-test-boundary\nContent-Type: message/rfc822\n\n"
        "%(returned)s\n--sengerio-test-boundary--\n"
    ) % {
        "to": to,
        "report_id": report_id,
        "extra": extra_headers,
        "failed": failed,
        "original": original,
        "status": status,
        "diagnostic": diagnostic,
        "returned": returned.replace("\r\n", "\n").rstrip("\n"),
    }
    return text.replace("\n", linesep).encode()
