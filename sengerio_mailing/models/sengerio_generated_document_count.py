from odoo import api, fields, models
from odoo.tools import SQL

from .sengerio_generated_document import (
    COUNTED_FIELDS,
    DOCUMENT_TYPE_SELECTION,
    STATE_SELECTION,
)


class SengerioGeneratedDocumentCount(models.Model):
    """How many Generated Documents there are, per company, kind, type, status.

    Kept by PostgreSQL triggers on the register's table, in the same
    transaction as every change, so it is always exact. The triggers only
    insert rows of changes (+n, -n): concurrent transactions never update
    the same row, so sending in parallel causes no serialization failure.
    ``_compact`` (a cron) sums them up again. It lets the list's counts
    (grouped by type or status, the Bounced filter...) cost the same with a
    million entries as with a thousand: see
    ``sengerio.generated.document._read_group`` and ``search_count``.
    """

    _name = "sengerio.generated.document.count"
    _description = "Generated Documents Count"
    _log_access = False

    company_id = fields.Many2one("res.company", "Company", readonly=True)
    res_model = fields.Char("Document Model", readonly=True)
    document_type = fields.Selection(DOCUMENT_TYPE_SELECTION, "Type", readonly=True)
    state = fields.Selection(STATE_SELECTION, "Status", readonly=True)
    count = fields.Integer(readonly=True, aggregator="sum")

    def init(self):
        register = self.env["sengerio.generated.document"]._table
        self.env.cr.execute(
            SQL("DROP INDEX IF EXISTS %s", SQL.identifier(self._table + "_key_index"))
        )
        # One function per kind of statement: each inserts what the
        # statement changed, as rows of changes.
        for event, delta in (
            ("INSERT", "SELECT %(columns)s, 1 AS delta FROM new_rows"),
            ("DELETE", "SELECT %(columns)s, -1 AS delta FROM old_rows"),
            (
                "UPDATE",
                "SELECT %(columns)s, 1 AS delta FROM new_rows "
                "UNION ALL SELECT %(columns)s, -1 FROM old_rows",
            ),
        ):
            function = "%s_%s" % (self._table, event.lower())
            columns = ", ".join(COUNTED_FIELDS)
            self.env.cr.execute(
                SQL(
                    """
                    CREATE OR REPLACE FUNCTION %(function)s() RETURNS trigger
                    LANGUAGE plpgsql AS $body$
                    BEGIN
                        INSERT INTO %(table)s (%(columns)s, count)
                        SELECT %(columns)s, SUM(delta) FROM (%(delta)s) AS d
                        GROUP BY %(columns)s
                        HAVING SUM(delta) <> 0;
                        RETURN NULL;
                    END
                    $body$
                    """,
                    function=SQL.identifier(function),
                    table=SQL.identifier(self._table),
                    columns=SQL(columns),
                    delta=SQL(delta % {"columns": columns}),
                )
            )
            referencing = {
                "INSERT": "NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
                "UPDATE": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
            }[event]
            self.env.cr.execute(
                SQL(
                    "DROP TRIGGER IF EXISTS %s ON %s",
                    SQL.identifier(function),
                    SQL.identifier(register),
                )
            )
            self.env.cr.execute(
                SQL(
                    """
                    CREATE TRIGGER %(trigger)s
                    AFTER %(event)s ON %(register)s
                    REFERENCING %(referencing)s
                    FOR EACH STATEMENT EXECUTE FUNCTION %(function)s()
                    """,
                    trigger=SQL.identifier(function),
                    event=SQL(event),
                    register=SQL.identifier(register),
                    referencing=SQL(referencing),
                    function=SQL.identifier(function),
                )
            )
            # also with session_replication_role = replica (bulk loads,
            # logical replicas): the counts must always follow the register
            self.env.cr.execute(
                SQL(
                    "ALTER TABLE %s ENABLE ALWAYS TRIGGER %s",
                    SQL.identifier(register),
                    SQL.identifier(function),
                )
            )
        self._rebuild()

    @api.model
    def _compact(self):
        """Sum the rows of changes up: one row per company, kind, type, status.

        Rows inserted meanwhile by other transactions are not seen, so not
        deleted: they are summed up next time.
        """
        columns = SQL(", ".join(COUNTED_FIELDS))
        self.env.cr.execute(
            SQL(
                """
                WITH gone AS (DELETE FROM %(table)s RETURNING %(columns)s, count)
                INSERT INTO %(table)s (%(columns)s, count)
                SELECT %(columns)s, SUM(count) FROM gone
                GROUP BY %(columns)s HAVING SUM(count) <> 0
                """,
                table=SQL.identifier(self._table),
                columns=columns,
            )
        )
        self.env.invalidate_all()

    def _rebuild(self):
        """Count the register again from scratch (install, update)."""
        register = self.env["sengerio.generated.document"]
        register.flush_model()
        self.env.cr.execute(SQL("DELETE FROM %s", SQL.identifier(self._table)))
        columns = SQL(", ".join(COUNTED_FIELDS))
        self.env.cr.execute(
            SQL(
                "INSERT INTO %s (%s, count) SELECT %s, COUNT(*) FROM %s GROUP BY %s",
                SQL.identifier(self._table),
                columns,
                columns,
                SQL.identifier(register._table),
                columns,
            )
        )
        self.env.invalidate_all()
