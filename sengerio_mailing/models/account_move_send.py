from odoo import models


class AccountMoveSend(models.AbstractModel):
    _inherit = "account.move.send"

    def _send_mail(self, move, mail_template, **kwargs):
        """Mark the invoice email as a document send (single, batch, cron)."""
        move = move.with_context(
            sengerio_document_send=True, sengerio_template_id=mail_template.id
        )
        return super()._send_mail(move, mail_template, **kwargs)
