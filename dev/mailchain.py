"""The mail chain an Odoo admin runs: a private Postfix and Dovecot on loopback.

Postfix (Debian's ``postfix``) is the outgoing mail server. It accepts mail
for three domains only and delivers it to Maildirs:

- the agency's mailboxes (the senders, ``AGENCY_DOMAIN``);
- Odoo's alias domain (its bounce and catchall addresses);
- a customer domain (``CUSTOMER_DOMAIN``), where the local part decides the
  outcome, so that Postfix itself writes the delivery reports:
  ``unknown...`` is bounced with 5.1.1, ``full...`` with 5.2.2,
  ``deferred...`` is retried (a delay warning, then a final bounce when the
  short queue lifetime runs out), ``refused...`` is rejected at RCPT TO, and
  any other customer gets the mail in their mailbox.

Dovecot (Debian's ``dovecot-imapd``) serves every mailbox over IMAP: the login
is the address, the password :data:`PASSWORD`. The bounce address is either a
mailbox (for Odoo's Incoming Mail Server) or piped into Odoo's own
``odoo-mailgate.py`` (:meth:`MailChain.route_bounces`).

Both run as root, in the foreground, as children of this process (Dovecot
gets SIGTERM when it dies; a Postfix left running by a killed run is stopped
at the next start), with their configuration, queue, mail and logs in one
folder, generated from the templates in ``dev/mailchain/``. Run this file to
start the chain by hand (``make run MAIL=real`` does).
"""

import argparse
import contextlib
import ctypes
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "mailchain"
PASSWORD = "mailchain"
AGENCY_DOMAIN = "sengerio-agency.test"
CUSTOMER_DOMAIN = "client.test"
#: Customer local parts (a prefix) and what Postfix does with them.
CUSTOMER_OUTCOMES = {
    "unknown": "bounced: 5.1.1 user unknown",
    "full": "bounced: 5.2.2 mailbox full",
    "deferred": "deferred: a delay warning, then bounced when the queue gives up",
    "refused": "refused at RCPT TO: 5.1.1",
}
MAIL_USER = "nobody"  # owns the Maildirs: Postfix's virtual agent and Dovecot
MAILGATE_SHIM = TEMPLATES / "mailgate.py"


def _die_with_parent():
    """In the child: get SIGTERM when this process dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def odoo_mailgate_script(odoo_src):
    """Odoo's own ``odoo-mailgate.py`` in an Odoo tree."""
    for relative in (
        "setup/odoo-mailgate.py",
        "addons/mail/static/scripts/odoo-mailgate.py",
    ):
        path = Path(odoo_src) / relative
        if path.is_file():
            return path
    raise FileNotFoundError("no odoo-mailgate.py in %s" % odoo_src)


def _descendants(pid):
    """The pids of every process below ``pid``."""
    children = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reachable_by_all(path):
    """Whether every folder above ``path`` lets other users through."""
    for parent in Path(path).parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _alive(pid):
    try:
        state = Path("/proc/%s/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MailChain:
    """Postfix and Dovecot in ``directory``, on two free loopback ports.

    :param alias_domain: Odoo's alias domain (``bounce@`` and ``catchall@``)
    :param delay_warning: Postfix's ``delay_warning_time`` for deferred mail
    :param queue_lifetime: how long deferred mail stays queued before it is
        returned (``maximal_queue_lifetime``)
    """

    def __init__(
        self,
        directory,
        alias_domain,
        smtp_port=None,
        imap_port=None,
        delay_warning="5s",
        queue_lifetime="45s",
    ):
        self.dir = Path(directory).resolve()
        self._own_tmp = False
        if not _reachable_by_all(self.dir):
            # Dovecot and the pipe run as MAIL_USER, who must reach the files
            self.dir = Path(tempfile.mkdtemp(prefix="sengerio_mailchain_"))
            self._own_tmp = True
        self.alias_domain = alias_domain
        self.smtp_port = smtp_port or free_port()
        self.imap_port = imap_port or free_port()
        self.customer_mx_port = free_port()
        self.customer_down_port = free_port()  # nobody listens there
        self.delay_warning = delay_warning
        self.queue_lifetime = queue_lifetime
        self.bounce_email = "bounce@%s" % alias_domain
        self.mailgate = None
        self._procs = {}
        self._children = set()

    # Configuration --------------------------------------------------------

    def _values(self):
        user = pwd.getpwnam(MAIL_USER)
        domains = [AGENCY_DOMAIN, self.alias_domain, CUSTOMER_DOMAIN]
        return {
            "DIR": str(self.dir),
            "ALIAS_DOMAIN": self.alias_domain,
            "AGENCY_DOMAIN": AGENCY_DOMAIN,
            "CUSTOMER_DOMAIN": CUSTOMER_DOMAIN,
            "CUSTOMER_DOMAIN_RE": re.escape(CUSTOMER_DOMAIN),
            "DOMAINS_RE": "|".join(re.escape(d) for d in domains),
            "MAIL_UID": str(user.pw_uid),
            "MAIL_GID": str(user.pw_gid),
            "SMTP_ADDRESS": "127.0.0.1:%s" % self.smtp_port,
            "IMAP_PORT": str(self.imap_port),
            "CUSTOMER_MX_ADDRESS": "127.0.0.1:%s" % self.customer_mx_port,
            "CUSTOMER_MX_PORT": str(self.customer_mx_port),
            "CUSTOMER_DOWN_PORT": str(self.customer_down_port),
            "PASSWORD": PASSWORD,
            "DELAY_WARNING": self.delay_warning,
            "QUEUE_LIFETIME": self.queue_lifetime,
            "MAILGATE_USER": MAIL_USER,
            "MAILGATE_ARGV": self._mailgate_argv(),
            "BOUNCE_ROUTE": self._bounce_route(),
        }

    def _mailgate_argv(self):
        if not self.mailgate:
            return "/bin/false"
        return " ".join(
            [
                # the system's Python: the pipe runs as MAIL_USER, who may
                # not read a virtualenv in root's home
                "/usr/bin/python3",
                str(self.dir / MAILGATE_SHIM.name),
                str(self.dir / "odoo-mailgate.py"),
                "--host", "127.0.0.1", "--port", str(self.mailgate["port"]),
                "-d", self.mailgate["db"], "-u", str(self.mailgate["uid"]),
                "-p", self.mailgate["password"],
            ]
        )  # fmt: skip

    def _bounce_route(self):
        if not self.mailgate:
            return "# the bounce address is a mailbox, fetched by Odoo over IMAP"
        return "/^%s$/\todoo-mailgate:" % re.escape(self.bounce_email)

    def _render(self, name, target):
        text = (TEMPLATES / name).read_text()
        values = self._values()
        text = re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], text)
        target.write_text(text)

    def _write_config(self):
        postfix = self.dir / "postfix"
        for name in (
            "main.cf", "master.cf", "mailboxes", "transport", "recipient_access",
            "customer_mx",
        ):  # fmt: skip
            self._render(name, postfix / name)
        self._render("dovecot.conf", self.dir / "dovecot" / "dovecot.conf")

    # Running --------------------------------------------------------------

    def _postfix(self, *args, check=True):
        """A ``postfix -c`` command, under ``script``: before the start its
        errors only reach syslog, which ``script``'s terminal shows them."""
        cmd = " ".join(["postfix", "-c", str(self.dir / "postfix"), *args])
        proc = subprocess.run(
            ["script", "-qec", cmd, "/dev/null"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode:
            raise RuntimeError("%s failed: %s%s" % (cmd, proc.stdout, proc.stderr))
        return proc

    def start(self, timeout=60):
        if os.geteuid() != 0:
            raise RuntimeError("the mail chain runs Postfix and Dovecot as root")
        for tool in ("postfix", "dovecot", "script"):
            if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin"):
                raise RuntimeError("%s is missing: run dev/setup.sh" % tool)
        self._stop_stale()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        user = pwd.getpwnam(MAIL_USER)
        for sub in (
            "postfix",
            "queue",
            "postfix-data",
            "dovecot/run",
            "dovecot/state",
            "log",
            "mail",
        ):
            (self.dir / sub).mkdir(parents=True)
        shutil.chown(self.dir / "postfix-data", "postfix", "postfix")
        os.chown(self.dir / "mail", user.pw_uid, user.pw_gid)
        shutil.copy(MAILGATE_SHIM, self.dir / MAILGATE_SHIM.name)
        self._write_config()
        self._postfix("check")
        # the master itself, not ``postfix start-fg`` (a shell around it):
        # its process is then ours to wait for
        daemons = subprocess.run(
            ["postconf", "-c", str(self.dir / "postfix"), "-h", "daemon_directory"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self._spawn(
            "postfix",
            [str(Path(daemons) / "master"), "-c", str(self.dir / "postfix"), "-d"],
        )
        self._spawn(
            "dovecot",
            ["dovecot", "-F", "-c", str(self.dir / "dovecot" / "dovecot.conf")],
        )
        deadline = time.monotonic() + timeout
        for name, port in (("postfix", self.smtp_port), ("dovecot", self.imap_port)):
            while not port_open(port):
                if self._procs[name].poll() is not None or time.monotonic() > deadline:
                    log = self.log(name)
                    self.stop()
                    raise RuntimeError("%s did not start:\n%s" % (name, log[-3000:]))
                time.sleep(0.2)
        return self

    def _stop_stale(self):
        """Stop a Postfix master left running in this folder by a run that
        was killed: it changes its group ID while starting, which cancels the
        signal it would have got when its parent died."""
        pid_file = self.dir / "queue" / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path("/proc/%s/cmdline" % pid).read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if str(self.dir / "postfix").encode() not in cmdline:
            return  # that pid is someone else's now
        self._postfix("abort", check=False)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _spawn(self, name, cmd):
        log = open(self.dir / "log" / ("%s.out" % name), "ab")  # noqa: SIM115
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        self._procs[name] = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def stop(self, timeout=30):
        """Stop both servers; wait until they and all their children are gone."""
        for proc in self._procs.values():
            self._children.update(_descendants(proc.pid))
        if "postfix" in self._procs and self._procs["postfix"].poll() is None:
            self._postfix("stop", check=False)  # the master stops its children
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            try:
                proc.wait(max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self._running():  # one of ours that did not stop: it goes now
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self._running() and time.monotonic() < deadline + 10:
            time.sleep(0.2)
        self._procs = {}
        if self._own_tmp:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _running(self):
        return [pid for pid in self._children if _alive(pid)]

    def leftovers(self):
        """Processes this chain started that still run, and ports still taken."""
        pids = self._running()
        ports = [
            p
            for p in (self.smtp_port, self.imap_port, self.customer_mx_port)
            if port_open(p)
        ]
        return pids, ports

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def route_bounces(self, mailgate=None):
        """Deliver the bounce address to its mailbox, or pipe it into Odoo.

        :param mailgate: ``{"script", "port", "db", "uid", "password"}`` to
            hand bounces to Odoo's ``odoo-mailgate.py`` (Postfix's ``pipe``
            transport), or ``None`` for the mailbox
        """
        self.mailgate = mailgate
        if mailgate:
            # beside the chain's files, where MAIL_USER can read it
            shutil.copy(mailgate["script"], self.dir / "odoo-mailgate.py")
        self._write_config()
        self._postfix("reload")

    def log(self, name="postfix"):
        path = self.dir / "log" / ("%s.log" % name)
        out = self.dir / "log" / ("%s.out" % name)
        return "".join(p.read_text(errors="replace") for p in (out, path) if p.exists())

    # Reading mailboxes ----------------------------------------------------

    @contextlib.contextmanager
    def imap(self, address):
        """An IMAP session of ``address``'s mailbox, logged in."""
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        try:
            client.login(address, PASSWORD)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def messages(self, address):
        """``(uid, flags, raw bytes)`` of each message in the INBOX.

        Read-only (EXAMINE, BODY.PEEK): what Odoo has not fetched yet stays
        unseen.
        """
        with self.imap(address) as client:
            client.select("INBOX", readonly=True)
            _typ, data = client.uid("SEARCH", None, "ALL")
            found = []
            for uid in data[0].split():
                _typ, parts = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                meta, raw = parts[0]
                flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).split()
                found.append((int(uid), [f.decode() for f in flags], raw))
            return found

    def wait_messages(self, address, count=1, predicate=None, timeout=90):
        """Wait until ``address`` holds ``count`` messages matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                m for m in self.messages(address) if not predicate or predicate(m[2])
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def mark_unseen(self, address, uid):
        """Clear the Seen flag of message ``uid``, as a mail client may do."""
        with self.imap(address) as client:
            client.select("INBOX")
            client.uid("STORE", str(uid), "-FLAGS", "\\Seen")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--print-settings",
        action="store_true",
        help="print the chain's fixed settings as shell variables, and exit",
    )
    parser.add_argument("--dir", help="folder of the chain's files")
    parser.add_argument("--alias-domain")
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--imap-port", type=int)
    parser.add_argument("--delay-warning", default="1m")
    parser.add_argument("--queue-lifetime", default="5m")
    parser.add_argument("--ready-file", help="written once both servers answer")
    args = parser.parse_args()
    if args.print_settings:
        print("MAILCHAIN_PASSWORD=%s" % PASSWORD)
        print("AGENCY_DOMAIN=%s" % AGENCY_DOMAIN)
        print("CUSTOMER_DOMAIN=%s" % CUSTOMER_DOMAIN)
        return
    if not (args.dir and args.alias_domain):
        parser.error("--dir and --alias-domain are required")
    chain = MailChain(
        args.dir,
        args.alias_domain,
        args.smtp_port,
        args.imap_port,
        args.delay_warning,
        args.queue_lifetime,
    )
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(0))
    with chain:
        if args.ready_file:
            Path(args.ready_file).write_text("ready\n")
        try:
            while all(p.poll() is None for p in chain._procs.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
