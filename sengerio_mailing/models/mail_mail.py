import logging

from odoo import api, fields, models
from odoo.tools import email_normalize

_logger = logging.getLogger(__name__)

# Fields that make mass_mailing add an open-tracking pixel and shortened links.
TRACKING_FIELDS = ("mailing_id", "mailing_trace_ids")


class MailMail(models.Model):
    _inherit = "mail.mail"

    sengerio_bcc_recipient = fields.Char(
        "Hidden Copy Recipient",
        readonly=True,
        help="Sender address added to the SMTP envelope of this email only.",
    )
    sengerio_bcc_sent = fields.Boolean(
        "Hidden Copy Sent",
        readonly=True,
        help="The SMTP server accepted the hidden copy: retries never resend it.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._sengerio_prepare_create_values(vals)
        mails = super().create(vals_list)
        # composer mass mode: no notification, the email is the whole send
        Register = self.env["sengerio.generated.document"]
        for mail, vals in zip(mails, vals_list, strict=True):
            if vals.get("sengerio_document_type") and not vals.get("mail_message_id"):
                Register._register_message(mail.mail_message_id, mails=mail)
        return mails

    def write(self, vals):
        res = super().write(vals)
        # only mass-mode emails (no notification) feed the register directly
        mass = self.filtered(lambda m: m.message_type == "email_outgoing")
        if "state" in vals and mass:
            lines = (
                self.env["sengerio.generated.document.recipient"]
                .sudo()
                .search(
                    [("mail_mail_id", "in", mass.ids), ("notification_id", "=", False)]
                )
            )
            for mail in mass:
                lines.filtered(
                    lambda line, m=mail: line.mail_mail_id == m.id
                )._sync_from_mail(mail)
        return res

    def _sengerio_prepare_create_values(self, vals):
        """Give the message's hidden copy to its first email; strip tracking.

        A message split into several emails (languages, recipient groups,
        batches, resends) carries its hidden copy on the first one only.
        """
        if vals.get("sengerio_bcc_email"):
            # composer mass mode: one email per message, decided in the values
            vals["sengerio_bcc_recipient"] = vals["sengerio_bcc_email"]
            vals["sengerio_bcc_assigned"] = True
            is_document = True
        elif vals.get("mail_message_id"):
            message = self.env["mail.message"].sudo().browse(vals["mail_message_id"])
            is_document = bool(message.sengerio_document_type)
            if message.sengerio_bcc_email and (
                not message.sengerio_bcc_assigned
                or self._sengerio_take_unsent_bcc(message)
            ):
                vals["sengerio_bcc_recipient"] = message.sengerio_bcc_email
                message.sengerio_bcc_assigned = True
        else:
            is_document = bool(vals.get("sengerio_document_type"))
        if is_document:
            for field in TRACKING_FIELDS:
                vals.pop(field, None)

    def _sengerio_take_unsent_bcc(self, message):
        """Take the hidden copy back from failed emails that never sent it.

        Odoo's resend wizard sends a new email to the failed recipients: it
        carries the hidden copy when the first attempt failed before any SMTP
        server accepted it (e.g. the server was down), never a second one.
        """
        holders = self.sudo().search(
            [
                ("mail_message_id", "=", message.id),
                ("sengerio_bcc_recipient", "!=", False),
            ]
        )
        if not holders or any(
            mail.sengerio_bcc_sent or mail.state not in ("exception", "cancel")
            for mail in holders
        ):
            return False
        holders.sengerio_bcc_recipient = False
        return True

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        """Add the hidden copy to the envelope of the first deliverable email."""
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )
        bcc = self.sengerio_bcc_recipient
        if not bcc or self.sengerio_bcc_sent:
            return emails
        first = next((email for email in emails if email["email_to_normalized"]), None)
        if first is None:
            _logger.warning(
                "mail.mail %s: no deliverable recipient, hidden copy to %s not sent",
                self.id,
                bcc,
            )
            return emails
        # ir.mail_server turns the Bcc header into an envelope recipient and
        # deletes it before the message goes on the wire.
        first["headers"] = dict(first["headers"], Bcc=bcc)
        first["email_to_normalized"] = [*first["email_to_normalized"], bcc]
        return emails

    @api.model
    def _sengerio_mark_bcc_sent(self, message_id, bcc):
        """Record that the SMTP server accepted the hidden copy of an email."""
        mails = self.sudo().search(
            [
                ("message_id", "=", message_id),
                ("sengerio_bcc_recipient", "=", email_normalize(bcc) or bcc),
                ("sengerio_bcc_sent", "=", False),
            ]
        )
        mails.sengerio_bcc_sent = True
        return mails
