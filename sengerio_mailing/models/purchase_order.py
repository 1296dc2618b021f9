from odoo import models

from .. import policy


class PurchaseOrder(models.Model):
    _name = "purchase.order"
    _inherit = ["purchase.order", "sengerio.generated.document.mixin"]

    def _sengerio_document_type(self, template):
        return policy.purchase_order_document_type(
            self._sengerio_template_xmlid(template, policy.PURCHASE_DOCUMENT_TEMPLATES)
        )

    def _sengerio_past_document_type(self):
        """A past email with the order's PDF sent the RFQ or the order (or,
        rarely, a vendor reminder, which Odoo does not tell apart)."""
        return "supplier_document"

    def _sengerio_responsible_user(self):
        return self.user_id

    def _sengerio_customer(self):
        return self.partner_id
