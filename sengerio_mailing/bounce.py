"""Reading bounces, as pure functions over ``email.message`` objects.

A bounce report says which recipients failed (or are only delayed), with the
DSN status code and the remote server's words, and which email it is about.
RFC 3464 delivery-status parts (and their RFC 6533 ``global`` forms for
SMTPUTF8 mail) and ``X-Failed-Recipients`` are read directly; other formats
(qmail, older Exim, Exchange NDRs...) go to ``flufl.bounce``.

Which email a report is about is read only from the copy of it the report
returns (its headers, as an attached part or below a mail server's "copy of
the message" line): never from the report's own In-Reply-To or References,
nor from any ``Message-Id:`` line quoted in its text, which anyone can write.

Also here: the plain words of a DSN status code, and the wire form of a report
attached to an email.
"""

import base64
import binascii
import logging
import quopri
import re
from dataclasses import dataclass, field
from email import message_from_bytes, message_from_string, policy

from flufl.bounce import all_failures

from odoo.tools import email_normalize
from odoo.tools.translate import LazyTranslate

_lt = LazyTranslate(__name__)
_logger = logging.getLogger(__name__)

# Only this much of a text part is searched: returned messages can be huge.
TEXT_SCAN_LIMIT = 256 * 1024
#: The remote server's words are kept up to this length (the whole report
#: stays attached to the notice).
DIAGNOSTIC_LIMIT = 500
#: At most this many recipients of one report, and original Message-Ids, are
#: looked up.
RECIPIENT_LIMIT = 50
MESSAGE_ID_LIMIT = 3
MESSAGE_ID_LENGTH = 255
STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
MESSAGE_ID_RE = re.compile(r"<[^<>\s]{1,%d}>" % MESSAGE_ID_LENGTH)
AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|"
    r"risposta automatica|fuori sede|assente|abwesenheit|r[ée]ponse automatique)",
    re.IGNORECASE,
)
#: Lines after which text-only reports (qmail, older Exim, Sendmail) return
#: the original email, headers first.
RETURNED_COPY_RE = re.compile(
    r"^(?:-+ ?Below this line is a copy of the message\.?"
    r"|-+ This is a copy of (?:the|your) message, including all the headers\. -+"
    r"|-+ Original message follows -+"
    r"|-+ The header of the original message is following\. -+)[ \t]*\r?$",
    re.IGNORECASE | re.MULTILINE,
)
# RFC 6533 "\x{HEX}" escapes in utf-8 address types
XTEXT_RE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
#: Header marking the notices this addon sends back to the sender.
NOTICE_HEADER = "X-Sengerio-Bounce-Notice"

DELIVERY_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
RETURNED_MESSAGE_TYPES = ("message/rfc822", "message/global")
RETURNED_HEADERS_TYPES = ("text/rfc822-headers", "message/global-headers")


@dataclass
class RecipientReport:
    """What a delivery report says about one recipient."""

    email: str  # Final-Recipient (or the only address the report names)
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""
    original: str = ""  # Original-Recipient: the address as it was sent to

    @property
    def is_failure(self):
        """A real bounce: a permanent error, or a failure after retries."""
        if self.action == "failed":
            return True
        return not self.action and self.status.startswith("5.")

    @property
    def addresses(self):
        """The addresses this line may be about: as sent first, then final."""
        return list(dict.fromkeys(a for a in (self.original, self.email) if a))


@dataclass
class BounceReport:
    kind: str  # "failed", "delayed", "autoreply" or "none"
    recipients: list = field(default_factory=list)
    message_ids: list = field(default_factory=list)  # of the returned email
    is_notice_bounce: bool = False  # a bounce of our own bounce notice

    @property
    def failed(self):
        return [r for r in self.recipients if r.is_failure]

    @property
    def delayed(self):
        return [
            r for r in self.recipients if not r.is_failure and r.action == "delayed"
        ]


def read_bounce(msg):
    """Read a bounce, delay notice or auto-reply into a :class:`BounceReport`."""
    # the parts and their types, read once and from the raw headers: the
    # message's policy would parse each header into an object every time
    parts = [(part, _content_type(part)) for part in msg.walk()]
    original = _original_headers(parts)
    message_ids = _message_ids(original)
    notice = bool(original is not None and original.get(NOTICE_HEADER))
    recipients = _delivery_status_recipients(parts)
    known = {r.email for r in recipients}
    for email in _split_addresses(msg.get_all("X-Failed-Recipients") or []):
        if email not in known:
            recipients.append(RecipientReport(email, "failed", *_status_in_text(msg)))
            known.add(email)
    if not recipients and _clearly_auto_reply(msg):
        # flufl.bounce's detectors cost more than the rest of the reading
        return BounceReport("autoreply", [], message_ids, notice)
    if not recipients:
        recipients = _flufl_recipients(msg)
    if not recipients and is_auto_reply(msg):
        return BounceReport("autoreply", [], message_ids, notice)
    recipients = recipients[:RECIPIENT_LIMIT]

    if any(r.is_failure for r in recipients):
        kind = "failed"
    elif any(r.action == "delayed" for r in recipients):
        kind = "delayed"
    else:
        kind = "none"
    return BounceReport(kind, recipients, message_ids, notice)


def message_bytes(msg):
    """The bytes of a parsed message, also when it cannot be serialised as is."""
    try:
        return msg.as_bytes()
    except Exception:  # broken MIME: keep what can be kept
        try:
            return msg.as_string().encode("utf-8", "replace")
        except Exception:
            return b""


def is_auto_reply(msg):
    """An out-of-office or other automatic answer (RFC 3834 and common usage)."""
    auto_submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(AUTO_REPLY_SUBJECT_RE.match(str(msg.get("Subject", ""))))


def _clearly_auto_reply(msg):
    """Signals of an out-of-office reply that no bounce carries.

    Bounces from Postfix, Exim or Gmail say ``Auto-Submitted: auto-replied``
    too, but not with an auto-reply subject, nor vacation headers.
    """
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    auto_submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    return auto_submitted.startswith("auto-replied") and bool(
        AUTO_REPLY_SUBJECT_RE.match(str(msg.get("Subject", "")))
    )


def _content_type(part):
    """``part.get_content_type()``, read from the raw header."""
    for name, value in part.raw_items():
        if name.lower() == "content-type":
            ctype = str(value).split(";", 1)[0].strip().lower()
            if ctype.count("/") == 1:
                return ctype
            return "text/plain"  # invalid: what the email package says too
    return part.get_default_type()


def _delivery_status_recipients(parts):
    recipients = []
    for part, ctype in parts:
        if ctype not in DELIVERY_STATUS_TYPES:
            continue
        for block in _status_blocks(part)[1:]:  # [0]: the per-message fields
            email = _typed_address(block.get("Final-Recipient"))
            original = _typed_address(block.get("Original-Recipient"))
            if not (email or original):
                continue
            diagnostic = _typed_value(block.get("Diagnostic-Code"))
            status = _status(block.get("Status")) or _status(diagnostic)
            if status.endswith(".0.0") and _status(diagnostic)[:1] == status[:1]:
                # e.g. Exim: "Status: 5.0.0" with "550 5.1.1" from the server
                status = _status(diagnostic)
            action = str(block.get("Action", "")).strip().lower()[:20]
            recipients.append(
                RecipientReport(
                    email or original,
                    action,
                    status,
                    _cap(diagnostic),
                    original if email else "",
                )
            )
    return recipients


def _status_blocks(part):
    """The field blocks of a delivery-status part, as header-only messages.

    The email package splits ``message/delivery-status`` into its blocks, but
    reads the RFC 6533 ``message/global-delivery-status`` (UTF-8, possibly
    base64 or quoted-printable) as one embedded message: its text is split
    here.
    """
    payload = part.get_payload()
    if _content_type(part) == "message/delivery-status":
        return payload if isinstance(payload, list) else []
    text = _message_part_bytes(part).decode("utf-8", "replace")
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [message_from_string(b, policy=policy.compat32) for b in blocks if b]


def _message_part_bytes(part):
    """The decoded content of a ``message/*`` part, as bytes."""
    payload = part.get_payload()
    if isinstance(payload, list):
        if not payload:
            return b""
        # the email package parsed it as a message: write it back as it came
        raw = message_bytes(payload[0])
    elif isinstance(payload, str):
        raw = payload.encode("utf-8", "surrogateescape")
    else:
        return b""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if cte == "base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", raw) + b"==")
        if cte == "quoted-printable":
            return quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return b""
    return raw


def _flufl_recipients(msg):
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on odd input is not a reason to fail
        _logger.info("flufl.bounce could not read bounce %s", msg.get("Message-Id"))
        return []
    status, diagnostic = _status_in_text(msg)
    recipients = []
    for raw, action in [(a, "failed") for a in permanent] + [
        (a, "delayed") for a in temporary
    ]:
        email = email_normalize(
            raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        )
        if email and email not in {r.email for r in recipients}:
            recipients.append(RecipientReport(email, action, status, diagnostic))
    return recipients


def _original_headers(parts):
    """The headers of the returned email, if the report carries them."""
    for part, ctype in parts:
        if ctype in RETURNED_MESSAGE_TYPES:
            payload = part.get_payload()
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte in ("base64", "quoted-printable"):  # message/global may be
                return message_from_bytes(
                    _message_part_bytes(part), policy=policy.compat32
                )
            if isinstance(payload, list) and payload:
                return payload[0]
        elif ctype in RETURNED_HEADERS_TYPES:
            text = _text(part)
            if text:
                return message_from_string(text, policy=policy.compat32)
    for part, ctype in parts:
        if ctype == "text/plain":
            # text-only reports: the copy below the mail server's own line
            text = _text(part)
            match = RETURNED_COPY_RE.search(text)
            if match:
                copy = text[match.end() :].lstrip("\r\n")
                return message_from_string(copy, policy=policy.compat32)
    return None


def _message_ids(original):
    if original is None:
        return []
    ids = []
    for header in ("Message-Id", "X-Microsoft-Original-Message-ID"):
        ids += MESSAGE_ID_RE.findall(str(original.get(header, "")))
    return list(dict.fromkeys(ids))[:MESSAGE_ID_LIMIT]


def _status_in_text(msg):
    """An enhanced status code and its line, found in the report's text."""
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        text = _text(part)
        match = STATUS_RE.search(text)
        if match:
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.end())
            line = text[line_start : line_end if line_end > 0 else None].strip()
            return match.group(0), _cap(line)
    return "", ""


def _text(part):
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[:TEXT_SCAN_LIMIT].decode(charset, "replace")
    except LookupError:
        return payload[:TEXT_SCAN_LIMIT].decode("utf-8", "replace")


def _cap(text):
    """Text from the report, cut to :data:`DIAGNOSTIC_LIMIT` characters."""
    text = "".join(c for c in text if c.isprintable())
    if len(text) <= DIAGNOSTIC_LIMIT:
        return text
    return text[: DIAGNOSTIC_LIMIT - 1] + "…"


def _typed_value(value):
    """``rfc822; someone@example.com`` -> ``someone@example.com``.

    Folded lines are unfolded: one space between words.
    """
    value = " ".join(str(value or "")[:TEXT_SCAN_LIMIT].split())
    return value.split(";", 1)[1].strip() if ";" in value else value


def _typed_address(value):
    """The address of a recipient field, ``rfc822`` or RFC 6533 ``utf-8``."""
    if not value:
        return False
    address = XTEXT_RE.sub(lambda m: chr(int(m.group(1), 16)), _typed_value(value))
    if len(address) > 254:
        return False
    return email_normalize(address)


def _status(value):
    match = STATUS_RE.search(str(value or ""))
    return match.group(0) if match else ""


def _split_addresses(values):
    emails = []
    for value in values:
        for item in str(value).split(",")[:RECIPIENT_LIMIT]:
            email = email_normalize(item.strip())
            if email:
                emails.append(email)
    return emails


# Plain words --------------------------------------------------------------

#: Enhanced status codes (RFC 3463) -> reason key; class.subject falls back.
STATUS_REASONS = {
    "1.1": "no_such_address",
    "1.10": "no_such_address",
    "1.2": "no_such_domain",
    "1.6": "mailbox_moved",
    "2.1": "mailbox_disabled",
    "2.2": "mailbox_full",
    "2.3": "message_too_big",
    "3.4": "message_too_big",
    "4.1": "server_unreachable",
    "4.4": "server_unreachable",
    "4.7": "expired",
    "7.1": "policy",
    "7.0": "policy",
    "7.23": "unauthenticated",
    "7.25": "unauthenticated",
    "7.26": "unauthenticated",
}

#: Reason key -> plain words, translated when read (``env._(words)``).
REASON_WORDS = {
    "no_such_address": _lt("the address does not exist"),
    "no_such_domain": _lt("the recipient's domain does not exist"),
    "mailbox_moved": _lt("the mailbox has moved"),
    "mailbox_disabled": _lt("the mailbox is disabled"),
    "mailbox_full": _lt("the mailbox is full"),
    "message_too_big": _lt("the message is too large"),
    "server_unreachable": _lt("the recipient's server could not be reached"),
    "expired": _lt("delivery kept failing until it was given up"),
    "policy": _lt("rejected by the recipient's server policy"),
    "unauthenticated": _lt("rejected by the recipient's server as not authenticated"),
    "temporary": _lt("a temporary failure that did not clear up"),
    "permanent": _lt("a permanent delivery failure"),
    "unknown": _lt("the email bounced"),
}


def status_reason(status):
    """Reason key of a DSN status code, falling back to the code's class."""
    match = STATUS_RE.search(status or "")
    if not match:
        return "unknown"
    klass, subject, detail = match.groups()
    key = STATUS_REASONS.get("%s.%s" % (subject, detail))
    if key:
        return key
    return "temporary" if klass == "4" else "permanent"


def reason_words(status):
    """The plain words of a DSN status code, to translate with ``env._``."""
    return REASON_WORDS[status_reason(status)]


# The report on the wire ---------------------------------------------------

#: RFC 5321: at most 998 octets on a line, before its CRLF.
LINE_LIMIT = 998


def report_wire_form(raw):
    """How to attach a report to an email so that any SMTP server takes it.

    A ``message/rfc822`` part may only be sent as it is (RFC 2046): that is
    done when the report is plain 7-bit text with lines of at most 998
    octets, its line endings made CRLF, whatever they were (bare LF when it
    came through an MTA's pipe). Anything else (8-bit, SMTPUTF8, very long
    lines) goes as ``message/global`` (RFC 6532), which may be base64-encoded;
    clients that do not know it offer it as an ``.eml`` file to open.

    :param raw: the report's bytes, as received
    :return: ``(content type, transfer encoding, payload text with CRLF
        line endings)``
    """
    lines = re.split(rb"\r\n|\r|\n", raw)
    if raw.isascii() and all(len(line) <= LINE_LIMIT for line in lines):
        return "message/rfc822", "7bit", b"\r\n".join(lines).decode("ascii")
    encoded = base64.encodebytes(raw).decode("ascii")
    return "message/global", "base64", encoded.replace("\n", "\r\n")
