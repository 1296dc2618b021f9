import base64
import json
import logging

from odoo import api, fields, models
from odoo.tools import SQL, exception_to_unicode

_logger = logging.getLogger(__name__)

BATCH_SIZE = 100


class SengerioBounceNotice(models.Model):
    """A bounce recorded by the mail gateway, still to be told to people.

    The gateway only records the bounce on its Generated Documents entry, so
    that it stays as fast as Odoo's own. The cron then writes the chatter
    note, the activity and the email to the sender with the delivery report
    attached, or the note of a delayed delivery.
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
    line_ids = fields.Json(
        "Bounced Recipients", help="The ids of the bounced recipient lines."
    )
    delayed = fields.Json(help="The delayed recipients: [[email, diagnostic]].")
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

    def _compute_report_filename(self):
        for notice in self:
            notice.report_filename = "delivery-report-%s.eml" % notice.id

    def action_retry(self):
        """Send these notices again with the next run of the cron."""
        self.write({"state": "pending", "error": False})
        self.env.ref("sengerio_mailing.ir_cron_bounce_notices")._trigger()
        return True

    @api.model
    def _queue(self, document, kind, lines=None, delayed=None, report=None):
        """Queue what to tell about a bounce, for the cron (every minute).

        This runs in the mail gateway for every bounce: the row is inserted
        in SQL, as the ORM's create (defaults, access, cache) would cost as
        much as the rest of the recording.
        """
        now = self.env.cr.now()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO sengerio_bounce_notice
                    (document_id, kind, line_ids, delayed, state,
                     create_uid, create_date, write_uid, write_date)
                VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s, %s)
                RETURNING id
                """,
                document.id,
                kind,
                json.dumps(lines.ids) if lines else None,
                json.dumps(delayed) if delayed else None,
                self.env.uid,
                now,
                self.env.uid,
                now,
            )
        )
        notice = self.browse(self.env.cr.fetchone()[0])
        if report:
            # what the ORM does for a Binary field stored as an attachment
            self.env["ir.attachment"].sudo().create(
                {
                    "name": "delivery-report-%s.eml" % notice.id,
                    "raw": report,
                    "mimetype": "message/rfc822",
                    "res_model": self._name,
                    "res_field": "report",
                    "res_id": notice.id,
                }
            )
        return notice

    @api.model
    def _cron_send_notices(self, batch_size=BATCH_SIZE):
        """Tell senders and teams about the bounces the gateway recorded."""
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

    def _lines(self):
        """The bounced recipient lines still in the register."""
        return (
            self.env["sengerio.generated.document.recipient"]
            .browse(self.line_ids or [])
            .exists()
        )

    def _send(self):
        self.ensure_one()
        entry = self.document_id
        if self.kind == "delayed":
            entry._bounce_note_delay(self.delayed or [])
        else:
            report = base64.b64decode(self.report) if self.report else b""
            entry._bounce_notify(self._lines(), report)
