from odoo import models

SYNCED_FIELDS = {"notification_status", "failure_type", "failure_reason"}


class MailNotification(models.Model):
    _inherit = "mail.notification"

    def write(self, vals):
        res = super().write(vals)
        if SYNCED_FIELDS & set(vals):
            self.env["sengerio.generated.document.recipient"].sudo().search(
                [("notification_id", "in", self.ids)]
            )._sync_from_notifications()
        return res
