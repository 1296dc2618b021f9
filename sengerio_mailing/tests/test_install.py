from odoo.tests import tagged

from odoo.addons.mail.tests.common import MailCommon


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestInstall(MailCommon):
    def test_document_apps_are_installed(self):
        modules = self.env["ir.module.module"].search(
            [
                (
                    "name",
                    "in",
                    ["sengerio_mailing", "sale_management", "account", "purchase"],
                )
            ]
        )
        self.assertEqual(set(modules.mapped("state")), {"installed"})
        self.assertEqual(len(modules), 4)

    def test_quotation_send_goes_through_the_mail_gateway(self):
        partner = self.env["res.partner"].create(
            {"name": "Customer", "email": "customer@client.example.com"}
        )
        product = self.env["product.product"].create({"name": "Tour", "list_price": 10})
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [(0, 0, {"product_id": product.id})],
            }
        )
        action = order.action_quotation_send()
        composer = (
            self.env["mail.compose.message"]
            .with_context(**action["context"])
            .create({})
        )
        with self.mock_mail_gateway():
            composer.action_send_mail()
        self.assertEqual(order.state, "sent")
        smtp_to = [addr for email in self.emails for addr in email["smtp_to_list"]]
        self.assertIn("customer@client.example.com", smtp_to)
