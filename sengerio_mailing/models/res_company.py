from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    sengerio_bcc_quotation = fields.Boolean("Hidden copy of quotations", default=True)
    sengerio_bcc_booking_confirmation = fields.Boolean(
        "Hidden copy of booking confirmations", default=True
    )
    sengerio_bcc_invoice = fields.Boolean("Hidden copy of invoices", default=True)
    sengerio_bcc_credit_note = fields.Boolean(
        "Hidden copy of credit notes", default=True
    )
    sengerio_bcc_supplier_document = fields.Boolean(
        "Hidden copy of RFQs and purchase orders", default=True
    )

    def _sengerio_bcc_enabled(self, document_type):
        """Whether this company sends a hidden copy of ``document_type``."""
        self.ensure_one()
        field = "sengerio_bcc_%s" % document_type
        return field in self._fields and self[field]
