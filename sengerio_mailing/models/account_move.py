from odoo import models

from .. import policy


class AccountMove(models.Model):
    _inherit = "account.move"

    def _sengerio_document_type(self, template):
        return policy.account_move_document_type(self.move_type)

    def _sengerio_responsible_user(self):
        return self.invoice_user_id
