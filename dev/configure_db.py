"""Point a database at the local SMTP sink and give it a mail alias domain.

Runs inside ``odoo-bin shell`` (``env`` is provided by the shell). Idempotent:
running it again updates the same records instead of creating new ones.
Settings come from the environment: SMTP_PORT, ALIAS_DOMAIN, and ODOO_URL
(where the server will listen: wkhtmltopdf fetches the reports' styles there).
"""

import os

smtp_port = int(os.environ.get("SMTP_PORT", "2525"))
domain_name = os.environ.get("ALIAS_DOMAIN", "sengerio.localhost")

AliasDomain = env["mail.alias.domain"].sudo()  # noqa: F821
domain = AliasDomain.search([("name", "=", domain_name)], limit=1)
if not domain:
    domain = AliasDomain.create({"name": domain_name})
# No "notifications@" default From: the local sink accepts any sender, so
# emails keep their author's own address in From (Odoo only rewrites From
# when the outgoing server may not send for that address).
domain.default_from = False
env["res.company"].sudo().search([]).write({"alias_domain_id": domain.id})  # noqa: F821

MailServer = env["ir.mail_server"].sudo()  # noqa: F821
server_vals = {
    "name": "Local SMTP sink",
    "smtp_host": "127.0.0.1",
    "smtp_port": smtp_port,
    "smtp_encryption": "none",
    "smtp_authentication": "login",
    "smtp_user": False,
    "smtp_pass": False,
    "sequence": 1,
    "active": True,
}
server = MailServer.with_context(active_test=False).search(
    [("name", "=", server_vals["name"])], limit=1
)
if server:
    server.write(server_vals)
else:
    server = MailServer.create(server_vals)
odoo_url = os.environ.get("ODOO_URL")
if odoo_url:
    env["ir.config_parameter"].sudo().set_param("report.url", odoo_url)  # noqa: F821
env.cr.commit()  # noqa: F821
print(
    "configured: alias domain %s (bounce %s), SMTP server 127.0.0.1:%s"
    % (domain.name, domain.bounce_email, smtp_port)
)
