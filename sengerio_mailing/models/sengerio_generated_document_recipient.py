import functools
import logging
import random
import threading
import time

import psycopg2

from odoo import SUPERUSER_ID, api, fields, models
from odoo.service.model import PG_CONCURRENCY_ERRORS_TO_RETRY
from odoo.tools import SQL

from .. import bounce, policy
from .sengerio_generated_document import STATE_SELECTION

_logger = logging.getLogger(__name__)

# what _status_values() writes
STATUS_FIELDS = ["state", "failure_type", "failure_reason"]
# the lines to sync once the transaction is committed
SYNC_KEY = "sengerio_mailing.register_sync"
SYNC_ATTEMPTS = 5


def _sync_at_once():
    """Tests never commit: there, the register follows Odoo at once."""
    return getattr(threading.current_thread(), "testing", False)


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

    # The register follows Odoo ---------------------------------------------

    @api.model
    def _sync_later(self, notification_ids=(), mail_statuses=None, bcc_notes=None):
        """Have the lines follow these notifications and emails.

        Odoo's notification is the one source of a line's status, or the
        email itself in mass mode (no notification); then the delivery
        report (see the bounce notice cron). The lines follow when the
        transaction commits, and whatever the register writes then can never
        roll back an email the SMTP server already accepted:

        - an entry whose every line follows here (one email, nothing shared)
          is written just before the commit, in a savepoint: if another
          transaction holds it, it waits for after the commit instead;
        - an entry shared by sibling emails, which two processes may send at
          once, is written after the commit, in a transaction of its own.

        :param notification_ids: ids of ``mail.notification`` that changed,
            or ``{id: (status, failure type, reason, mail id)}`` as written,
            the mail id only when the write moved it to another email
        :param mail_statuses: ``{mail id: (state, failure type, reason)}`` of
            mass-mode emails, which Odoo may delete once sent
        :param bcc_notes: ``{mail.message id: note}`` about hidden copies
        """
        if not (notification_ids or mail_statuses or bcc_notes):
            return
        if _sync_at_once():
            self.sudo()._sync(notification_ids, mail_statuses or {}, bcc_notes or {})
            return
        self._pending(self.env.cr.precommit, self._sync_before_commit, (
            notification_ids, mail_statuses, bcc_notes
        ))  # fmt: skip

    def _pending(self, hooks, callback, changes):
        """Add ``changes`` to what ``callback`` syncs when ``hooks`` run."""
        pending = hooks.data.get(SYNC_KEY)
        if pending is None:
            pending = hooks.data[SYNC_KEY] = ({}, {}, {})
            hooks.add(functools.partial(callback, pending))
        notification_ids, mail_statuses, bcc_notes = changes
        if not isinstance(notification_ids, dict):
            notification_ids = dict.fromkeys(notification_ids or ())
        for notification_id, written in notification_ids.items():
            earlier = pending[0].get(notification_id)
            if written and earlier and written[3] is None:
                # moved to another email earlier in this transaction (a
                # resend, then its send): the line follows it there
                written = (*written[:3], earlier[3])
            pending[0][notification_id] = written
        pending[1].update(mail_statuses or {})
        pending[2].update(bcc_notes or {})

    def _sync_before_commit(self, pending):
        """Sync the entries nothing else shares; leave the others for later."""
        written, mail_statuses, bcc_notes = pending
        notification_ids = list(written)
        later = self.sudo().browse()
        try:
            with self.env.cr.savepoint(flush=False):
                siblings = self.sudo()._entries_lines(notification_ids, mail_statuses)
                lines = siblings.filtered(
                    lambda line: (
                        line.notification_id.id in written
                        or (
                            not line.notification_id
                            and line.mail_mail_id in mail_statuses
                        )
                    )
                )
                # entries with lines of other emails: not ours to write now
                shared = {line.document_id.id for line in siblings - lines}
                later = lines.filtered(lambda line: line.document_id.id in shared)
                # the entries' lines are all known: spare reading them again
                entries = siblings.document_id
                by_entry = {entry.id: [] for entry in entries}
                for line in siblings:
                    by_entry[line.document_id.id].append(line.id)
                self.env.cache.insert_missing(
                    entries,
                    entries._fields["recipient_ids"],
                    [tuple(by_entry[entry.id]) for entry in entries],
                )
                (lines - later)._follow(mail_statuses, written)
                self.env.flush_all()
        except Exception as error:
            self.env.clear()
            later = None
            retry = (
                isinstance(error, psycopg2.OperationalError)
                and error.pgcode in PG_CONCURRENCY_ERRORS_TO_RETRY
            )
            (_logger.info if retry else _logger.exception)(
                "Generated Documents: register synced after the commit (%s)", error
            )
        if later is None:
            changes = (notification_ids, mail_statuses, bcc_notes)
        else:
            changes = (
                later.notification_id.ids,
                {
                    mail_id: mail_statuses[mail_id]
                    for mail_id in later.filtered(
                        lambda line: not line.notification_id
                    ).mapped("mail_mail_id")
                },
                bcc_notes,
            )
        if any(changes):
            self._pending(self.env.cr.postcommit, self._sync_after_commit, changes)

    def _sync_after_commit(self, pending):
        """Sync in a new transaction; retry when a sibling's sync races it."""
        notification_ids, mail_statuses, bcc_notes = list(pending[0]), *pending[1:]
        for attempt in range(1, SYNC_ATTEMPTS + 1):
            try:
                with self.pool.cursor() as cr:
                    # each statement sees what siblings committed before it,
                    # once the entry is locked (see _sync)
                    cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    env[self._name]._sync(
                        notification_ids, mail_statuses, bcc_notes, lock=True
                    )
                return
            except Exception as error:
                retry = (
                    isinstance(error, psycopg2.OperationalError)
                    and error.pgcode in PG_CONCURRENCY_ERRORS_TO_RETRY
                )
                if not retry or attempt == SYNC_ATTEMPTS:
                    # never let the register break the queue that committed
                    _logger.exception(
                        "Generated Documents: status of notifications %s and "
                        "emails %s not recorded",
                        notification_ids,
                        list(mail_statuses),
                    )
                    return
                time.sleep(random.uniform(0.01, 0.05) * attempt)

    @api.model
    def _lines_condition(self, notification_ids, mail_statuses):
        """The lines of these notifications, and of these mass-mode emails."""
        return SQL(
            "%(notification)s = ANY(%(notifications)s) "
            "OR (%(notification)s IS NULL AND %(mail)s = ANY(%(mails)s))",
            notification=SQL.identifier(self._table, "notification_id"),
            mail=SQL.identifier(self._table, "mail_mail_id"),
            notifications=list(notification_ids),
            mails=list(mail_statuses),
        )

    @api.model
    def _entries_lines(self, notification_ids, mail_statuses):
        """Every line of the entries of these notifications and emails.

        One plain query per email sent, just before its commit: the lines'
        fields go straight into the cache, as a search then a read would
        put them, without the two access-checked searches a domain on the
        entry costs.
        """
        names = ["document_id", "notification_id", "mail_mail_id", *STATUS_FIELDS]
        self.flush_model(names)
        rows = self.env.execute_query(
            SQL(
                """
                SELECT id, %(columns)s FROM %(table)s
                WHERE document_id IN (SELECT document_id FROM %(table)s WHERE %(lines)s)
                ORDER BY id
                """,
                columns=SQL(", ").join(SQL.identifier(name) for name in names),
                table=SQL.identifier(self._table),
                lines=self._lines_condition(notification_ids, mail_statuses),
            )
        )
        lines = self.browse(row[0] for row in rows)
        for index, name in enumerate(names, 1):
            self.env.cache.insert_missing(
                lines, self._fields[name], [row[index] for row in rows]
            )
        return lines

    @api.model
    def _lines_to_sync(self, notification_ids, mail_statuses):
        return self.search_fetch(
            [
                (
                    "id",
                    "in",
                    SQL(
                        "(SELECT id FROM %s WHERE %s)",
                        SQL.identifier(self._table),
                        self._lines_condition(notification_ids, mail_statuses),
                    ),
                )
            ],
            ["document_id", "notification_id", "mail_mail_id", *STATUS_FIELDS],
        )

    @api.model
    def _sync(self, notification_ids, mail_statuses, bcc_notes=None, lock=False):
        """Update the lines of these notifications and mass-mode emails.

        :param bcc_notes: ``{mail.message id: note}`` for their entries
        :param lock: lock the entries first, so that the syncs of sibling
            emails take turns and the last one sees every line (an entry
            shows its worst line: two syncs reading each other's lines as
            they were would both miss the other's change)
        """
        lines = self._lines_to_sync(notification_ids, mail_statuses)
        if lock and lines:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM %s WHERE id IN %s ORDER BY id FOR NO KEY UPDATE",
                    SQL.identifier(lines.document_id._table),
                    tuple(lines.document_id.ids),
                )
            )
            # what siblings committed while this transaction waited
            lines.invalidate_recordset()
        lines._follow(mail_statuses)
        if bcc_notes:
            self.env["sengerio.generated.document"]._note_bcc(bcc_notes)
        return lines

    def _follow(self, mail_statuses, written=None):
        """Follow the notification, or the mass-mode email's status.

        :param written: ``{notification id: (status, failure type, reason,
            mail id)}`` as this transaction wrote them, when known
        """
        for line in self:
            if line.notification_id:
                line._sync_from_notifications(
                    (written or {}).get(line.notification_id.id)
                )
            else:
                state, failure_type, failure_reason = mail_statuses[line.mail_mail_id]
                line._write_changed(
                    self._status_values(
                        policy.MAIL_STATES.get(state), failure_type, failure_reason
                    )
                )

    def _sync_from_notifications(self, written=None):
        """Follow the notification: its status and the email it is sent by.

        :param written: ``(status, failure type, reason, mail id)`` of the
            notification as just written, to spare reading it again; the
            mail id is None when the write left the email as it was
        """
        for line in self:
            notif = line.notification_id
            status, failure_type, failure_reason, mail_id = written or (
                notif.notification_status,
                notif.failure_type,
                notif.failure_reason,
                notif.mail_mail_id.id,
            )
            values = self._status_values(
                policy.NOTIFICATION_STATES.get(status), failure_type, failure_reason
            )
            if status == "bounce" and line.state == "bounced":
                # the delivery report already told more than Odoo's "bounced"
                values = {}
            if mail_id:
                # a resend moves the notification to a new email
                values["mail_mail_id"] = mail_id
            line._write_changed(values)

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
