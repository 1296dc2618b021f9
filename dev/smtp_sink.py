"""A local SMTP sink that keeps every message it receives.

Each message is stored under a spool folder as two files sharing a name:
``<stamp>.eml`` holds the exact bytes of the DATA phase and ``<stamp>.json``
the SMTP envelope (MAIL FROM, RCPT TO, peer, time). Run it as a script for
``make run``, or start it from Python tests with :class:`SmtpSink`.

With ``--bounce-domain``, it also plays the mail server of a customer domain
that has no mailboxes: a message to that domain is accepted, then a delivery
report goes back to the envelope sender (Odoo's bounce address) through
Odoo's mail gateway, as ``odoo-mailgate`` hands it over (:class:`Bouncer`).
"""

import argparse
import json
import logging
import re
import signal
import sys
import threading
import time
import xmlrpc.client
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiosmtpd.controller import Controller
from flows import build_dsn, message_process

_logger = logging.getLogger("smtp_sink")


def rfc5321_violations(data, mail_options=()):
    """What a strict SMTP server refuses in the DATA of a message.

    RFC 5321: lines end with CRLF, never a bare CR or LF, and hold at most
    998 octets; RFC 6152: 8-bit octets only with ``BODY=8BITMIME``.
    """
    found = []
    if re.search(rb"(?<!\r)\n|\r(?!\n)", data):
        found.append("bare CR or LF")
    if any(len(line) > 998 for line in data.split(b"\r\n")):
        found.append("line over 998 octets")
    if not data.isascii() and "BODY=8BITMIME" not in [
        option.upper() for option in mail_options
    ]:
        found.append("8-bit data without BODY=8BITMIME")
    return found


class SpoolHandler:
    """aiosmtpd handler writing each envelope to the spool folder.

    ``strict``: refuse (550) what :func:`rfc5321_violations` finds, as strict
    servers do since the SMTP smuggling fixes; ``refused`` lists them.
    ``bouncer``: a :class:`Bouncer` answering for a customer domain.
    """

    def __init__(self, spool, strict=False, bouncer=None):
        self.bouncer = bouncer
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.strict = strict
        self.refused = []
        self._lock = threading.Lock()
        self._count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.strict:
            found = rfc5321_violations(
                envelope.original_content or b"", envelope.mail_options
            )
            if found:
                self.refused.append((list(envelope.rcpt_tos), found))
                _logger.info("refused for %s: %s", envelope.rcpt_tos, found)
                return "550 5.6.0 Message refused: %s" % ", ".join(found)
        with self._lock:
            self._count += 1
            stamp = "%s-%06d" % (
                datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f"),
                self._count,
            )
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(session.peer) if session.peer else None,
            "received_at": datetime.now(timezone.utc).isoformat(),
            "file": stamp + ".eml",
        }
        # Write the message first, the envelope last: a reader that sees the
        # .json file knows the .eml next to it is complete.
        (self.spool / (stamp + ".eml")).write_bytes(raw)
        tmp = self.spool / (stamp + ".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.rename(self.spool / (stamp + ".json"))
        _logger.info(
            "stored %s from %s to %s", stamp, envelope.mail_from, envelope.rcpt_tos
        )
        if self.bouncer:
            self.bouncer.later(raw, envelope.mail_from, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


class Bouncer:
    """The mail server of a domain without mailboxes, behind the sink.

    It accepts the message (the sink has stored it), then, a moment later,
    returns an RFC 3464 report (``5.1.1``, the address does not exist) with
    the message to the envelope sender, through Odoo's mail gateway
    (``message_process`` over XML-RPC, what ``odoo-mailgate`` does).
    """

    def __init__(self, domain, url, db, login="admin", password="admin", delay=1.0):
        self.domain = domain.lower()
        self.url, self.db = url, db
        self.login, self.password = login, password
        self.delay = delay

    def later(self, raw, mail_from, rcpt_tos):
        failed = [r for r in rcpt_tos if r.lower().endswith("@" + self.domain)]
        if failed and mail_from and "@" in mail_from:
            thread = threading.Thread(
                target=self.bounce, args=(raw, mail_from, failed), daemon=True
            )
            thread.start()

    def bounce(self, raw, mail_from, failed):
        time.sleep(self.delay)
        alias_domain = mail_from.rpartition("@")[2]
        for rcpt in failed:
            report = build_dsn(raw, rcpt, alias_domain=alias_domain)
            try:
                common = xmlrpc.client.ServerProxy(self.url + "/xmlrpc/2/common")
                uid = common.authenticate(self.db, self.login, self.password, {})
                message_process(self.url, self.db, uid, self.password, report)
            except (OSError, xmlrpc.client.Error) as error:
                _logger.warning("could not return the bounce of %s: %s", rcpt, error)
            else:
                _logger.info("returned a bounce for %s to %s", rcpt, mail_from)


class SmtpSink:
    """Start and stop an aiosmtpd sink on 127.0.0.1 in a background thread."""

    def __init__(self, spool, port=0, host="127.0.0.1", strict=False, bouncer=None):
        self.handler = SpoolHandler(spool, strict=strict, bouncer=bouncer)
        self.host = host
        self.port = port
        self.controller = None

    def start(self):
        if not self.port:
            self.port = _free_port(self.host)
        self.controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            data_size_limit=0,
            decode_data=False,
        )
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def messages(self):
        """Return the stored messages, oldest first, as dicts with ``raw``."""
        return read_spool(self.handler.spool)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def read_spool(spool):
    """Read back every stored message: envelope fields plus ``raw`` bytes."""
    out = []
    for meta_file in sorted(Path(spool).glob("*.json")):
        meta = json.loads(meta_file.read_text())
        meta["raw"] = (meta_file.parent / meta["file"]).read_bytes()
        out.append(meta)
    return out


def _free_port(host):
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--spool", default="var/mail")
    parser.add_argument(
        "--bounce-domain",
        help="answer every message to this domain with a delivery report "
        "through Odoo's mail gateway (needs --odoo-url and --odoo-db)",
    )
    parser.add_argument("--odoo-url", default="http://127.0.0.1:8069")
    parser.add_argument("--odoo-db")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s smtp-sink %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    bouncer = None
    if args.bounce_domain:
        bouncer = Bouncer(args.bounce_domain, args.odoo_url, args.odoo_db)
    sink = SmtpSink(args.spool, port=args.port, host=args.host, bouncer=bouncer)
    sink.start()
    _logger.info("listening on %s:%s, storing in %s", args.host, sink.port, args.spool)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    sink.stop()


if __name__ == "__main__":
    main()
