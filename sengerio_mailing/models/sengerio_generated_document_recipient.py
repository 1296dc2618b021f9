from odoo import api, fields, models

from .. import bounce, policy
from .sengerio_generated_document import STATE_SELECTION

# what _status_values() writes
STATUS_FIELDS = ["state", "failure_type", "failure_reason"]


class SengerioGeneratedDocumentRecipient(models.Model):
    """One recipient of a generated document, with its own delivery status."""

    _name = "sengerio.generated.document.recipient"
    _inherit = ["sengerio.generated.document.part"]
    _description = "Generated Document Recipient"
    _order = "id"
    _rec_name = "email"

    document_id = fields.Many2one(
        "sengerio.generated.document", required=True, ondelete="cascade", index=True
    )
    partner_id = fields.Many2one("res.partner", "Contact", readonly=True)
    email = fields.Char(readonly=True)
    state = fields.Selection(
        STATE_SELECTION, "Status", default="outgoing", readonly=True
    )
    failure_type = fields.Char(readonly=True)
    failure_reason = fields.Text("Reason", readonly=True)
    dsn_status = fields.Char("DSN Status", readonly=True)
    dsn_diagnostic = fields.Text("Diagnostic", readonly=True)
    bounce_reason = fields.Char(
        "Bounce Reason",
        compute="_compute_bounce_reason",
        help="The DSN in plain words.",
    )
    notification_id = fields.Many2one(
        "mail.notification", ondelete="set null", index="btree_not_null", readonly=True
    )
    mail_mail_id = fields.Integer(
        "Email ID",
        index="btree_not_null",
        readonly=True,
        help="Technical: the outgoing email, which Odoo may delete once sent.",
    )

    @api.depends("dsn_status")
    def _compute_bounce_reason(self):
        for line in self:
            line.bounce_reason = (
                self.env._(bounce.reason_words(line.dsn_status))
                if line.state == "bounced"
                else False
            )

    @api.model
    def _values_from_notification(self, notification):
        return {
            "partner_id": notification.res_partner_id.id,
            "email": notification.res_partner_id.email_normalized
            or notification.res_partner_id.email,
            "notification_id": notification.id,
            "mail_mail_id": notification.mail_mail_id.id,
            **self._status_values(
                policy.NOTIFICATION_STATES.get(notification.notification_status),
                notification.failure_type,
                notification.failure_reason,
            ),
        }

    @api.model
    def _values_from_mail(self, mail):
        status = self._status_values(
            policy.MAIL_STATES.get(mail.state), mail.failure_type, mail.failure_reason
        )
        values = [
            {
                "partner_id": partner.id,
                "email": partner.email_normalized or partner.email,
            }
            for partner in mail.recipient_ids
        ]
        values += [
            {"email": email} for email in (mail.email_to or "").split(",") if email
        ]
        for vals in values:
            vals.update(status, mail_mail_id=mail.id)
        return values

    @api.model
    def _status_values(self, state, failure_type=False, failure_reason=False):
        return {
            "state": state or "outgoing",
            "failure_type": failure_type or False,
            "failure_reason": self._plain_failure(state, failure_type, failure_reason),
        }

    @api.model
    def _plain_failure(self, state, failure_type, failure_reason):
        """Say in plain words why an email failed, with Odoo's detail after."""
        if state not in ("exception", "bounced", "cancel"):
            return False
        words = {
            "mail_email_invalid": self.env._("The email address is not valid."),
            "mail_email_missing": self.env._("There is no email address."),
            "mail_smtp": self.env._("The outgoing mail server could not be reached."),
            "mail_from_invalid": self.env._("The sender address is not valid."),
            "mail_from_missing": self.env._("There is no sender address."),
            "mail_bounce": self.env._("The email bounced."),
            "mail_bl": self.env._("The address is on the blacklist."),
            "mail_optout": self.env._("The recipient opted out."),
            "mail_dup": self.env._("The address already received this email."),
            "unknown": self.env._("The mail server refused the email."),
        }.get(failure_type) or (
            self.env._("The email bounced.")
            if state == "bounced"
            else self.env._("The email was not sent.")
        )
        detail = (failure_reason or "").strip()
        return "%s (%s)" % (words, detail) if detail and detail != words else words

    def _sync_from_notifications(self):
        for line in self:
            notif = line.notification_id
            line._write_changed(
                self._status_values(
                    policy.NOTIFICATION_STATES.get(notif.notification_status),
                    notif.failure_type,
                    notif.failure_reason,
                )
            )

    @api.model
    def _sync_from_mails(self, statuses):
        """Update the lines of emails that were just sent or failed.

        :param statuses: ``{mail id: (state, failure type, failure reason)}``;
            lines with a notification follow it, the others (mass mode)
            follow their email.
        """
        lines = self.search_fetch(
            [("mail_mail_id", "in", list(statuses))],
            ["document_id", "notification_id", "mail_mail_id", *STATUS_FIELDS],
        )
        for line in lines:
            if line.notification_id:
                line._sync_from_notifications()
            else:
                state, failure_type, failure_reason = statuses[line.mail_mail_id]
                line._write_changed(
                    self._status_values(
                        policy.MAIL_STATES.get(state), failure_type, failure_reason
                    )
                )

    def _write_changed(self, values):
        """Write only the values that differ, so nothing is recomputed in vain."""
        self.ensure_one()
        changed = {
            name: value
            for name, value in values.items()
            if (self[name] or False) != (value or False)
        }
        if changed:
            self.write(changed)

    def _record_bounce(self, failure):
        """Mark these lines bounced with what the delivery report says."""
        words = self.env._(bounce.reason_words(failure.status))
        detail = " ".join(filter(None, [failure.status, failure.diagnostic]))
        self.write(
            {
                "state": "bounced",
                "failure_type": "mail_bounce",
                "dsn_status": failure.status or False,
                "dsn_diagnostic": failure.diagnostic or False,
                "failure_reason": "%s (%s)" % (words, detail) if detail else words,
            }
        )
