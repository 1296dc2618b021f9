import hashlib
import logging
import xmlrpc.client

from odoo import api, models
from odoo.tools import SQL, email_normalize, email_normalize_all, plaintext2html

from .. import bounce, policy

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

    # Bounces: the gateway side -------------------------------------------
    # Read the report, find the entry it is about, check that it is believable
    # and new, and queue it for the notice cron (sengerio.bounce.notice),
    # which records the outcome and tells people.

    @api.model
    def _message_parse_extract_bounce(self, email_message, message_dict):
        """Read a bounce of a generated document precisely.

        Odoo's own reading stands for every other email. For a document's
        email, Odoo then blames only a customer the report truly names:
        nobody for a delay, a bounce of the sender's own hidden copy, a report
        that is not believed or one already handled.
        """
        try:
            res = super()._message_parse_extract_bounce(email_message, message_dict)
        except Exception as error:  # broken MIME must not crash the gateway
            res = self._sengerio_failed_bounce_detection(
                email_message, message_dict, error
            )
        if not res.get("is_bounce"):
            return res
        try:
            res.update(self._sengerio_read_bounce(email_message, message_dict, res))
        except Exception:
            _logger.exception(
                "Generated Documents: unreadable bounce %s, left to Odoo",
                message_dict.get("message_id"),
            )
        return res

    @api.model
    def _sengerio_failed_bounce_detection(self, email_message, message_dict, error):
        """Odoo's bounce reading raised: an ordinary email stays one."""
        try:
            is_bounce = self._detect_is_bounce(email_message, message_dict)
        except Exception:
            is_bounce = False
        if not is_bounce:
            _logger.warning(
                "Mail gateway: bounce detection failed on %s (%s), routed as an "
                "ordinary email",
                message_dict.get("message_id"),
                error,
            )
            return {"is_bounce": False}
        _logger.warning(
            "Mail gateway: broken bounce %s (%s), nobody marked bounced",
            message_dict.get("message_id"),
            error,
        )
        return dict(self._sengerio_no_blame(), is_bounce=True)

    def _sengerio_no_blame(self):
        """Bounce values with which Odoo marks nothing bounced."""
        return {
            "bounced_email": False,
            "bounced_partner": self.env["res.partner"].sudo(),
            "bounced_msg_ids": False,
            "bounced_message": self.env["mail.message"].sudo(),
        }

    @api.model
    def _sengerio_read_bounce(self, email_message, message_dict, odoo_values):
        """Values for ``message_dict`` when a bounce is about a document.

        :return: ``{}`` (Odoo's own reading stands) unless the report is
            about a generated document; then Odoo's values, corrected, and
            ``sengerio_bounce``: what to queue, if anything
        """
        msg_id = message_dict.get("message_id")
        report = bounce.read_bounce(email_message)
        if report.is_notice_bounce:
            _logger.info(
                "Generated Documents: bounce %s returns a bounce notice, not forwarded",
                msg_id,
            )
            return {}
        key = self._sengerio_report_key(email_message, report)
        found = self._sengerio_bounced_entry(report.message_ids, key)
        message = odoo_values.get("bounced_message")
        if not found and not (message and message.sudo().sengerio_document_type):
            # no document's email: Odoo's own handling, as Odoo does it
            _logger.info(
                "Generated Documents: %s is about %s, which is no generated document",
                msg_id,
                ", ".join(report.message_ids) or "no email it returns",
            )
            return {}
        values = self._sengerio_no_blame()
        if report.kind not in ("failed", "delayed") or not found:
            # an auto-reply, or a report that only names the document's email
            # in its own References or text: nobody is blamed
            _logger.info(
                "Generated Documents: %s names %s, but is %s: nobody marked bounced",
                msg_id,
                found["message_id"] if found else message.message_id,
                {
                    "autoreply": "an auto-reply",
                    "none": "no report of a failure",
                }.get(report.kind, "no report returning that email"),
            )
            return values
        about = found["message_id"]
        reason = self._sengerio_unbelievable(email_message, found["bounce_emails"])
        if reason:
            _logger.warning(
                "Generated Documents: report %s about %s ignored: %s",
                msg_id,
                about,
                reason,
            )
            return values
        if found["known"]:
            _logger.info(
                "Generated Documents: report %s about %s was already handled",
                msg_id,
                about,
            )
            return values
        envelope = {email_normalize(e) for e in found["envelope"] if e}
        envelope = (envelope | {found["bcc_email"]}) - {False, None}
        believed, strangers = [], []
        for recipient in self._sengerio_reported(report):
            address = next((a for a in recipient.addresses if a in envelope), None)
            if address:
                recipient.email = address
                believed.append(recipient)
            else:
                strangers.append(recipient.email)
        if strangers:
            _logger.warning(
                "Generated Documents: report %s names %s, not recipients of %s: "
                "ignored for them",
                msg_id,
                ", ".join(strangers),
                about,
            )
        if not believed:
            return values
        entry = self.env["sengerio.generated.document"].sudo().browse(found["id"])
        values["sengerio_bounce"] = {
            "entry": entry,
            "about": about,
            "kind": report.kind,
            "recipients": believed,
            "key": key,
            # the bytes travel on with the bounce: the first savepoint clears
            # the cursor's precommit data
            "raw": self.env.cr.precommit.data.get(RAW_MESSAGE_KEY)
            or bounce.message_bytes(email_message),
        }
        customers = [
            r.email for r in believed if r.is_failure and r.email != found["bcc_email"]
        ]
        if customers:
            partner = (
                odoo_values.get("bounced_partner")
                if customers[0] == odoo_values.get("bounced_email")
                else self.env["res.partner"]
                .sudo()
                .search([("email_normalized", "=", customers[0])])
            )
            values.update(
                bounced_email=customers[0],
                bounced_partner=partner,
                bounced_message=self.env["mail.message"]
                .sudo()
                .browse(found["mail_message_id"]),
                bounced_msg_ids=report.message_ids,
            )
        return values

    @api.model
    def _sengerio_reported(self, report):
        """The recipients a report is about: the failed, else the delayed."""
        return report.failed if report.kind == "failed" else report.delayed

    @api.model
    def _sengerio_bounced_entry(self, message_ids, key=""):
        """What the gateway needs to know of the entry a report returns.

        One query for it all (this runs for every bounce; ``bench/
        bounce_gateway.py`` measures it): the newest entry with the returned
        Message-Id, the addresses its email was sent to, whether a report
        with ``key`` was handled already, and the bounce addresses.

        :return: ``{"id", "message_id", "mail_message_id", "bcc_email",
            "envelope", "known", "bounce_emails"}``, or None
        """
        if not message_ids:
            return None
        for model in (
            "sengerio.generated.document",
            "sengerio.generated.document.recipient",
            "sengerio.bounce.notice",
        ):
            self.env[model].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT d.id, d.message_id, d.mail_message_id, d.bcc_email,
                       ARRAY(SELECT r.email
                               FROM sengerio_generated_document_recipient r
                              WHERE r.document_id = d.id),
                       EXISTS(SELECT 1 FROM sengerio_bounce_notice n
                               WHERE n.document_id = d.id AND n.report_key = %s),
                       ARRAY(SELECT a.bounce_alias || '@' || a.name
                               FROM mail_alias_domain a
                              WHERE a.bounce_alias IS NOT NULL)
                  FROM sengerio_generated_document d
                 WHERE d.message_id IN %s
                 ORDER BY d.id DESC
                 LIMIT 1
                """,
                key,
                tuple(message_ids),
            )
        )
        row = self.env.cr.fetchone()
        if not row:
            return None
        names = (
            "id", "message_id", "mail_message_id", "bcc_email", "envelope", "known",
            "bounce_emails",
        )  # fmt: skip
        return dict(zip(names, row, strict=True))

    @api.model
    def _sengerio_unbelievable(self, email_message, bounce_emails):
        """Why a report about a document is not believed, if it is not.

        A real report comes back to the bounce address, the envelope sender
        of every email Odoo sends. The mail server's own delivery headers
        (``Delivered-To``, ``X-Original-To``, ``Envelope-To``, topmost first)
        say where it was delivered; without them, To and Cc.
        """
        bounce_emails = {email_normalize(e) for e in bounce_emails}
        for header in ("Delivered-To", "X-Original-To", "Envelope-To"):
            delivered = email_message.get(header)
            if delivered:
                if email_normalize(str(delivered)) in bounce_emails:
                    return False
                return "delivered to %s, not to the bounce address" % delivered
        visible = email_normalize_all(
            ",".join(
                str(v)
                for header in ("To", "Cc")
                for v in email_message.get_all(header) or []
            )
        )
        if bounce_emails.intersection(visible):
            return False
        return "not sent to the bounce address (%s)" % (
            ", ".join(visible) or "no recipient"
        )

    @api.model
    def _sengerio_report_key(self, email_message, report):
        """What makes a report the same report when it comes again.

        Its Message-Id with its kind and the addresses it reports; without a
        Message-Id, its bytes.
        """
        report_id = str(email_message.get("Message-Id") or "").strip()
        if report_id:
            emails = sorted(r.email for r in self._sengerio_reported(report))
            text = "|".join([report_id, report.kind, *emails])
            return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        raw = self.env.cr.precommit.data.get(RAW_MESSAGE_KEY) or bounce.message_bytes(
            email_message
        )
        return hashlib.sha256(raw).hexdigest()

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
        """After Odoo's own bounce handling, queue a document's bounce."""
        # the register's lines take a bounce from its delivery report (the
        # notice cron), not from Odoo's notification (see mail.notification)
        res = super()._routing_handle_bounce(email_message, message_dict)
        found = message_dict.get("sengerio_bounce")
        if not found:
            return res
        try:
            # no savepoint: queueing cannot fail in SQL (see the notice's
            # _queue), and a savepoint costs the gateway 7% of its throughput
            self._sengerio_queue_bounce(found, message_dict)
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

    @api.model
    def _sengerio_queue_bounce(self, found, message_dict):
        """Queue a believed report for the notice cron (every minute)."""
        entry = found["entry"]
        notice = (
            self.env["sengerio.bounce.notice"]
            .sudo()
            ._queue(
                entry,
                found["kind"],
                found["recipients"],
                found["raw"],
                key=found["key"],
                report_message_id=message_dict.get("message_id"),
            )
        )
        if not notice:
            return notice
        _logger.info(
            "Generated Documents: %s of %s for %s queued",
            "delay" if found["kind"] == "delayed" else "bounce",
            found["about"],
            ", ".join(r.email for r in found["recipients"]),
        )
        return notice

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
