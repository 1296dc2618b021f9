import base64
import json
import logging

from odoo import api, fields, models
from odoo.tools import SQL, exception_to_unicode

from .. import bounce

_logger = logging.getLogger(__name__)

BATCH_SIZE = 100


class SengerioBounceNotice(models.Model):
    """A bounce of a generated document, queued by the mail gateway.

    The gateway only reads the bounce and queues it here with its delivery
    report, so that it stays about as fast as Odoo's own. The cron (every
    minute) then marks the bounced recipients in Generated Documents and
    writes the chatter note, the activity and the email to the sender with
    the report attached, or the note of a delayed delivery.
    """

    _name = "sengerio.bounce.notice"
    _description = "Bounce Notice to Send"
    _order = "id"

    document_id = fields.Many2one(
        "sengerio.generated.document", required=True, ondelete="cascade", index=True
    )
    kind = fields.Selection(
        [("failed", "Bounced"), ("delayed", "Delayed")], required=True
    )
    recipients = fields.Json(
        "Reported Recipients",
        help="What the delivery report says of each failed or delayed "
        "recipient: [[email, status, diagnostic]].",
    )
    recipients_text = fields.Text("Recipients", compute="_compute_recipients_text")
    # in the filestore: a returned message with its PDF weighs 100 KB or
    # more, which the database would write to its log before each commit
    report = fields.Binary("Delivery Report", attachment=True)
    report_filename = fields.Char(compute="_compute_report_filename")
    state = fields.Selection(
        [("pending", "Pending"), ("error", "Error")],
        default="pending",
        required=True,
        index=True,
    )
    error = fields.Text()

    @api.depends("recipients")
    def _compute_recipients_text(self):
        for notice in self:
            notice.recipients_text = "\n".join(
                " ".join(filter(None, [r.email + ":", r.status, r.diagnostic]))
                for r in notice._recipient_reports()
            )

    def _compute_report_filename(self):
        for notice in self:
            notice.report_filename = "delivery-report-%s.eml" % notice.id

    def action_retry(self):
        """Send these notices again with the next run of the cron."""
        self.filtered(lambda n: n.state == "error").write(
            {"state": "pending", "error": False}
        )
        self.env.ref("sengerio_mailing.ir_cron_bounce_notices")._trigger()
        return True

    @api.model
    def _queue(self, document, kind, recipients, report=None):
        """Queue a bounce of ``document`` for the cron (every minute).

        This runs in the mail gateway for every bounce: the row is inserted
        in SQL, as the ORM's create (defaults, access, cache) would cost as
        much as the rest of the gateway's work.

        :param recipients: the :class:`~..bounce.RecipientReport` of the
            failed or delayed recipients
        :param report: the bounce's bytes, for the email to the sender
        """
        now = self.env.cr.now()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO sengerio_bounce_notice
                    (document_id, kind, recipients, state,
                     create_uid, create_date, write_uid, write_date)
                VALUES (%s, %s, %s, 'pending', %s, %s, %s, %s)
                RETURNING id
                """,
                document.id,
                kind,
                json.dumps([[r.email, r.status, r.diagnostic] for r in recipients]),
                self.env.uid,
                now,
                self.env.uid,
                now,
            )
        )
        notice = self.browse(self.env.cr.fetchone()[0])
        if report:
            notice._store_report(report)
        return notice

    def _store_report(self, report):
        """Keep the report as the ``report`` field does: an attachment.

        The file is written (or the bytes kept, when attachments live in the
        database) by ir.attachment's own helper, and the row is inserted in
        SQL: the ORM's create costs about twice as much, for an attachment
        that only the cron reads and that goes with the notice.
        """
        self.ensure_one()
        mimetype = "message/rfc822"
        data = (
            self.env["ir.attachment"].sudo()._get_datas_related_values(report, mimetype)
        )
        now = self.env.cr.now()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO ir_attachment
                    (name, res_model, res_field, res_id, mimetype, type,
                     store_fname, db_datas, file_size, checksum, index_content,
                     public, create_uid, create_date, write_uid, write_date)
                VALUES (%s, %s, 'report', %s, %s, 'binary', %s, %s, %s, %s, %s,
                        FALSE, %s, %s, %s, %s)
                """,
                "delivery-report-%s.eml" % self.id,
                self._name,
                self.id,
                mimetype,
                data["store_fname"] or None,
                data["db_datas"] or None,
                data["file_size"],
                data["checksum"],
                data["index_content"] or None,
                self.env.uid,
                now,
                self.env.uid,
                now,
            )
        )

    @api.model
    def _cron_send_notices(self, batch_size=BATCH_SIZE):
        """Record the bounces the gateway queued and tell senders and teams."""
        notices = self.sudo().search([("state", "=", "pending")], limit=batch_size)
        for notice in notices:
            try:
                with self.env.cr.savepoint():
                    notice._send()
            except Exception as error:  # one broken notice must not block the rest
                _logger.exception(
                    "Generated Documents: bounce notice %s for %s not sent",
                    notice.id,
                    notice.document_id.message_id,
                )
                notice.write({"state": "error", "error": exception_to_unicode(error)})
        (notices.filtered(lambda n: n.state == "pending")).unlink()
        remaining = self.sudo().search_count([("state", "=", "pending")])
        self.env["ir.cron"]._notify_progress(done=len(notices), remaining=remaining)
        return notices

    def _recipient_reports(self):
        return [
            bounce.RecipientReport(email, self.kind, status or "", diagnostic or "")
            for email, status, diagnostic in self.recipients or []
        ]

    def _send(self):
        self.ensure_one()
        entry = self.document_id
        if self.kind == "delayed":
            entry._bounce_note_delay(self._recipient_reports())
            return
        lines = entry._bounce_record_failure(self._recipient_reports())
        if lines:
            report = base64.b64decode(self.report) if self.report else b""
            entry._bounce_notify(lines, report)
