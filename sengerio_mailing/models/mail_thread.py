import logging
import xmlrpc.client

from odoo import api, models
from odoo.tools import plaintext2html

from .. import policy

_logger = logging.getLogger(__name__)

# the bytes of the message the gateway is processing, until it is parsed
RAW_MESSAGE_KEY = "sengerio_mailing.raw_message"


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _notify_thread(self, message, msg_vals=False, **kwargs):
        """Classify a document send before Odoo creates its emails."""
        if (
            self.env.context.get("sengerio_document_send")
            and len(self) == 1
            and not message.sengerio_document_type
            # the send itself, not a tracking message posted in the same call
            and message.subtype_id.id == self._sengerio_xmlid_id("mail.mt_comment")
        ):
            template = self.env["mail.template"].browse(
                self.env.context.get("sengerio_template_id") or []
            )
            values = self._sengerio_send_values(
                template, message.author_id, message.partner_ids
            )
            message.sudo().write(values)
        if not message.sengerio_document_type:
            return super()._notify_thread(message, msg_vals=msg_vals, **kwargs)
        # the entry exists before any email is sent; its lines once Odoo
        # made the notifications (a message just posted has no entry yet)
        Register = self.env["sengerio.generated.document"]
        document = self if len(self) == 1 and self._name == message.model else None
        entry = Register._register_message(
            message, new=bool(msg_vals), record=document, with_recipients=False
        )
        res = super()._notify_thread(message, msg_vals=msg_vals, **kwargs)
        message.invalidate_recordset(["notification_ids"])
        entry._add_recipients(
            message.sudo().notification_ids, self.env["mail.mail"], new=bool(msg_vals)
        )
        return res

    def _notify_thread_by_email(
        self, message, recipients_data, msg_vals=False, **kwargs
    ):
        """Drop the hidden copy when its sender is notified by email anyway.

        Followers (the salesperson, typically) get their own email: a hidden
        copy would be a second one. Runs right before the emails are created,
        also when a scheduled message is sent later by the cron.
        """
        bcc = message.sudo().sengerio_bcc_email
        if bcc and not message.sudo().sengerio_bcc_assigned:
            emailed = (
                self.env["res.partner"]
                .sudo()
                .browse([r["id"] for r in recipients_data if r["notif"] == "email"])
            )
            if bcc in emailed.mapped("email_normalized"):
                note = self.env._(
                    "No hidden copy: the sender %(email)s already receives the email.",
                    email=bcc,
                )
                _logger.info("mail.message %s: %s", message.id, note)
                message.sudo().write(
                    {"sengerio_bcc_email": False, "sengerio_bcc_note": note}
                )
                self.env["sengerio.generated.document"].sudo().search(
                    [("mail_message_id", "=", message.id)]
                ).write({"bcc_email": False, "bcc_note": note})
        return super()._notify_thread_by_email(
            message, recipients_data, msg_vals=msg_vals, **kwargs
        )

    # Bounces ---------------------------------------------------------------

    @api.model
    def _message_parse_extract_bounce(self, email_message, message_dict):
        """Read the bounce precisely, so Odoo blames the right recipient.

        Delay notices and auto-replies blame nobody, nor does a bounce of the
        sender's own hidden copy.
        """
        try:
            res = super()._message_parse_extract_bounce(email_message, message_dict)
        except Exception as error:  # broken MIME must not crash the gateway
            _logger.warning(
                "Generated Documents: broken bounce %s (%s), nobody marked bounced",
                message_dict.get("message_id"),
                error,
            )
            res = {
                "is_bounce": True,
                "bounced_email": False,
                "bounced_partner": self.env["res.partner"],
                "bounced_msg_ids": False,
                "bounced_message": self.env["mail.message"],
            }
        if res.get("is_bounce"):
            # the bytes travel on with the bounce: the first savepoint clears
            # the cursor's precommit data
            res["sengerio_raw_message"] = self.env.cr.precommit.data.get(
                RAW_MESSAGE_KEY
            )
            try:
                res.update(
                    self.env["sengerio.generated.document"]._bounce_parse(
                        email_message, res
                    )
                )
            except Exception:
                _logger.exception(
                    "Generated Documents: unreadable bounce %s, left to Odoo",
                    message_dict.get("message_id"),
                )
        return res

    def _message_parse_extract_payload(
        self, message, message_dict, save_original=False
    ):
        """Never let an unreadable body (bad MIME headers) crash the gateway."""
        try:
            return super()._message_parse_extract_payload(
                message, message_dict, save_original=save_original
            )
        except Exception as error:
            _logger.warning(
                "Mail gateway: unreadable body in %s (%s), kept as raw text",
                message_dict.get("message_id"),
                error,
            )
            raw = message.get_payload()
            text = raw if isinstance(raw, str) else ""
            return {"body": plaintext2html(text[:100000]), "attachments": []}

    @api.model
    def message_process(self, model, message, *args, **kwargs):
        """Keep the bytes received, to attach a bounce as it came."""
        raw = message.data if isinstance(message, xmlrpc.client.Binary) else message
        data = self.env.cr.precommit.data
        data[RAW_MESSAGE_KEY] = raw.encode() if isinstance(raw, str) else raw
        try:
            return super().message_process(model, message, *args, **kwargs)
        finally:
            data.pop(RAW_MESSAGE_KEY, None)

    def _routing_handle_bounce(self, email_message, message_dict):
        """After Odoo's own bounce handling, update Generated Documents."""
        # the register's lines take a bounce from its delivery report (see
        # mail.notification.write), not from Odoo's notification
        res = super()._routing_handle_bounce(email_message, message_dict)
        try:
            self.env["sengerio.generated.document"].sudo()._bounce_process(
                email_message,
                message_dict,
                raw_message=message_dict.get("sengerio_raw_message"),
            )
        except Exception:
            _logger.exception(
                "Generated Documents: bounce %s not recorded",
                message_dict.get("message_id"),
            )
            # still follow what Odoo recorded on its notifications
            message = message_dict.get("bounced_message")
            if message:
                self.env["sengerio.generated.document.recipient"].sudo().search(
                    [("notification_id", "in", message.sudo().notification_ids.ids)]
                )._sync_from_notifications()
        return res

    # Extension points for document models ---------------------------------

    def _sengerio_document_type(self, template):
        """Return the document type key of sending this record with ``template``.

        Document models override this; any other record is ``other``.
        """
        return "other"

    def _sengerio_responsible_user(self):
        """Return the user responsible for this document (salesperson...)."""
        return self.env["res.users"]

    def _sengerio_template_xmlid(self, template, xmlids):
        """The XML id of ``template`` if it is one of ``xmlids``, else None."""
        for xmlid in sorted(xmlids):
            if template and template.id == self._sengerio_xmlid_id(xmlid):
                return xmlid
        return None

    @api.model
    def _sengerio_xmlid_id(self, xmlid):
        """The id an XML id names, from Odoo's cache: no query per send
        (``env.ref`` checks that the record exists)."""
        return self.env["ir.model.data"]._xmlid_to_res_id(xmlid)

    # Business methods ------------------------------------------------------

    def _sengerio_customer(self):
        """Return the partner this document is addressed to (its customer)."""
        return self.env["res.partner"]

    def _sengerio_send_values(self, template, author, partners, other_emails=()):
        """Decide document type and hidden copy for one send of this record.

        :param template: ``mail.template`` used for the send, may be empty
        :param author: ``res.partner`` shown in From
        :param partners: ``res.partner`` recipients of the email
        :param other_emails: other addresses that receive the email openly
        :return: values for the ``sengerio_*`` fields of ``mail.message``
        """
        self.ensure_one()
        document_type = self._sengerio_document_type(template)
        values = {
            "sengerio_document_type": document_type,
            "sengerio_bcc_email": False,
            "sengerio_bcc_partner_id": False,
            "sengerio_bcc_note": False,
            "sengerio_sender_email": False,
        }
        if document_type not in policy.BCC_DOCUMENT_TYPES:
            return values
        responsible = self._sengerio_responsible_user().partner_id
        company_partners = self.env["res.company"].sudo().search([]).partner_id
        sender, email, reason = policy.choose_bcc_recipient(
            self._sengerio_sender(author, company_partners),
            self._sengerio_sender(responsible, company_partners),
            [*partners.mapped("email_normalized"), *other_emails],
        )
        if sender:
            values["sengerio_sender_email"] = policy.valid_email(sender.email)
        company = self._sengerio_company()
        if not company._sengerio_bcc_enabled(document_type):
            values["sengerio_bcc_note"] = self.env._(
                "Hidden copy to the sender is switched off for this document type."
            )
            return values
        if email:
            values["sengerio_bcc_email"] = email
            values["sengerio_bcc_partner_id"] = self._sengerio_bcc_partner(partners).id
            return values
        if reason == policy.NO_BCC_VISIBLE:
            note = self.env._(
                "No hidden copy: the sender %(email)s already receives the email.",
                email=sender.email,
            )
        elif reason == policy.NO_BCC_INVALID_EMAIL:
            note = self.env._(
                'No hidden copy: the sender\'s email "%(email)s" is not valid.',
                email=sender.email,
            )
        else:
            note = self.env._(
                "No hidden copy: neither the author nor a responsible user "
                "has an email address."
            )
        log = _logger.info if reason == policy.NO_BCC_VISIBLE else _logger.warning
        log("%s %s (%s): %s", self._name, self.id, document_type, note)
        values["sengerio_bcc_note"] = note
        return values

    def _sengerio_bcc_partner(self, partners):
        """The recipient whose own email carries the hidden copy.

        The document's customer when it is a recipient, else the first
        recipient who is not an internal user: the sender's copy is what the
        customer got, never an internal user's or follower's version.
        """
        customer = self._sengerio_customer()
        if customer and customer in partners:
            return customer
        return partners.filtered("partner_share")[:1] or partners[:1]

    def _sengerio_company(self):
        if "company_id" in self._fields and self.company_id:
            return self.company_id
        return self.env.company

    def _sengerio_sender(self, partner, company_partners=None):
        """Describe ``partner`` as a possible sender for the pure policy."""
        if not partner:
            return None
        if company_partners is None:
            company_partners = self.env["res.company"].sudo().search([]).partner_id
        is_person = (
            partner.id != self._sengerio_xmlid_id("base.partner_root")
            and partner not in company_partners
            and not partner.is_company
        )
        return policy.Sender(partner.name, partner.email, is_person)
