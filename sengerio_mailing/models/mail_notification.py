from odoo import fields, models

# what the register's recipient lines follow
SYNCED_FIELDS = {
    "notification_status",
    "failure_type",
    "failure_reason",
    "mail_mail_id",
}


class MailNotification(models.Model):
    _inherit = "mail.notification"

    sengerio_bcc_sent = fields.Boolean(
        "Hidden Copy Sent",
        readonly=True,
        help="The email to this recipient carried the message's hidden copy, "
        "and an SMTP server took it: a resend sends no second one.",
    )

    def write(self, vals):
        """The register's recipient lines follow their notification.

        A bounce is left to the delivery report, which says more than Odoo's
        "bounced" (see the bounce notice cron).
        """
        res = super().write(vals)
        if SYNCED_FIELDS & set(vals) and vals.get("notification_status") != "bounce":
            self.env["sengerio.generated.document.recipient"]._sync_later(
                notification_ids={
                    notif.id: (
                        notif.notification_status,
                        notif.failure_type,
                        notif.failure_reason,
                        # the email only when it changes (a resend): reading
                        # it would cost a query per email sent
                        vals.get("mail_mail_id") or None,
                    )
                    for notif in self
                }
            )
        return res
