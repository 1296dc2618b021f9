from odoo import models
from odoo.tools.sql import create_index

from .. import policy

# Salespeople with "Own Documents Only" read invoices by their salesperson:
# Odoo keeps no index on it, so their invoices (and the Generated Documents
# of them) were looked up by scanning every journal entry.
INVOICE_USER_INDEX = "account_move__sengerio_invoice_user_id_index"


class AccountMove(models.Model):
    _name = "account.move"
    _inherit = ["account.move", "sengerio.generated.document.mixin"]

    def init(self):
        res = super().init()
        create_index(self._cr, INVOICE_USER_INDEX, self._table, ["invoice_user_id"])
        return res

    def _sengerio_document_type(self, template):
        return policy.account_move_document_type(self.move_type)

    def _sengerio_responsible_user(self):
        return self.invoice_user_id

    def _sengerio_customer(self):
        return self.partner_id
