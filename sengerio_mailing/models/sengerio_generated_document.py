import contextlib
import functools
import logging
from collections import defaultdict
from datetime import timedelta

import psycopg2.extensions

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import SQL, split_every
from odoo.tools.query import Query
from odoo.tools.sql import create_index

from .. import policy

_logger = logging.getLogger(__name__)

RETENTION_PARAM = "sengerio_mailing.retention_days"
MANAGER_GROUP = "sengerio_mailing.sengerio_mailing_group_manager"
# The columns sengerio.generated.document.count keeps the counts by.
COUNTED_FIELDS = ("company_id", "res_model", "document_type", "state")
# What PostgreSQL counts for starting parallel workers while it reads the
# entries a user may see (its default is 1000): see _sengerio_planned.
PARALLEL_SETUP_COST = "10000"

DOCUMENT_TYPE_SELECTION = [
    ("quotation", "Quotation"),
    ("booking_confirmation", "Booking Confirmation"),
    ("invoice", "Invoice"),
    ("credit_note", "Credit Note"),
    ("supplier_document", "Supplier Document"),
    ("other", "Other Document"),
]
STATE_SELECTION = [
    ("outgoing", "Outgoing"),
    ("sent", "Sent"),
    ("exception", "Failed"),
    ("bounced", "Bounced"),
    ("cancel", "Cancelled"),
]


class SengerioGeneratedDocument(models.Model):
    """One document sent by email: what went out, to whom, and how it went.

    Entries outlive Odoo's ``mail.mail`` rows, which are deleted once sent.
    """

    _name = "sengerio.generated.document"
    _description = "Generated Document"
    _order = "date desc, id desc"
    _rec_name = "subject"

    document_type = fields.Selection(
        DOCUMENT_TYPE_SELECTION, "Type", required=True, index=True, readonly=True
    )
    res_model = fields.Char("Document Model", required=True, index=True, readonly=True)
    res_id = fields.Many2oneReference(
        "Document ID", model_field="res_model", index=True, readonly=True
    )
    res_name = fields.Char("Document", readonly=True)
    res_model_name = fields.Char(
        "Document Kind", compute="_compute_res_model_name", compute_sudo=True
    )
    res_deleted = fields.Boolean(
        "Document Deleted", compute="_compute_res_deleted", compute_sudo=True
    )
    mail_message_id = fields.Many2one(
        "mail.message", "Message", ondelete="set null", index="btree_not_null",
        readonly=True,
    )  # fmt: skip
    message_id = fields.Char("Message-Id", index=True, readonly=True)
    subject = fields.Char(readonly=True)
    body_html = fields.Html("Body", sanitize=False, readonly=True)
    author_id = fields.Many2one("res.partner", "Sender", readonly=True, index=True)
    author_email = fields.Char("Sender Email", readonly=True)
    user_id = fields.Many2one(
        "res.users",
        "Responsible User",
        readonly=True,
        index="btree_not_null",
        help="The user who sent the document, or who is responsible for it.",
    )
    sender_email = fields.Char(
        "Chosen Sender",
        readonly=True,
        help="The sender chosen when the document was sent: the hidden copy "
        "and the news of a bounce go there.",
    )
    bcc_email = fields.Char("Hidden Copy To", readonly=True)
    bcc_note = fields.Char("Hidden Copy Note", readonly=True)
    has_bcc = fields.Boolean("Hidden Copy", compute="_compute_has_bcc", store=True)
    recipient_ids = fields.One2many(
        "sengerio.generated.document.recipient", "document_id", "Recipients",
        readonly=True,
    )  # fmt: skip
    recipient_names = fields.Char(
        "To", compute="_compute_recipient_names", store=True, readonly=True
    )
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "sengerio_generated_document_attachment_rel",
        "document_id",
        "attachment_id",
        "Attachments",
        readonly=True,
    )
    notice_ids = fields.One2many(
        "sengerio.bounce.notice",
        "document_id",
        "Delivery Reports",
        readonly=True,
        help="The delivery reports received about this email, and what was done.",
    )
    date = fields.Datetime(required=True, index=True, readonly=True)
    company_id = fields.Many2one(
        "res.company", "Company", index=True, readonly=True,
        default=lambda self: self.env.company,
    )  # fmt: skip
    state = fields.Selection(
        STATE_SELECTION, "Status", compute="_compute_state", store=True, index=True,
        readonly=True,
    )  # fmt: skip
    failure_reason = fields.Text(
        "Failure Reason", compute="_compute_state", store=True, readonly=True
    )
    bounce_rate = fields.Float(
        "Bounce Rate (%)",
        compute="_compute_state",
        store=True,
        aggregator="avg",
        help="100 for a bounced document, else 0: averaged in reports.",
    )

    _sql_constraints = [
        (
            "mail_message_unique",
            "unique(mail_message_id)",
            "A message is registered once.",
        ),
    ]

    def init(self):
        """Indexes that keep the list fast however long the register grows.

        Record rules filter every read on ``company_id`` (and ``res_model``
        for users who are not managers), so both columns are in the index
        the counts use: they are index-only scans, never a sequential scan of
        the table (see ``bench/register_list.py``).
        """
        # Counts: per type or status (grouped lists), of the Bounced and
        # Failed filters (up to the web client's 10,001).
        create_index(
            self._cr,
            "sengerio_generated_document__state_company_model_type_index",
            self._table,
            ["state", "company_id", "res_model", "document_type"],
        )
        # Bounced and Failed filters: the newest first, from a small index of
        # the failed entries only.
        create_index(
            self._cr,
            "sengerio_generated_document__failed_date_index",
            self._table,
            ["state", "date DESC", "id DESC"],
            where="state IN ('bounced', 'exception')",
        )
        # Access: the entries of the documents a user may read, looked up
        # from those documents (see _sengerio_access_condition). It carries
        # what the list filters, groups and sorts them by, so that counting
        # them reads the index alone; the status is part of the key, so
        # that the Bounced and Failed filters only visit the entries they
        # find. (Its first version had the status among the included
        # columns.)
        self.env.cr.execute(
            SQL(
                "DROP INDEX IF EXISTS %s",
                SQL.identifier("sengerio_generated_document__access_index"),
            )
        )
        self.env.cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS %s ON %s (res_model, res_id, state) "
                "INCLUDE (id, company_id, document_type, date)",
                SQL.identifier("sengerio_generated_document__access_state_index"),
                SQL.identifier(self._table),
            )
        )

    # Access ------------------------------------------------------------------

    @api.model
    def _sengerio_sees_all(self):
        """Whether the user sees every entry of their companies."""
        return self.env.su or self.env.user.has_group(MANAGER_GROUP)

    @api.model
    def _sengerio_access_condition(self, domain=()):
        """The entries of the documents the user may read, as a condition.

        A user sees an entry exactly when they may read the document it was
        sent for, under that document's own access rights and record rules:
        for each kind of document in the register, the entries whose document
        is among the ones the user can find. Entries of deleted documents,
        and of models that are gone, are for managers only.

        :param domain: the domain searched; when it only names a few entries
            by id (reading records, checking access), only their documents
            are checked
        :return: an SQL condition on the register's table, or None when the
            user sees every entry
        """
        if self._sengerio_sees_all():
            return None
        ids = self._sengerio_domain_ids(domain)
        if ids is not None:
            readable = self._sengerio_readable(ids)
            if not readable:
                return SQL("FALSE")
            return SQL("%s IN %s", SQL.identifier(self._table, "id"), tuple(readable))
        documents = []
        models_named, res_ids = self._sengerio_domain_documents(domain)
        for model_name in self._sengerio_registered_models():
            Model = self.env.get(model_name)
            if (
                Model is None
                or Model._abstract
                or (models_named is not None and model_name not in models_named)
                or not Model.has_access("read")
            ):
                continue
            query = Model.with_context(active_test=False)._search(
                [("id", "in", res_ids)] if res_ids is not None else []
            )
            documents.append(
                query.subselect(
                    SQL("%s::varchar", model_name),
                    SQL.identifier(query.table, "id"),
                )
            )
        if not documents:
            return SQL("FALSE")
        # The documents the user may read, then their entries through the
        # access index: the cost follows what the user may see, not the size
        # of the register (bench/register_list.py).
        return SQL(
            "(%s, %s) IN (%s)",
            SQL.identifier(self._table, "res_model"),
            SQL.identifier(self._table, "res_id"),
            SQL(" UNION ALL ").join(documents),
        )

    @api.model
    def _sengerio_domain_ids(self, domain):
        """The ids ``domain`` names, if it is ``[('id', 'in', ids)]`` alone."""
        if len(domain) != 1 or not isinstance(domain[0], (list, tuple)):
            return None
        field, operator, value = domain[0]
        if field != "id" or operator != "in" or not isinstance(value, (list, tuple)):
            return None
        if len(value) > 1000 or not all(isinstance(v, int) for v in value):
            return None
        return list(value)

    @api.model
    def _sengerio_domain_documents(self, domain):
        """The models and document ids that a plain AND ``domain`` names.

        The *Sent documents* buttons of a sale order or an invoice ask for
        its own entries: only those documents need checking, not every
        document the user may read.

        :return: (set of model names or None, list of record ids or None)
        """
        models_named = res_ids = None
        if any(not isinstance(leaf, (list, tuple)) for leaf in domain):
            return None, None  # operators: not a plain conjunction
        for leaf in domain:
            if len(leaf) != 3:
                continue
            field, operator, value = leaf
            values = value if isinstance(value, (list, tuple)) else [value]
            if operator not in ("=", "in"):
                continue
            if field == "res_model" and all(isinstance(v, str) for v in values):
                models_named = set(values)
            elif field == "res_id" and all(isinstance(v, int) for v in values):
                res_ids = list(values)
        if models_named is None or len(models_named) != 1:
            res_ids = None  # ids alone would mix the models' ids
        return models_named, res_ids

    @api.model
    def _sengerio_readable(self, ids):
        """The ids of those entries whose document the user may read."""
        if not ids:
            return []
        self.flush_model(["res_model", "res_id"])
        rows = self.env.execute_query(
            SQL(
                "SELECT id, res_model, res_id FROM %s WHERE id IN %s",
                SQL.identifier(self._table),
                tuple(ids),
            )
        )
        targets = defaultdict(lambda: defaultdict(list))
        for entry_id, model_name, res_id in rows:
            targets[model_name][res_id].append(entry_id)
        readable = []
        for model_name, entries in targets.items():
            Model = self.env.get(model_name)
            if Model is None or Model._abstract or not Model.has_access("read"):
                continue
            documents = Model.with_context(active_test=False)._search(
                [("id", "in", [res_id for res_id in entries if res_id])]
            )
            for res_id in documents:
                readable.extend(entries[res_id])
        return readable

    @api.model
    def _sengerio_registered_models(self):
        """The models that have entries, read from the ``res_model`` index."""
        self.flush_model(["res_model"])
        # a loose index scan: one index probe per model, however many entries
        rows = self.env.execute_query(
            SQL(
                """
                WITH RECURSIVE models AS (
                    (SELECT res_model FROM %(table)s ORDER BY res_model LIMIT 1)
                    UNION ALL
                    SELECT (
                        SELECT res_model FROM %(table)s
                        WHERE res_model > models.res_model
                        ORDER BY res_model LIMIT 1
                    )
                    FROM models WHERE models.res_model IS NOT NULL
                )
                SELECT res_model FROM models WHERE res_model IS NOT NULL
                """,
                table=SQL.identifier(self._table),
            )
        )
        return [name for (name,) in rows]

    @contextlib.contextmanager
    def _sengerio_planned(self):
        """Run the register's statements for a user who does not see all.

        Those statements start from the few documents the user may read and
        probe the access index for each (a few hundred rows, a few
        milliseconds). With big documents' tables PostgreSQL would start
        parallel workers for them, which costs more than the whole read on a
        busy server (bench/register_list.py, docs/benchmarks.md). Starting
        workers is priced higher for these statements only, so that they
        still run in parallel where that pays off (a user who may read most
        of a large register), and the setting is restored afterwards.
        """
        if self._sengerio_sees_all():
            yield
            return
        cr = self.env.cr
        cr.execute(
            "SELECT current_setting('parallel_setup_cost'), "
            "set_config('parallel_setup_cost', %s, true)",
            [PARALLEL_SETUP_COST],
        )
        [previous, _new] = cr.fetchone()
        try:
            yield
        finally:
            status = cr._cnx.info.transaction_status
            # an aborted transaction resets it when it rolls back
            if status != psycopg2.extensions.TRANSACTION_STATUS_INERROR:
                cr.execute(
                    "SELECT set_config('parallel_setup_cost', %s, true)", [previous]
                )

    @api.model
    @api.readonly
    def search_fetch(self, domain, field_names, offset=0, limit=None, order=None):
        with self._sengerio_planned():
            return super().search_fetch(
                domain, field_names, offset=offset, limit=limit, order=order
            )

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        """Only the entries of documents the user may read."""
        self.browse().check_access("read")
        access = self._sengerio_access_condition(domain)
        query = super()._search(domain, offset=offset, limit=limit, order=order)
        if access is not None:
            query.add_where(access)
        return query

    def _check_access(self, operation):
        """Reading an entry needs read access to its document."""
        result = super()._check_access(operation)
        if not self._ids or self._sengerio_sees_all():
            return result
        entries = self - result[0] if result else self
        if not entries:
            return result
        allowed = set(entries._search([("id", "in", entries.ids)]))
        forbidden = entries.filtered(lambda entry: entry.id not in allowed)
        if not forbidden:
            return result
        if result:
            forbidden |= result[0]
        return forbidden, functools.partial(
            self.env["ir.rule"]._make_access_error, operation, forbidden
        )

    @api.model
    def _read_group(
        self, domain, groupby=(), aggregates=(), having=(), offset=0, limit=None,
        order=None,
    ):  # fmt: skip
        """Counts by type, status, kind or company come from the kept counts.

        Grouped lists then cost the same with a million entries as with a
        thousand; anything else is read from the register itself.
        """
        self.browse().check_access("read")
        counted = self._sengerio_counted_domain(domain)
        count_order = self._sengerio_count_order(order, groupby)
        if (
            counted is None
            or count_order is False
            or having
            or not set(groupby) <= set(COUNTED_FIELDS)
            or any(aggregate != "__count" for aggregate in aggregates)
        ):
            with self._sengerio_planned():
                return super()._read_group(
                    domain, groupby, aggregates, having, offset, limit, order
                )
        self.flush_model(COUNTED_FIELDS)
        rows = (
            self.env["sengerio.generated.document.count"]
            .sudo()
            ._read_group(
                counted,
                groupby,
                ["count:sum"] * len(aggregates),
                having=[("count:sum", ">", 0)],
                offset=offset,
                limit=limit,
                order=count_order,
            )
        )
        return [
            tuple(
                value.with_env(self.env)
                if isinstance(value, models.BaseModel)
                else value
                for value in row
            )
            for row in rows
        ]

    @api.model
    def search_count(self, domain, limit=None):
        """Count from the kept counts when the domain allows it."""
        self.browse().check_access("read")
        counted = self._sengerio_counted_domain(domain)
        if counted is None:
            with self._sengerio_planned():
                return super().search_count(domain, limit=limit)
        self.flush_model(COUNTED_FIELDS)
        [(total,)] = (
            self.env["sengerio.generated.document.count"]
            .sudo()
            ._read_group(counted, [], ["count:sum"])
        )
        total = total or 0
        return min(total, limit) if limit else total

    @api.model
    def _sengerio_counted_domain(self, domain):
        """``domain`` and the record rules, if the kept counts can answer it.

        The counts answer only for users who see every entry of their
        companies: anyone else sees the entries of the documents they may
        read, which the counts cannot tell.

        :return: a domain on ``sengerio.generated.document.count``, or None
            when it names anything the counts are not kept by
        """
        if not self._sengerio_sees_all():
            return None
        rules = [] if self.env.su else self.env["ir.rule"]._compute_domain(self._name)
        full = expression.AND([list(domain or []), rules or []])
        for leaf in full:
            if isinstance(leaf, str) or leaf in (
                expression.TRUE_LEAF,
                expression.FALSE_LEAF,
            ):
                continue
            if not (
                isinstance(leaf, (list, tuple))
                and len(leaf) == 3
                and leaf[0] in COUNTED_FIELDS
                and not isinstance(leaf[2], (models.BaseModel, Query))
            ):
                return None
        return full

    @api.model
    def _sengerio_count_order(self, order, groupby):
        """``order`` for the kept counts, or False if they cannot follow it."""
        if not order:
            return order
        terms = []
        for term in order.split(","):
            name, *rest = term.split()
            if name == "__count":
                name = "count:sum"
            elif name not in groupby:
                return False
            terms.append(" ".join([name, *rest]))
        return ", ".join(terms)

    @api.depends("res_model")
    def _compute_res_model_name(self):
        models_by_name = {}
        for entry in self:
            name = entry.res_model
            if name not in models_by_name:
                models_by_name[name] = self.env["ir.model"]._get(name).name or name
            entry.res_model_name = models_by_name[name]

    @api.depends("res_model", "res_id")
    def _compute_res_deleted(self):
        for entry in self:
            model = self.env.get(entry.res_model)
            entry.res_deleted = model is None or not model.browse(entry.res_id).exists()

    @api.depends("bcc_email")
    def _compute_has_bcc(self):
        for entry in self:
            entry.has_bcc = bool(entry.bcc_email)

    @api.depends("recipient_ids.partner_id", "recipient_ids.email")
    def _compute_recipient_names(self):
        for entry in self:
            entry.recipient_names = ", ".join(
                r.partner_id.name or r.email or "" for r in entry.recipient_ids
            )

    @api.depends(
        "recipient_ids.state",
        "recipient_ids.failure_reason",
        "recipient_ids.email",
    )
    def _compute_state(self):
        for entry in self:
            recipients = entry.recipient_ids
            entry.state = policy.worst_state(recipients.mapped("state")) or "outgoing"
            entry.bounce_rate = 100.0 if entry.state == "bounced" else 0.0
            entry.failure_reason = (
                "\n".join(
                    "%s: %s" % (r.email or r.partner_id.name, r.failure_reason)
                    for r in recipients
                    if r.failure_reason
                    and r.state in ("exception", "bounced", "cancel")
                )
                or False
            )

    def _compute_display_name(self):
        for entry in self:
            entry.display_name = (
                entry.subject or entry.res_name or self.env._("Document")
            )

    # Actions ---------------------------------------------------------------

    def action_open_document(self):
        self.ensure_one()
        if self.res_deleted:
            raise UserError(self.env._("The document %s was deleted.", self.res_name))
        return {
            "type": "ir.actions.act_window",
            "res_model": self.res_model,
            "res_id": self.res_id,
            "view_mode": "form",
            "views": [(False, "form")],
        }

    def action_resend(self):
        """Resend to failed recipients through Odoo's own resend wizard."""
        self.ensure_one()
        if self.state not in ("exception", "bounced"):
            raise UserError(
                self.env._("Only failed or bounced documents can be resent.")
            )
        message = self.mail_message_id
        failed = message.notification_ids.filtered(
            lambda n: (
                n.notification_type == "email"
                and n.notification_status in ("exception", "bounce")
            )
        )
        if failed:
            action = self.env["ir.actions.actions"]._for_xml_id(
                "mail.mail_resend_message_action"
            )
            action["context"] = {"mail_message_to_resend": message.id}
            return action
        mails = (
            self.env["mail.mail"]
            .sudo()
            .browse(self.recipient_ids.mapped("mail_mail_id"))
            .exists()
            .filtered(lambda m: m.state == "exception")
        )
        if not mails:
            raise UserError(
                self.env._(
                    "Odoo no longer has this email: send the document again from it."
                )
            )
        mails.action_retry()
        return True

    # Business methods ------------------------------------------------------

    @api.model
    def _register_message(
        self, message, mails=None, new=False, record=None, with_recipients=True
    ):
        """Create the entry of a document message, or add its new recipients.

        :param message: the posted ``mail.message`` (document type set)
        :param mails: ``mail.mail`` sent without notifications (mass mode)
        :param new: the message was just posted: it has no entry yet
        :param record: the document, when the caller has it
        :param with_recipients: add lines for the message's notifications
        """
        message = message.sudo()
        entry = self.sudo()
        if not new:
            entry = entry.search([("mail_message_id", "=", message.id)], limit=1)
        if not entry:
            entry = self.sudo().create(self._prepare_entry_values(message, record))
            new = True
        if (with_recipients and message.notification_ids) or mails:
            entry._add_recipients(
                message.notification_ids, mails or self.env["mail.mail"], new=new
            )
        return entry

    @api.model
    def _prepare_entry_values(self, message, record=None):
        """Values of the entry of ``message``, sent from ``record`` if given."""
        if record is None:
            record = self.env[message.model].browse(message.res_id).exists()
        company = (
            record._sengerio_company()
            if hasattr(record, "_sengerio_company") and record
            else message.record_company_id or self.env.company
        )
        sender_user = message.author_id.user_ids[:1]
        if not sender_user or sender_user.share or sender_user._is_superuser():
            responsible = getattr(record, "_sengerio_responsible_user", None)
            sender_user = responsible() if responsible and record else sender_user
        return {
            "document_type": message.sengerio_document_type,
            "res_model": message.model,
            "res_id": message.res_id,
            "res_name": message.record_name or record.display_name,
            "mail_message_id": message.id,
            "message_id": message.message_id,
            "subject": message.subject or message.record_name,
            "body_html": message.body,
            "author_id": message.author_id.id,
            "author_email": message.email_from,
            "user_id": sender_user.id,
            "sender_email": message.sengerio_sender_email,
            "bcc_email": message.sengerio_bcc_email,
            "bcc_note": message.sengerio_bcc_note,
            "attachment_ids": [(6, 0, message.attachment_ids.ids)],
            "date": message.date or fields.Datetime.now(),
            "company_id": company.id,
        }

    def _add_recipients(self, notifications, mails, new=False):
        """Add lines for these notifications and mass-mode emails.

        :param new: the entry was just created: it has no lines yet
        """
        self.ensure_one()
        known_notifs, known_mails = set(), set()
        if not new:
            known_notifs = set(self.recipient_ids.notification_id.ids)
            known_mails = set(self.recipient_ids.mapped("mail_mail_id"))
        Recipient = self.env["sengerio.generated.document.recipient"].sudo()
        values = [
            Recipient._values_from_notification(notif)
            for notif in notifications
            if notif.notification_type == "email" and notif.id not in known_notifs
        ]
        for mail in mails:
            if mail.id not in known_mails:
                values += Recipient._values_from_mail(mail)
        for vals in values:
            vals["document_id"] = self.id
        return Recipient.create(values)

    @api.model
    def _note_bcc(self, notes):
        """Note what happened to hidden copies on their entries.

        :param notes: ``{mail.message id: note}``
        """
        entries = self.sudo().search([("mail_message_id", "in", list(notes))])
        for entry in entries:
            entry.bcc_note = notes[entry.mail_message_id.id]

    @api.model
    def _backfill(self, batch_size=500):
        """Register the documents Odoo sent by email before the addon existed.

        A past send is a message in the "Discussions" subtype of a business
        record, with attachments (the document), that went out by email. Its
        type is read from the record as it is now.
        """
        Message = self.env["mail.message"].sudo()
        messages = Message.search(
            [
                ("model", "!=", False),
                ("res_id", "!=", 0),
                ("message_type", "in", ("comment", "notification", "email_outgoing")),
                ("subtype_id", "=", self.env.ref("mail.mt_comment").id),
                ("attachment_ids", "!=", False),
                ("sengerio_document_type", "=", False),
                "|",
                ("notification_ids.notification_type", "=", "email"),
                ("message_type", "=", "email_outgoing"),
            ],
            order="id",
        )
        note = self.env._("Sent before Sengerio Mailing was installed.")
        count = 0
        for batch_ids in split_every(batch_size, messages.ids):
            for message in Message.browse(batch_ids):
                record = self.env.get(message.model)
                record = (
                    record.browse(message.res_id).exists()
                    if record is not None
                    else None
                )
                document_type = (
                    record._sengerio_past_document_type()
                    if record and hasattr(record, "_sengerio_past_document_type")
                    else "other"
                )
                message.write(
                    {"sengerio_document_type": document_type, "sengerio_bcc_note": note}
                )
                mails = (
                    self.env["mail.mail"]
                    .sudo()
                    .search([("mail_message_id", "=", message.id)])
                )
                entry = self._register_message(message, mails=mails)
                if not entry.recipient_ids:
                    entry._add_partners_as_sent(message.partner_ids)
                count += 1
        _logger.info("Generated Documents: %s past document emails registered", count)
        return count

    def _add_partners_as_sent(self, partners):
        """Past sends whose emails Odoo deleted: their recipients got them."""
        Recipient = self.env["sengerio.generated.document.recipient"].sudo()
        return Recipient.create(
            [
                {
                    "document_id": self.id,
                    "partner_id": partner.id,
                    "email": partner.email_normalized or partner.email,
                    "state": "sent",
                }
                for partner in partners
            ]
        )

    # Bounces ---------------------------------------------------------------

    def _document_record(self):
        self.ensure_one()
        model = self.env.get(self.res_model)
        return model.browse(self.res_id).exists() if model is not None else None

    def _sender_email(self):
        """Whoever got the hidden copy, else the sender chosen at send time.

        Entries from before the sender was stored choose it by the rules.
        """
        self.ensure_one()
        if self.bcc_email or self.sender_email:
            return self.bcc_email or self.sender_email
        record = self._document_record()
        responsible = (
            record._sengerio_responsible_user().partner_id
            if record is not None and hasattr(record, "_sengerio_responsible_user")
            else self.user_id.partner_id
        )
        Thread = self.env["mail.thread"]
        _sender, email, _reason = policy.choose_bcc_recipient(
            Thread._sengerio_sender(self.author_id),
            Thread._sengerio_sender(responsible),
            [],
        )
        return email

    @api.autovacuum
    def _gc_retention(self):
        """Delete entries older than the retention set in Settings (0: keep)."""
        days = int(
            self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM, 0) or 0
        )
        if days <= 0:
            return
        limit = fields.Datetime.now() - timedelta(days=days)
        old = self.sudo().search([("date", "<", limit)])
        _logger.info(
            "removing %s generated documents older than %s days", len(old), days
        )
        old.unlink()
