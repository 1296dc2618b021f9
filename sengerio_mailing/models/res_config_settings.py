from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sengerio_bcc_quotation = fields.Boolean(
        related="company_id.sengerio_bcc_quotation", readonly=False
    )
    sengerio_bcc_booking_confirmation = fields.Boolean(
        related="company_id.sengerio_bcc_booking_confirmation", readonly=False
    )
    sengerio_bcc_invoice = fields.Boolean(
        related="company_id.sengerio_bcc_invoice", readonly=False
    )
    sengerio_bcc_credit_note = fields.Boolean(
        related="company_id.sengerio_bcc_credit_note", readonly=False
    )
    sengerio_bcc_supplier_document = fields.Boolean(
        related="company_id.sengerio_bcc_supplier_document", readonly=False
    )
    sengerio_retention_days = fields.Integer(
        "Keep generated documents (days)",
        config_parameter="sengerio_mailing.retention_days",
        help="Entries older than this are deleted every day. 0 keeps them forever.",
    )
