from odoo import models

from .. import policy


class SaleOrder(models.Model):
    _name = "sale.order"
    _inherit = ["sale.order", "sengerio.generated.document.mixin"]

    def _sengerio_document_type(self, template):
        ctx = self.env.context
        return policy.sale_order_document_type(
            self.state,
            proforma=bool(ctx.get("proforma")),
            template_xmlid=self._sengerio_template_xmlid(
                template, policy.SALE_OTHER_TEMPLATES
            ),
            cancel=bool(ctx.get("mark_so_as_canceled")),
        )

    def _sengerio_responsible_user(self):
        return self.user_id

    def _sengerio_customer(self):
        return self.partner_id
