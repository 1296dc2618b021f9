from odoo import models


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    def send_email(self, message, *args, **kwargs):
        """Remember a hidden copy as sent once the SMTP server accepted it."""
        # read before super(): the Bcc header is removed from the message there
        bcc = message["Bcc"]
        message_id = message["Message-Id"]
        res = super().send_email(message, *args, **kwargs)
        if bcc and message_id:
            self.env["mail.mail"]._sengerio_mark_bcc_sent(message_id, bcc)
        return res
