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
        if "notification_status" in vals and "sengerio_bcc_sent" not in vals:
            carriers = self.filtered(
                lambda n: (
                    n.mail_mail_id.sengerio_bcc_sent
                    and n.res_partner_id == n.mail_mail_id.sengerio_bcc_partner_id
                    and not n.sengerio_bcc_sent
                )
            )
            if carriers:
                # the email to this customer carried the copy, which an SMTP
                # server took: a resend of this notification sends no second
                super(MailNotification, carriers).write({"sengerio_bcc_sent": True})
        res = super().write(vals)
        if SYNCED_FIELDS & set(vals) and vals.get("notification_status") != "bounce":
            self.env["sengerio.generated.document.recipient"]._sync_later(
                notification_ids={
                    notif.id: (
                        notif.notification_status,
                        notif.failure_type,
                        notif.failure_reason,
                        notif.mail_mail_id.id,
                    )
                    for notif in self
                }
            )
        return res
