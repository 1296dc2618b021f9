"""End-to-end fixtures: a real Odoo server and a real aiosmtpd sink.

The database comes from ``SENGERIO_E2E_DB`` (``make test`` passes the one its
Odoo tests just used); without it, a fresh one is created with the addon and
demo data, and dropped at the end.
"""

import os
import signal
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from types import SimpleNamespace

import databases
import pytest
from harness import ROOT, OdooServer, configure_db, run_odoo

sys.path.insert(0, str(ROOT / "dev"))
from smtp_sink import SmtpSink  # noqa: E402

ALIAS_DOMAIN = "sengerio.test"


def _interrupt(signum, frame):
    raise KeyboardInterrupt("terminated")


# A terminated run still tears down its fixtures: Odoo stops, ports free up.
signal.signal(signal.SIGTERM, _interrupt)
VAR = ROOT / "var" / "e2e"


@pytest.fixture(scope="session")
def odoo_db():
    db = os.environ.get("SENGERIO_E2E_DB")
    if db:
        yield db
        return
    db = "sengerio_e2e_%s" % os.getpid()
    VAR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    run_odoo(
        "-d", db, "-i", "sengerio_mailing", "--stop-after-init", "--no-http",
        log_path=VAR / "install.log",
    )  # fmt: skip
    yield db
    subprocess.run(["dropdb", "--if-exists", db], check=False)


# Databases of the fault and upgrade tests: SENGERIO_E2E_DB_PREFIX_<pid>_...;
# with SENGERIO_E2E_KEEP=1 the templates lose the pid, are kept and reused.
DB_PREFIX = os.environ.get("SENGERIO_E2E_DB_PREFIX", "sengerio_e2e")
KEEP_TEMPLATES = bool(os.environ.get("SENGERIO_E2E_KEEP"))
QUEUED_DOCUMENTS = 25


def db_name(suffix):
    """A database name of this test session."""
    if KEEP_TEMPLATES:
        return "%s_%s" % (DB_PREFIX, suffix)
    return "%s_%s_%s" % (DB_PREFIX, os.getpid(), suffix)


@pytest.fixture(scope="session")
def prepared_dbs(tmp_path_factory):
    """Two templates, made once: ``base`` and ``queued``.

    ``base``: the base modules (no demo data), alias domain and outgoing
    server, three salespeople (``agent1``...), customers, vendors and
    quotations, sale orders, invoices, credit notes, RFQs and purchase
    orders, not sent yet. ``queued``: a copy of it with sengerio_mailing
    installed and one document email per document queued (outgoing), as the
    Send buttons do with ``mail_notify_force_send=False``.
    """
    base, queued = db_name("tpl_base"), db_name("tpl_queued")
    VAR.mkdir(parents=True, exist_ok=True)
    log = VAR / "prepare.log"
    if not (KEEP_TEMPLATES and databases.db_exists(queued)):
        pdf_dir = tmp_path_factory.mktemp("pdf")
        databases.drop_db(base)
        run_odoo(
            "-d", base, "-i", databases.BASE_MODULES, "--without-demo=all",
            "--stop-after-init", "--no-http", "--log-level=warn",
            log_path=log,
        )  # fmt: skip
        # the port is set per copy, to the sink of its test
        configure_db(base, 9, ALIAS_DOMAIN, log)
        databases.odoo_shell(
            base, "odoo_setup", log, count=QUEUED_DOCUMENTS, pdf_dir=str(pdf_dir)
        )
        databases.copy_db(base, queued)
        run_odoo(
            "-d", queued, "-i", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn", log_path=log,
        )  # fmt: skip
        databases.odoo_shell(queued, "odoo_queue", log, pdf_dir=str(pdf_dir))
    yield SimpleNamespace(base=base, queued=queued)
    if not KEEP_TEMPLATES:
        databases.drop_db(base)
        databases.drop_db(queued)


@pytest.fixture
def db_copy():
    """``db_copy(template, name)``: a copy for this test, dropped after it."""
    made = []

    def copy(template, name):
        made.append(db_name(name))
        databases.copy_db(template, made[-1])
        return made[-1]

    yield copy
    for db in made:
        databases.drop_db(db)


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory):
    with SmtpSink(tmp_path_factory.mktemp("mail")) as sink:
        yield sink


@pytest.fixture(scope="session")
def odoo(odoo_db, smtp_sink):
    VAR.mkdir(parents=True, exist_ok=True)
    log = VAR / "odoo.log"
    configure_db(odoo_db, smtp_sink.port, ALIAS_DOMAIN, log)
    server = OdooServer(odoo_db, log).start()
    try:
        admin = server.client()
        # wkhtmltopdf fetches the report assets from this very server.
        admin.call("ir.config_parameter", "set_param", "report.url", server.url)
        admin.call("ir.config_parameter", "set_param", "web.base.url", server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(odoo):
    return odoo.client()


class Mailbox:
    """What the SMTP sink received, parsed: envelope plus message."""

    def __init__(self, sink):
        self.sink = sink
        self.seen = len(sink.messages())

    def wait(self, count=1, timeout=60, predicate=None):
        """Wait for ``count`` new messages (matching ``predicate``), return them."""
        deadline = time.monotonic() + timeout
        while True:
            new = [self._parse(m) for m in self.sink.messages()[self.seen :]]
            if predicate:
                new = [m for m in new if predicate(m)]
            if len(new) >= count or time.monotonic() > deadline:
                return new
            time.sleep(0.2)

    @staticmethod
    def _parse(meta):
        meta = dict(meta)
        meta["message"] = BytesParser(policy=policy.default).parsebytes(meta["raw"])
        return meta


@pytest.fixture
def mailbox(smtp_sink):
    return Mailbox(smtp_sink)


_counter = iter(range(1, 10**6))


@pytest.fixture
def unique():
    """A short token that makes names and emails unique across runs."""
    return "%s%s" % (int(time.time()) % 10**6, next(_counter))


def _create_user(admin, unique, prefix, name, groups):
    login = "%s%s" % (prefix, unique)
    admin.call(
        "res.users",
        "create",
        {
            "name": "%s %s" % (name, unique),
            "login": login,
            "password": login,
            "email": "%s@sengerio-agency.test" % login,
            "groups_id": [(6, 0, [admin.ref(g) for g in groups])],
        },
    )
    return login


@pytest.fixture
def salesperson(admin, unique):
    """Login (also password) of a salesperson who may send invoices too."""
    return _create_user(
        admin,
        unique,
        "sales",
        "Sally Sales",
        ["sales_team.group_sale_salesman", "account.group_account_invoice"],
    )


@pytest.fixture
def purchaser(admin, unique):
    return _create_user(
        admin, unique, "buyer", "Bruno Buyer", ["purchase.group_purchase_user"]
    )


def email_of(login):
    return "%s@sengerio-agency.test" % login


@pytest.fixture
def customer(admin, unique):
    email = "customer%s@client.test" % unique
    partner_id = admin.call(
        "res.partner", "create", {"name": "Customer %s" % unique, "email": email}
    )
    return partner_id, email


@pytest.fixture
def product_id(admin, unique):
    return admin.call(
        "product.product",
        "create",
        {"name": "Tour %s" % unique, "list_price": 120.0, "standard_price": 80.0},
    )
