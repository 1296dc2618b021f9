"""Databases for the fault and upgrade tests: prepared once, copied per test.

A session prepares two template databases (see ``conftest.prepared_dbs``):
the base modules with documents ready to send, and a copy of it with the
addon installed and one document email per document queued. Each test works
on its own copy (``createdb -T`` plus the filestore), so no test sees what
another one did.
"""

import base64
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
from harness import ADDONS_PATH, driver, free_port

BASE_MODULES = "sale_management,sale_async_emails,account,purchase"
FILESTORE = driver.FILESTORE
copy_db = driver.copy_db
drop_db = driver.drop_db


def query(db, sql, params=(), env=None):
    """Run one SQL statement (autocommit); return its rows, if any."""
    env = env or {}
    conn = psycopg2.connect(dbname=db, host=env.get("PGHOST"), port=env.get("PGPORT"))
    try:
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute(sql, params or None)
            return cr.fetchall() if cr.description else None
    finally:
        conn.close()


def _pg(*cmd, env=None):
    subprocess.run(cmd, check=True, env=dict(os.environ, **(env or {})))


def db_exists(db, env=None):
    return driver.db_exists(db, env)


def remove_filestore(db):
    shutil.rmtree(FILESTORE / db, ignore_errors=True)


def odoo_shell(db, step, log_path, env=None, **kwargs):
    """Run ``bcc_queue.<step>(env, **kwargs)`` in ``odoo-bin shell``.

    The benchmark's steps create documents and queue their emails quickly
    (one PDF rendered per model, its bytes reused). Returns what the step
    reported.
    """
    found = driver.odoo_shell(
        db, "bcc_queue", step, Path(log_path), env=env, addons_path=ADDONS_PATH,
        **kwargs,
    )  # fmt: skip
    if found is None:
        raise RuntimeError("shell step %s reported nothing, see %s" % (step, log_path))
    return found


def set_smtp_port(db, port, env=None):
    """Point the database's outgoing mail server at ``port`` on localhost."""
    query(db, "UPDATE ir_mail_server SET smtp_port = %s", (port,), env)


def set_password(db, login, password, env=None):
    """Set a user's password the way Odoo stores it, without its security email.

    The hash is in passlib's ``pbkdf2_sha512`` format, which Odoo verifies.
    """

    def ab64(raw):
        return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")

    salt, rounds = os.urandom(16), 1000
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    hashed = "$pbkdf2-sha512$%s$%s$%s" % (rounds, ab64(salt), ab64(digest))
    query(
        db, "UPDATE res_users SET password = %s WHERE login = %s", (hashed, login), env
    )


def pause_crons(db, env=None):
    """Push every scheduled action a day away.

    A fresh database has every cron due: a server with cron threads would
    run them all at once, in the middle of what a test looks at.
    """
    query(
        db,
        "UPDATE ir_cron SET nextcall = now() at time zone 'UTC' + interval '1 day'",
        env=env,
    )


def _pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found")
    return found[-1].parent


class PrivateCluster:
    """A PostgreSQL server of the test's own, in a temporary folder.

    Trust authentication, Unix socket only, in the folder. When the tests
    run as root, the server runs as the ``postgres`` system user (PostgreSQL
    refuses to run as root). The bootstrap superuser carries the name of the
    user running the tests, so ``psql``, ``createdb`` and Odoo connect with
    just ``env`` (``PGHOST``, ``PGPORT``).
    """

    def __init__(self):
        self.bindir = _pg_bindir()
        self.port = free_port()
        self.dir = None

    @property
    def env(self):
        return {"PGHOST": str(self.dir), "PGPORT": str(self.port)}

    def _run(self, tool, *args):
        cmd = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=120)

    def start(self):
        self.dir = Path(tempfile.mkdtemp(prefix="sengerio_pg_"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        user = pwd.getpwuid(os.getuid()).pw_name
        self._run(
            "initdb", "-D", str(self.dir / "data"), "-U", user, "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8",
        )  # fmt: skip
        # a throwaway server: no fsync, so restoring a database is quick
        options = "-p %s -k %s -c listen_addresses='' -c fsync=off" % (
            self.port,
            self.dir,
        )
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-o", options,
            "-l", str(self.dir / "server.log"), "-w", "start",
        )  # fmt: skip
        return self

    def restart(self):
        """Fast restart: every session is cut, open transactions roll back."""
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
            "-m", "fast", "-w", "restart",
        )  # fmt: skip

    def stop(self):
        if self.dir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def restore(self, source, db):
        """Copy database ``source`` of the main server here, as ``db``."""
        _pg("createdb", db, env=self.env)
        dump = subprocess.Popen(
            ["pg_dump", "-Fc", "--no-owner", "-d", source], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["pg_restore", "--no-owner", "--single-transaction", "-d", db],
            stdin=dump.stdout,
            env=dict(os.environ, **self.env),
            check=True,
        )
        dump.stdout.close()
        if dump.wait():
            raise RuntimeError("pg_dump %s failed" % source)
        if (FILESTORE / source).is_dir():
            shutil.rmtree(FILESTORE / db, ignore_errors=True)
            shutil.copytree(FILESTORE / source, FILESTORE / db)
