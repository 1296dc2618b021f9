import json
import logging
import re
from datetime import timedelta
from email.utils import formataddr

from markupsafe import Markup
from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.tools import SQL, email_normalize, exception_to_unicode, html_escape

from .. import bounce
from .sengerio_generated_document import RETENTION_PARAM

_logger = logging.getLogger(__name__)

BATCH_SIZE = 100
#: Minutes to wait before each retry after a temporary error, on top of the
#: cron's own minute; the last delay repeats until it succeeds.
RETRY_DELAYS = (0, 5, 15, 30, 60)
#: Errors that go away by themselves: a concurrent update, a lock.
TEMPORARY_ERRORS = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)
SMTP_TEMPORARY_RE = re.compile(r"\(4\d\d,|\b4\d\d[ -]|disconnected|timed? ?out", re.I)


def retry_delay(retry):
    """Minutes to wait before retry number ``retry`` (1 for the first)."""
    return RETRY_DELAYS[min(max(retry, 1), len(RETRY_DELAYS)) - 1]


def mail_failure_is_temporary(failure_type, failure_reason):
    """Whether a failed email may go out if simply sent again later.

    The mail server could not be reached (Odoo leaves no failure type on the
    email then, or ``mail_smtp``), or it answered with a 4xx code.
    """
    if not failure_type or failure_type == "mail_smtp":
        return True
    return failure_type == "unknown" and bool(
        SMTP_TEMPORARY_RE.search(failure_reason or "")
    )


class SengerioBounceNotice(models.Model):
    """A delivery report about a generated document, and what was done with it.

    The mail gateway checks the report and queues it here, with the report
    as received, so that it stays about as fast as Odoo's own. The cron (every
    minute) then records it: it marks the bounced recipients in Generated
    Documents and writes the chatter note and the activity, and emails the
    sender with the very report attached, or notes a delayed delivery.

    Temporary errors (a concurrent update, the mail server down) are retried
    with a growing delay until they succeed; anything else waits for an
    admin, who retries once the cause is fixed. Done notices stay as the log
    of what came in and what was done, until the register's retention.
    """

    _name = "sengerio.bounce.notice"
    _inherit = ["sengerio.generated.document.part"]
    _description = "Delivery Report"
    _order = "id desc"
    _rec_name = "document_id"

    document_id = fields.Many2one(
        "sengerio.generated.document",
        "Document",
        required=True,
        ondelete="cascade",
        index=True,
        readonly=True,
    )
    kind = fields.Selection(
        [("failed", "Bounced"), ("delayed", "Delayed")], required=True, readonly=True
    )
    recipients = fields.Json(
        "Reported Recipients",
        readonly=True,
        help="What the delivery report says of each failed or delayed "
        "recipient: [[email, status, diagnostic]].",
    )
    recipients_text = fields.Text("Recipients", compute="_compute_recipients_text")
    report_message_id = fields.Char("Report Message-Id", readonly=True)
    report_key = fields.Char(
        readonly=True,
        help="Technical: the same report coming again has the same key.",
    )
    report = fields.Binary(
        "Delivery Report", compute="_compute_report", compute_sudo=True
    )
    report_filename = fields.Char(compute="_compute_report", compute_sudo=True)
    state = fields.Selection(
        [
            ("pending", "Received"),
            ("sending", "Telling the Sender"),
            ("done", "Done"),
            ("error", "Needs an Admin"),
        ],
        default="pending",
        required=True,
        index=True,
        readonly=True,
    )
    retry_at = fields.Datetime("Next Try", readonly=True)
    attempts = fields.Integer(readonly=True)
    recorded_date = fields.Datetime("Recorded", readonly=True)
    told_date = fields.Datetime("Sender Told", readonly=True)
    mail_id = fields.Integer(
        "Email ID",
        readonly=True,
        help="Technical: the email to the sender, deleted once sent.",
    )
    outcome = fields.Text(readonly=True)
    error = fields.Text(readonly=True)

    _sql_constraints = [
        (
            "report_key_unique",
            "unique(document_id, report_key)",
            "A delivery report is handled once.",
        ),
    ]

    @api.depends("recipients")
    def _compute_recipients_text(self):
        for notice in self:
            notice.recipients_text = "\n".join(
                " ".join(filter(None, [r.email + ":", r.status, r.diagnostic]))
                for r in notice._recipient_reports()
            )

    def _compute_report(self):
        attachments = self._report_attachments()
        for notice in self:
            attachment = attachments.filtered(lambda a, n=notice: a.res_id == n.id)[:1]
            notice.report = attachment.datas
            notice.report_filename = attachment.name

    # Actions ---------------------------------------------------------------

    def action_retry(self):
        """Try the notices that need an admin again, with the next cron run."""
        self.check_access("write")
        failed = self.filtered(lambda n: n.state == "error")
        failed.filtered("recorded_date")._requeue_mails()
        failed.filtered(lambda n: not n.recorded_date).write(
            {"state": "pending", "error": False, "retry_at": False}
        )
        self.env.ref("sengerio_mailing.ir_cron_bounce_notices")._trigger()
        return True

    def action_open_document(self):
        return self.document_id.action_open_document()

    # The gateway queues ----------------------------------------------------

    @api.model
    def _queue(self, document, kind, recipients, report, key, report_message_id):
        """Queue a report about ``document`` for the cron, with its bytes.

        This runs in the mail gateway, in its transaction and without a
        savepoint: the savepoint's flush and its two queries cost the gateway
        some 7% of its throughput (``bench/bounce_gateway.py`` (a), 0.84
        with it against 0.90 without). So nothing here may fail in SQL: the
        row goes in with one INSERT (the ORM's create costs 0.4 ms more),
        a report queued twice at once is skipped by its unique key, and the
        report is then kept through the ORM, a failure there only logged.

        :param recipients: :class:`~..bounce.RecipientReport` of the failed
            or delayed recipients, as the email was sent to them
        :param report: the report's bytes as received; kept once, as an
            attachment, and sent as is to the sender
        :return: the notice, or an empty recordset if the report was queued
            already
        """
        now = self.env.cr.now()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO sengerio_bounce_notice
                    (document_id, kind, recipients, report_key, report_message_id,
                     state, attempts, create_uid, create_date, write_uid,
                     write_date)
                VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT sengerio_bounce_notice_report_key_unique
                DO NOTHING
                RETURNING id
                """,
                document.id,
                kind,
                json.dumps([[r.email, r.status, r.diagnostic] for r in recipients]),
                key,
                (report_message_id or "")[:255] or None,
                self.env.uid,
                now,
                self.env.uid,
                now,
            )
        )
        row = self.env.cr.fetchone()
        if not row:
            _logger.info(
                "Generated Documents: a report about %s with the same key was queued "
                "at the same time: kept once",
                document.id,
            )
            return self.browse()
        notice = self.browse(row[0])
        try:
            self.env["ir.attachment"].sudo().create(
                {
                    "name": "delivery-report.eml",
                    "raw": report,
                    "mimetype": "message/rfc822",
                    "res_model": self._name,
                    "res_id": notice.id,
                }
            )
        except Exception:
            _logger.exception(
                "Generated Documents: the report of notice %s could not be kept; "
                "the sender is told without it",
                notice.id,
            )
        return notice

    # The cron records and tells ---------------------------------------------

    @api.model
    def _cron_send_notices(self, batch_size=BATCH_SIZE):
        """Record the reports the gateway queued and tell senders and teams."""
        self.sudo().search([("state", "=", "sending")])._check_mails()
        now = fields.Datetime.now()
        notices = self.sudo().search(
            [
                ("state", "=", "pending"),
                "|",
                ("retry_at", "=", False),
                ("retry_at", "<=", now),
            ],
            order="id",
            limit=batch_size,
        )
        for notice in notices:
            try:
                with self.env.cr.savepoint():
                    notice._record()
            except TEMPORARY_ERRORS as error:
                notice._retry_later(error)
            except Exception as error:  # one broken notice must not block the rest
                _logger.exception(
                    "Generated Documents: delivery report %s about %s not recorded",
                    notice.id,
                    notice.document_id.message_id,
                )
                notice.write({"state": "error", "error": exception_to_unicode(error)})
        remaining = self.sudo().search_count([("state", "=", "pending")])
        self.env["ir.cron"]._notify_progress(done=len(notices), remaining=remaining)
        return notices

    def _retry_later(self, error):
        self.ensure_one()
        delay = retry_delay(self.attempts + 1)
        _logger.warning(
            "Generated Documents: delivery report %s about %s not recorded yet "
            "(%s), tried again in %s minutes",
            self.id,
            self.document_id.message_id,
            error,
            delay or 1,
        )
        self.write(
            {
                "attempts": self.attempts + 1,
                "retry_at": fields.Datetime.now() + timedelta(minutes=delay),
                "error": exception_to_unicode(error),
            }
        )

    def _recipient_reports(self):
        return [
            bounce.RecipientReport(email, self.kind, status or "", diagnostic or "")
            for email, status, diagnostic in self.recipients or []
        ]

    def _record(self):
        """Record what the report says, and tell who needs to know."""
        self.ensure_one()
        entry = self.document_id
        now = fields.Datetime.now()
        values = {"recorded_date": now, "retry_at": False, "error": False}
        if self.kind == "delayed":
            self._note_delay()
            self.write(
                dict(
                    values,
                    state="done",
                    told_date=now,
                    outcome=self.env._("The delay is noted on the document."),
                )
            )
            return
        lines = self._record_failures()
        if not lines:
            self.write(
                dict(
                    values,
                    state="done",
                    outcome=self.env._(
                        "Only the sender's hidden copy bounced: noted on the entry."
                    ),
                )
            )
            return
        mail, sender = self._tell(lines)
        outcome = self.env._(
            "Marked bounced: %(emails)s.", emails=", ".join(lines.mapped("email"))
        )
        if not mail:
            self.write(
                dict(
                    values,
                    state="done",
                    outcome="%s %s"
                    % (
                        outcome,
                        self.env._("No sender to tell: noted on the document only."),
                    ),
                )
            )
            return
        self.write(
            dict(
                values,
                state="sending",
                mail_id=mail.id,
                outcome="%s %s"
                % (outcome, self.env._("Email to %(sender)s queued.", sender=sender)),
            )
        )
        _logger.info(
            "Generated Documents: %s bounced for %s, %s told",
            entry.message_id,
            ", ".join(lines.mapped("email")),
            sender,
        )

    def _record_failures(self):
        """Mark the failed recipients bounced.

        :return: the recipient lines marked bounced (the sender's own hidden
            copy is only noted on the entry)
        """
        self.ensure_one()
        entry = self.document_id
        Recipient = self.env["sengerio.generated.document.recipient"].sudo()
        lines = Recipient.search([("document_id", "=", entry.id)])
        bounced = Recipient
        for failure in self._recipient_reports():
            if failure.email == entry.bcc_email:
                self._note_bcc(failure)
                continue
            line = lines.filtered(
                lambda r, e=failure.email: email_normalize(r.email) == e
            )
            line._record_bounce(failure)
            bounced |= line
        return bounced

    def _note_delay(self):
        """Note a delayed delivery on the document."""
        entry = self.document_id
        record = entry._document_record()
        if record is None or not hasattr(record, "message_post"):
            return
        items = "".join(
            "<li>%s: %s</li>"
            % (html_escape(r.email), html_escape(r.diagnostic or r.status))
            for r in self._recipient_reports()
        )
        record.message_post(
            body=Markup(
                "<p>%s</p><ul>%s</ul>"
                % (
                    html_escape(
                        self.env._(
                            "Delivery of %(document)s is delayed; the mail server "
                            "keeps trying.",
                            document=entry.subject or entry.res_name,
                        )
                    ),
                    items,
                )
            ),
            message_type="notification",
            subtype_xmlid="mail.mt_note",
        )

    def _note_bcc(self, failure):
        """The sender's own copy bounced: noted, never blamed on the customer."""
        entry = self.document_id
        _logger.warning(
            "Generated Documents: the hidden copy of %s to %s bounced (%s)",
            entry.message_id,
            failure.email,
            failure.status,
        )
        entry.bcc_note = self.env._(
            "The hidden copy to %(email)s bounced: %(reason)s",
            email=failure.email,
            reason=self.env._(bounce.reason_words(failure.status)),
        )

    def _tell(self, lines):
        """Tell the sender in their mailbox, and the team on the document.

        :return: the email to the sender (or an empty recordset) and whom
        """
        self.ensure_one()
        entry = self.document_id
        body = self._body(lines)
        mail, sender = self._mail_sender(lines)
        record = entry._document_record()
        if record is not None and hasattr(record, "message_post"):
            record.message_post(
                body=body, message_type="notification", subtype_xmlid="mail.mt_note"
            )
            if entry.user_id and hasattr(record, "activity_schedule"):
                # quick update: no "assigned to you" email on top of the notice
                record.with_context(mail_activity_quick_update=True).activity_schedule(
                    "mail.mail_activity_data_todo",
                    user_id=entry.user_id.id,
                    summary=self.env._("Fix the email address and resend"),
                    note=body,
                )
        return mail, sender

    def _body(self, lines):
        entry = self.document_id
        failed = "".join(
            "<li><b>%s</b>: %s</li>"
            % (html_escape(line.email), html_escape(line.failure_reason or ""))
            for line in lines
        )
        return Markup(
            "<p>%s</p><ul>%s</ul><p>%s</p>"
            % (
                html_escape(
                    self.env._(
                        "Your email %(subject)s about %(document)s could not be "
                        "delivered to:",
                        subject=entry.subject or "",
                        document=entry.res_name or entry.subject or "",
                    )
                ),
                failed,
                html_escape(
                    self.env._(
                        "Please check the address and resend the document from "
                        "Generated Documents. The delivery report is attached."
                    )
                ),
            )
        )

    def _mail_sender(self, lines):
        """Email the sender, with the report attached as it came.

        :return: the email (or an empty recordset, when there is no sender
            to tell) and the sender's address
        """
        entry = self.document_id
        sender = entry._sender_email()
        if not sender:
            _logger.warning(
                "Generated Documents: no sender to tell about the bounce of %s",
                entry.message_id,
            )
            return self.env["mail.mail"], sender
        document = entry.res_name or entry.subject or ""
        company = entry.company_id or self.env.company
        mail = (
            self.env["mail.mail"]
            .sudo()
            .create(
                {
                    "subject": self.env._(
                        "Undelivered: %(document)s - %(subject)s",
                        document=document,
                        subject=entry.subject or "",
                    ),
                    "email_from": company.email_formatted
                    or formataddr((company.name, company.bounce_email or "")),
                    "email_to": sender,
                    "body_html": self._body(lines),
                    "attachment_ids": [(6, 0, self._report_attachments().ids)],
                    # kept until the cron sees it sent: then the sender is told
                    "auto_delete": False,
                    # loop guard: a bounce of this notice is never forwarded again
                    "headers": repr(
                        {
                            "Auto-Submitted": "auto-generated",
                            bounce.NOTICE_HEADER: entry.message_id or str(entry.id),
                        }
                    ),
                }
            )
        )
        mail.send_after_commit()
        return mail, sender

    def _check_mails(self):
        """Follow the emails to the senders: sent, to retry, or failed."""
        mails = self.env["mail.mail"].sudo().browse(self.mapped("mail_id")).exists()
        by_id = {mail.id: mail for mail in mails}
        now = fields.Datetime.now()
        sent = self.env["mail.mail"]
        for notice in self:
            mail = by_id.get(notice.mail_id)
            if mail is None or mail.state == "sent":
                notice.write({"state": "done", "told_date": now})
                if mail:
                    sent |= mail
            elif mail.state == "exception":
                if mail_failure_is_temporary(mail.failure_type, mail.failure_reason):
                    notice._requeue_mails()
                else:
                    notice.write(
                        {
                            "state": "error",
                            "error": self.env._(
                                "The email to the sender failed: %(reason)s",
                                reason=mail.failure_reason or mail.failure_type,
                            ),
                        }
                    )
            elif mail.state == "cancel":
                notice.write(
                    {
                        "state": "error",
                        "error": self.env._("The email to the sender was cancelled."),
                    }
                )
        sent.unlink()

    def _requeue_mails(self):
        """Put the emails to the senders back in Odoo's queue, after a delay.

        An email whose sending failed stays failed in Odoo's queue, which
        never retries it on its own.
        """
        Mail = self.env["mail.mail"].sudo()
        for notice in self:
            mail = Mail.browse(notice.mail_id).exists()
            delay = retry_delay(notice.attempts + 1)
            when = fields.Datetime.now() + timedelta(minutes=delay)
            if mail:
                _logger.warning(
                    "Generated Documents: email to the sender about %s failed (%s), "
                    "sent again in %s minutes",
                    notice.document_id.message_id,
                    mail.failure_reason,
                    delay,
                )
                mail.write(
                    {
                        "state": "outgoing",
                        "scheduled_date": when,
                        "failure_type": False,
                        "failure_reason": False,
                    }
                )
                self.env.ref("mail.ir_cron_mail_scheduler_action")._trigger(when)
            else:
                lines = notice.document_id.recipient_ids.filtered(
                    lambda r: r.state == "bounced"
                )
                mail, _sender = notice._mail_sender(lines)
            notice.write(
                {
                    "state": "sending",
                    "attempts": notice.attempts + 1,
                    "mail_id": mail.id,
                    "error": False,
                }
            )

    def _report_attachments(self):
        return (
            self.env["ir.attachment"]
            .sudo()
            .search([("res_model", "=", self._name), ("res_id", "in", self.ids)])
        )

    @api.autovacuum
    def _gc_retention(self):
        """Delete done reports older than the register's retention (0: keep)."""
        days = int(
            self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM, 0) or 0
        )
        if days <= 0:
            return
        limit = fields.Datetime.now() - timedelta(days=days)
        old = self.sudo().search([("state", "=", "done"), ("create_date", "<", limit)])
        _logger.info("removing %s delivery reports older than %s days", len(old), days)
        old.unlink()
        # and the reports of notices deleted with their entry
        attachments = (
            self.env["ir.attachment"]
            .sudo()
            .search([("res_model", "=", self._name)], order="id")
        )
        kept = set(self.sudo().browse(set(attachments.mapped("res_id"))).exists().ids)
        attachments.filtered(lambda a: a.res_id not in kept).unlink()
