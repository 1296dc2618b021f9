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
        # only mass-mode emails (no notification) feed the register directly;
        # while sending, _postprocess_sent_message syncs them once at the end
        if "state" in vals and not self.env.context.get("sengerio_in_send"):
            mass = self.filtered(lambda m: m.message_type == "email_outgoing")
            if mass:
                self.env[
                    "sengerio.generated.document.recipient"
                ].sudo()._sync_from_mails(
                    {mail.id: mail._sengerio_status() for mail in mass}
                )
        return res

    def _sengerio_status(self):
        """State, failure type and reason of this email, for the register."""
        self.ensure_one()
        return self.state, self.failure_type, self.failure_reason

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
        self._sengerio_bcc_pending()[(first["message_id"], bcc)] = self.id
        return emails

    def _sengerio_bcc_pending(self):
        """Emails whose hidden copy is about to be sent, by (Message-Id, Bcc).

        Lets ``ir.mail_server.send_email`` mark the right email without a
        lookup; kept for the current transaction only.
        """
        return self.env.cr.precommit.data.setdefault("sengerio_mailing.bcc", {})

    def _send(self, auto_commit=False, raise_exception=False, **kwargs):
        """Send with the register synced once per email, after its outcome.

        Odoo writes each email's notifications twice while sending it (a
        transient failure first, then the outcome); the register only needs
        the outcome, which ``_postprocess_sent_message`` records.
        """
        return super(MailMail, self.with_context(sengerio_in_send=True))._send(
            auto_commit=auto_commit, raise_exception=raise_exception, **kwargs
        )

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        if not self.env.context.get("sengerio_in_send"):
            return super()._postprocess_sent_message(
                success_pids, failure_reason=failure_reason, failure_type=failure_type
            )
        # read before super(), which may delete the emails
        statuses = {mail.id: mail._sengerio_status() for mail in self}
        res = super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )
        # the emails Odoo kept (no auto-delete, or a failure to retry)
        synced = self._sengerio_synced()
        statuses = {key: value for key, value in statuses.items() if key not in synced}
        if statuses:
            self.env["sengerio.generated.document.recipient"].sudo()._sync_from_mails(
                statuses
            )
        synced.clear()
        return res

    def unlink(self):
        if self.env.context.get("sengerio_in_send"):
            # sent emails are deleted at the end of _postprocess_sent_message:
            # sync the register first, while the outcome is in the cache
            self.env["sengerio.generated.document.recipient"].sudo()._sync_from_mails(
                {mail.id: mail._sengerio_status() for mail in self}
            )
            self._sengerio_synced().update(self.ids)
        return super().unlink()

    def _sengerio_synced(self):
        """Emails whose register lines are synced in this send (transaction)."""
        return self.env.cr.precommit.data.setdefault("sengerio_mailing.synced", set())

    @api.model
    def _sengerio_mark_bcc_sent(self, message_id, bcc):
        """Record that the SMTP server accepted the hidden copy of an email."""
        mail_id = self._sengerio_bcc_pending().pop((message_id, bcc), None)
        if mail_id:
            # the email being sent right now: no need to look it up
            mails = self.sudo().browse(mail_id)
            mails.sengerio_bcc_sent = True
            return mails
        mails = self.sudo().search(
            [
                ("message_id", "=", message_id),
                ("sengerio_bcc_recipient", "=", email_normalize(bcc) or bcc),
                ("sengerio_bcc_sent", "=", False),
            ]
        )
        mails.sengerio_bcc_sent = True
        return mails
