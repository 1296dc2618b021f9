from odoo.tools import SQL

from .models.account_move import INVOICE_USER_INDEX


def post_init_hook(env):
    """Backfill Generated Documents with the documents sent before install."""
    env["sengerio.generated.document"]._backfill()


def uninstall_hook(env):
    """Drop what the addon added to Odoo's own tables."""
    env.cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(INVOICE_USER_INDEX)))
