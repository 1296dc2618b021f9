from odoo import fields, models

from .sengerio_generated_document import DOCUMENT_TYPE_SELECTION


class MailMessage(models.Model):
    _inherit = "mail.message"

    sengerio_document_type = fields.Selection(
        DOCUMENT_TYPE_SELECTION,
        string="Document Type",
        readonly=True,
        help="Set when the message sends a document by email.",
    )
    sengerio_bcc_email = fields.Char(
        "Hidden Copy To",
        readonly=True,
        groups="base.group_user",
        help="The sender's address that receives a hidden copy of this email.",
    )
    sengerio_bcc_partner_id = fields.Many2one(
        "res.partner",
        "Hidden Copy With",
        readonly=True,
        help="The customer whose own email carries the hidden copy.",
    )
    sengerio_bcc_note = fields.Char(
        "Hidden Copy Note",
        readonly=True,
        groups="base.group_user",
        help="Why this document email has no hidden copy to its sender.",
    )
    sengerio_sender_email = fields.Char(
        "Chosen Sender",
        readonly=True,
        help="The sender chosen when the document was sent, copied or not.",
    )
    sengerio_bcc_assigned = fields.Boolean(
        readonly=True,
        groups="base.group_user",
        help="Technical: the hidden copy was given to one outgoing email already.",
    )
