"""Point a database at the mail chain's Dovecot and show its mailboxes.

Runs inside ``odoo-bin shell`` after dev/configure_db.py (which points the
outgoing server at the chain's Postfix), for ``make run MAIL=real``:

- the internal users get a mailbox of the agency domain as their email
  (the hidden copies and bounce notices land there);
- an Incoming Mail Server reads the bounce mailbox over IMAP, and Odoo's
  fetchmail cron polls it every minute;
- one customer per outcome of the customer domain, to send documents to.

Settings come from the environment: IMAP_PORT, ALIAS_DOMAIN,
MAILCHAIN_PASSWORD, AGENCY_DOMAIN, CUSTOMER_DOMAIN. Idempotent.
"""

import os

imap_port = int(os.environ["IMAP_PORT"])
alias_domain = os.environ["ALIAS_DOMAIN"]
password = os.environ["MAILCHAIN_PASSWORD"]
agency = os.environ["AGENCY_DOMAIN"]
customers = os.environ["CUSTOMER_DOMAIN"]
bounce = "bounce@%s" % alias_domain
CUSTOMERS = {
    "ok": "receives the email",
    "unknown": "bounces: 5.1.1, the address does not exist",
    "full": "bounces: 5.2.2, the mailbox is full",
    "deferred": "delayed: a delay note, then bounced when Postfix gives up",
    "refused": "refused by Postfix when Odoo hands the email over",
}

env = env(context=dict(env.context, no_reset_password=True))  # noqa: F821
users = env["res.users"].search([("share", "=", False)])
for user in users:
    if not (user.email or "").endswith("@" + agency):
        user.email = "%s@%s" % (user.login.split("@")[0], agency)

Fetchmail = env["fetchmail.server"].with_context(active_test=False)
server_vals = {
    "name": "Bounces (mail chain)",
    "server_type": "imap",
    "server": "127.0.0.1",
    "port": imap_port,
    "is_ssl": False,
    "user": bounce,
    "password": password,
    "active": True,
}
server = Fetchmail.search([("name", "=", server_vals["name"])], limit=1)
if server:
    server.write(server_vals)
else:
    server = Fetchmail.create(server_vals)
server.button_confirm_login()
env.ref("mail.ir_cron_mail_gateway_action").write(
    {"interval_number": 1, "interval_type": "minutes"}
)

Partner = env["res.partner"]
for prefix in CUSTOMERS:
    email = "%s@%s" % (prefix, customers)
    if not Partner.search([("email", "=", email)], limit=1):
        Partner.create({"name": "Customer %s" % prefix.capitalize(), "email": email})
env.cr.commit()

print("\n  IMAP 127.0.0.1:%s, password %s for every login:" % (imap_port, password))
for user in users:
    print("    %-40s mailbox of %s" % (user.email, user.name))
print("    %-40s the bounce mailbox, fetched by Odoo every minute" % bounce)
print("\n  Customers (contacts of the same names exist in Odoo):")
for prefix, outcome in CUSTOMERS.items():
    print("    %-40s %s" % ("%s@%s" % (prefix, customers), outcome))
print("  Mail to any other domain is refused: nothing leaves this machine.\n")
