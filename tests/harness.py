"""Drive a real Odoo server from outside: start it, talk JSON-RPC to it."""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))
import driver  # noqa: E402

ODOO_SRC = driver.ODOO_SRC
# the checkout's addon, not a snapshot: the tests run what is in the work
# tree; ``make test`` gives its own path (with the OCA mail addons, in its
# second run)
ADDONS_PATH = (
    os.environ["ADDONS_PATH"].split(",")
    if os.environ.get("ADDONS_PATH")
    else [*driver.ODOO_ADDONS, str(ROOT)]
)
free_port = driver.free_port
RpcError = driver.RpcError
WebSession = driver.WebSession


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies, however it dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def odoo_cmd(*args):
    return driver.odoo_cmd(*args, addons_path=ADDONS_PATH)


class OdooClient:
    """Minimal JSON-RPC client for ``/jsonrpc`` (the external API)."""

    def __init__(self, url, db, login, password):
        self.url = url
        self.db = db
        self.login = login
        self.password = password
        self.uid = self._call("common", "authenticate", db, login, password, {})
        if not self.uid:
            raise RuntimeError("cannot log in as %s" % login)

    def _call(self, service, method, *args):
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": 1,
        }
        req = urllib.request.Request(
            self.url + "/jsonrpc",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=300) as resp:
            answer = json.load(resp)
        if answer.get("error"):
            raise RpcError(answer["error"])
        return answer.get("result")  # absent when the method returned None

    def call(self, model, method, *args, **kwargs):
        return self._call(
            "object",
            "execute_kw",
            self.db,
            self.uid,
            self.password,
            model,
            method,
            list(args),
            kwargs,
        )

    def ref(self, xmlid):
        module, name = xmlid.split(".")
        found = self.call(
            "ir.model.data",
            "search_read",
            [("module", "=", module), ("name", "=", name)],
            fields=["res_id"],
        )
        return found[0]["res_id"]


class OdooServer:
    """An ``odoo-bin`` process serving one database on a free port.

    ``env`` adds environment variables, e.g. ``PGHOST``/``PGPORT`` to use
    another PostgreSQL server.
    """

    def __init__(self, db, log_path, extra_args=(), env=None):
        self.db = db
        self.port = free_port()
        self.url = "http://127.0.0.1:%s" % self.port
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self, timeout=120):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            odoo_cmd(
                "-d",
                self.db,
                "--db-filter",
                "^%s$" % self.db,
                "--http-interface",
                "127.0.0.1",
                "--http-port",
                str(self.port),
                "--gevent-port",
                str(free_port()),
                "--max-cron-threads",
                "0",
                *self.extra_args,
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "Odoo exited with %s, see %s"
                    % (self.proc.returncode, self.log_path)
                )
            try:
                with urllib.request.urlopen(self.url + "/web/health", timeout=5):
                    return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("Odoo did not answer within %ss" % timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        self.proc = None

    def kill(self):
        """SIGKILL: the process dies on the spot, whatever it was doing."""
        self.proc.kill()
        self.proc.wait()
        self.stop()

    def client(self, login="admin", password="admin"):
        return OdooClient(self.url, self.db, login, password)


def run_odoo(*args, log_path, timeout=900, env=None):
    """Run ``odoo-bin`` to completion (install, shell script...)."""
    with open(log_path, "ab") as log:
        subprocess.run(
            odoo_cmd(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=timeout,
            env=dict(os.environ, **(env or {})),
        )


def configure_db(db, smtp_port, alias_domain, log_path, env=None):
    """Alias domain and outgoing server on the sink, with dev/configure_db.py."""
    env = dict(
        os.environ,
        **(env or {}),
        SMTP_PORT=str(smtp_port),
        ALIAS_DOMAIN=alias_domain,
    )
    with (
        open(ROOT / "dev" / "configure_db.py", "rb") as script,
        open(log_path, "ab") as log,
    ):
        subprocess.run(
            odoo_cmd("shell", "-d", db, "--no-http", "--log-level", "warn"),
            stdin=script,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
            timeout=300,
        )
