from odoo import models

from .. import policy


class AccountMove(models.Model):
    _name = "account.move"
    _inherit = ["account.move", "sengerio.generated.document.mixin"]

    def _sengerio_document_type(self, template):
        return policy.account_move_document_type(self.move_type)

    def _sengerio_responsible_user(self):
        return self.invoice_user_id

    def _sengerio_customer(self):
        return self.partner_id
