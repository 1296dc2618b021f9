from odoo import api, fields, models


class MailScheduledMessage(models.Model):
    _inherit = "mail.scheduled.message"

    sengerio_document_send = fields.Boolean(
        "Sends a Document",
        readonly=True,
        help="Scheduled from a document's Send button: posted as a document "
        "send, with its hidden copy and its Generated Documents entry.",
    )
    sengerio_template_id = fields.Many2one(
        "mail.template", "Document Template", readonly=True, ondelete="set null"
    )

    @api.model_create_multi
    def create(self, vals_list):
        """Remember a document send scheduled with the composer's Send Later."""
        context = self.env.context
        if context.get("sengerio_document_send"):
            for vals in vals_list:
                vals.setdefault("sengerio_document_send", True)
                vals.setdefault(
                    "sengerio_template_id", context.get("sengerio_template_id")
                )
        return super().create(vals_list)

    def _post_message(self, raise_exception=True):
        """Post scheduled document sends as the composer would have."""
        documents = self.filtered("sengerio_document_send")
        for scheduled in documents:
            super(
                MailScheduledMessage,
                scheduled.with_context(
                    sengerio_document_send=True,
                    sengerio_template_id=scheduled.sengerio_template_id.id,
                ),
            )._post_message(raise_exception=raise_exception)
        return super(MailScheduledMessage, self - documents)._post_message(
            raise_exception=raise_exception
        )
