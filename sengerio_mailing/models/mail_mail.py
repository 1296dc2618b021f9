import logging

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

# Fields that make mass_mailing add an open-tracking pixel and shortened links.
TRACKING_FIELDS = ("mailing_id", "mailing_trace_ids")
# what the register's mass-mode lines follow
SYNCED_FIELDS = {"state", "failure_type", "failure_reason"}


class MailMail(models.Model):
    _inherit = "mail.mail"

    sengerio_bcc_holder = fields.Boolean(
        "Carries the Hidden Copy",
        readonly=True,
        help="This email carries its message's hidden copy to the sender "
        "(Hidden Copy To), in the SMTP envelope of the customer's own email.",
    )
    sengerio_bcc_sent = fields.Boolean(
        "Hidden Copy Sent",
        readonly=True,
        help="An SMTP server took the hidden copy: retries never resend it.",
    )
    sengerio_mass_document = fields.Boolean(
        "Document Sent Alone",
        readonly=True,
        help="A document email sent without notifications (from a list): its "
        "Generated Documents lines follow this email's status.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._sengerio_prepare_create_values(vals)
        mails = super().create(vals_list)
        # composer mass mode: no notification, the email is the whole send
        Register = self.env["sengerio.generated.document"]
        for mail, vals in zip(mails, vals_list, strict=True):
            if vals.get("sengerio_mass_document"):
                Register._register_message(mail.mail_message_id, mails=mail)
        return mails

    def write(self, vals):
        """Mass-mode emails (no notification) are what their lines follow."""
        if "message_id" in vals and all(
            mail.message_id == vals["message_id"] for mail in self
        ):
            # Once sent, Odoo writes back the Message-Id it had: unchanged, but
            # the write would still touch the message row that sibling emails
            # share (its write date), after SMTP. Two processes sending them
            # at once would then roll one back, and the queue would send it
            # again.
            vals = {key: value for key, value in vals.items() if key != "message_id"}
        res = super().write(vals)
        if SYNCED_FIELDS & set(vals):
            mass = self.filtered("sengerio_mass_document")
            if mass:
                self.env["sengerio.generated.document.recipient"]._sync_later(
                    mail_statuses={
                        mail.id: (mail.state, mail.failure_type, mail.failure_reason)
                        for mail in mass
                    }
                )
        return res

    def _sengerio_prepare_create_values(self, vals):
        """Give the message's hidden copy to the customer's email; strip tracking.

        A message split into several emails (languages, recipient groups,
        batches, resends) carries its hidden copy on the one email that goes
        to the customer chosen at send time (``sengerio_bcc_partner_id``),
        until an SMTP server took the copy.
        """
        if vals.get("sengerio_document_type") and not vals.get("mail_message_id"):
            # composer mass mode: one email per message, decided in the values
            vals["sengerio_mass_document"] = True
            if vals.get("sengerio_bcc_email"):
                vals["sengerio_bcc_holder"] = True
                vals["sengerio_bcc_assigned"] = True
            is_document = True
        elif vals.get("mail_message_id"):
            message = self.env["mail.message"].sudo().browse(vals["mail_message_id"])
            is_document = bool(message.sengerio_document_type)
            if (
                message.sengerio_bcc_email
                and self._sengerio_goes_to_bcc_partner(message, vals)
                and (
                    not message.sengerio_bcc_assigned
                    or self._sengerio_take_unsent_bcc(message)
                )
            ):
                vals["sengerio_bcc_holder"] = True
                message.sengerio_bcc_assigned = True
        else:
            is_document = bool(vals.get("sengerio_document_type"))
        if is_document:
            for field in TRACKING_FIELDS:
                vals.pop(field, None)

    @api.model
    def _sengerio_goes_to_bcc_partner(self, message, vals):
        """Whether the email of ``vals`` goes to the customer with the copy."""
        partner = message.sengerio_bcc_partner_id
        if not partner:
            return True
        return partner.id in {
            command[1] for command in vals.get("recipient_ids") or [] if command[0] == 4
        } | {
            partner_id
            for command in vals.get("recipient_ids") or []
            if command[0] == 6
            for partner_id in command[2]
        }

    def _sengerio_take_unsent_bcc(self, message):
        """Take the hidden copy back from emails that can no longer send it.

        Odoo's resend wizard sends a new email to the failed recipients: it
        carries the hidden copy when no SMTP server took it yet (the server
        was down, the address was invalid and Odoo deleted that email...),
        never a second one.
        """
        holders = self.sudo().search(
            [("mail_message_id", "=", message.id), ("sengerio_bcc_holder", "=", True)]
        )
        if any(
            mail.sengerio_bcc_sent or mail.state not in ("exception", "cancel")
            for mail in holders
        ):
            return False
        if (
            self.env["mail.notification"]
            .sudo()
            .search_count(
                [
                    ("mail_message_id", "=", message.id),
                    ("sengerio_bcc_sent", "=", True),
                ],
                limit=1,
            )
        ):
            return False
        holders.sengerio_bcc_holder = False
        return True

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        """Add the hidden copy to the envelope of the customer's own email."""
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )
        if not self.sengerio_bcc_holder or self.sengerio_bcc_sent:
            return emails
        bcc = self.sengerio_bcc_email
        partner = self.sengerio_bcc_partner_id
        if partner and partner in self.recipient_ids:
            carrier = next(e for e in emails if e["partner_id"] == partner)
        else:
            carrier = next((e for e in emails if e["email_to_normalized"]), None)
        if carrier is None or not carrier["email_to_normalized"]:
            _logger.info(
                "mail.mail %s: no deliverable customer address, the hidden copy "
                "to %s waits for a resend",
                self.id,
                bcc,
            )
            return emails
        # ir.mail_server turns the Bcc header into an envelope recipient and
        # deletes it before the message goes on the wire.
        carrier["headers"] = dict(carrier["headers"], Bcc=bcc)
        carrier["email_to_normalized"] = [*carrier["email_to_normalized"], bcc]
        self._sengerio_bcc_pending()[(carrier["message_id"], bcc)] = self.id
        return emails

    def _sengerio_bcc_pending(self):
        """Emails whose hidden copy is about to be sent, by (Message-Id, Bcc).

        Lets ``ir.mail_server.send_email`` find the right email without a
        lookup; kept for the current transaction only.
        """
        return self.env.cr.precommit.data.setdefault("sengerio_mailing.bcc", {})

    @api.model
    def _sengerio_bcc_done(self, message_id, bcc, refusal=None):
        """Record that the SMTP server took the hidden copy of an email.

        Only rows this send writes anyway are written (the email, the
        customer's notification): a sibling email sent at the same time by
        another process never contends for them.

        :param refusal: the server's reply when it refused the sender's
            address: noted on the entry, never retried
        """
        mail_id = self._sengerio_bcc_pending().pop((message_id, bcc), None)
        mail = self.sudo().browse(mail_id)
        if not mail_id:
            mail = self.sudo().search(
                [
                    ("message_id", "=", message_id),
                    ("sengerio_bcc_holder", "=", True),
                    ("sengerio_bcc_sent", "=", False),
                ],
                limit=1,
            )
        if not mail:
            return mail
        mail.sengerio_bcc_sent = True
        if mail.is_notification and mail.sengerio_bcc_partner_id:
            # the customer's notification says so too, written with the
            # outcome Odoo writes on it next: it outlives this email, so a
            # resend of this notification sends no second copy
            self.env["mail.notification"].sudo().search(
                [
                    ("mail_mail_id", "=", mail.id),
                    ("res_partner_id", "=", mail.sengerio_bcc_partner_id.id),
                    ("sengerio_bcc_sent", "=", False),
                ]
            ).sengerio_bcc_sent = True
        if refusal:
            note = self.env._(
                "The mail server refused the hidden copy to %(email)s: %(reply)s",
                email=bcc,
                reply=refusal,
            )
            _logger.warning("mail.mail %s: %s", mail.id, note)
            self.env["sengerio.generated.document.recipient"]._sync_later(
                bcc_notes={mail.mail_message_id.id: note}
            )
        return mail
