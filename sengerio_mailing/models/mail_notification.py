from odoo import models

SYNCED_FIELDS = {"notification_status", "failure_type", "failure_reason"}


class MailNotification(models.Model):
    _inherit = "mail.notification"

    def write(self, vals):
        res = super().write(vals)
        # while sending, mail.mail._postprocess_sent_message syncs the outcome;
        # in the mail gateway, the register records the bounce itself
        context = self.env.context
        if context.get("sengerio_in_send") or context.get("sengerio_in_bounce"):
            return res
        if SYNCED_FIELDS & set(vals) or "mail_mail_id" in vals:
            lines = (
                self.env["sengerio.generated.document.recipient"]
                .sudo()
                .search([("notification_id", "in", self.ids)])
            )
            if "mail_mail_id" in vals:
                # a resend: the notification moved to a new email
                lines.write({"mail_mail_id": vals["mail_mail_id"] or False})
            lines._sync_from_notifications()
        return res
