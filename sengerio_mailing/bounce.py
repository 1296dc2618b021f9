"""Reading bounces, as pure functions over ``email.message`` objects.

A bounce report says which recipients failed (or are only delayed), with the
DSN status code and the remote server's words, and which email it is about.
RFC 3464 delivery-status parts and ``X-Failed-Recipients`` are read directly;
other formats (qmail, older Exim, Exchange NDRs...) go to ``flufl.bounce``.
"""

import logging
import re
from dataclasses import dataclass, field
from email import message_from_string, policy

from flufl.bounce import all_failures

from odoo.tools import email_normalize

_logger = logging.getLogger(__name__)

# Only this much of a text part is searched: returned messages can be huge.
TEXT_SCAN_LIMIT = 256 * 1024
STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
MESSAGE_ID_RE = re.compile(r"^\s*Message-I[dD]:\s*(<[^>\s]+>)", re.MULTILINE)
AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|"
    r"risposta automatica|fuori sede|assente|abwesenheit|r[ée]ponse automatique)",
    re.IGNORECASE,
)
#: Header marking the notices this addon sends back to the sender.
NOTICE_HEADER = "X-Sengerio-Bounce-Notice"


@dataclass
class RecipientReport:
    """What a delivery report says about one recipient."""

    email: str
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""

    @property
    def is_failure(self):
        """A real bounce: a permanent error, or a failure after retries."""
        if self.action == "failed":
            return True
        return not self.action and self.status.startswith("5.")


@dataclass
class BounceReport:
    kind: str  # "failed", "delayed", "autoreply" or "none"
    recipients: list = field(default_factory=list)
    message_ids: list = field(default_factory=list)  # original ids, best first
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
    message_ids = _message_ids(msg, original, parts)
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
        if ctype != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block holds per-message fields
            email = _typed_address(block.get("Final-Recipient")) or _typed_address(
                block.get("Original-Recipient")
            )
            if not email:
                continue
            diagnostic = _typed_value(block.get("Diagnostic-Code"))
            status = _status(block.get("Status")) or _status(diagnostic)
            if status.endswith(".0.0") and _status(diagnostic)[:1] == status[:1]:
                # e.g. Exim: "Status: 5.0.0" with "550 5.1.1" from the server
                status = _status(diagnostic)
            action = str(block.get("Action", "")).strip().lower()
            recipients.append(RecipientReport(email, action, status, diagnostic))
    return recipients


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
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif ctype == "text/rfc822-headers":
            text = _text(part)
            if text:
                return message_from_string(text, policy=policy.compat32)
    return None


def _message_ids(msg, original, parts):
    ids = []
    if original is not None and original.get("Message-Id"):
        ids.append(str(original.get("Message-Id")).strip())
    else:
        # no returned headers: some servers quote them in the text
        for part, ctype in parts:
            if ctype.startswith("text/") and ctype != "text/rfc822-headers":
                ids += MESSAGE_ID_RE.findall(_text(part))
    for header in ("In-Reply-To", "References"):
        ids += re.findall(r"<[^>\s]+>", str(msg.get(header, "")))
    return list(dict.fromkeys(i for i in ids if i))


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
            return match.group(0), line[:500]
    return "", ""


def _text(part):
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception:
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[:TEXT_SCAN_LIMIT].decode(charset, "replace")
    except LookupError:
        return payload[:TEXT_SCAN_LIMIT].decode("utf-8", "replace")


def _typed_value(value):
    """``rfc822; someone@example.com`` -> ``someone@example.com``.

    Folded lines are unfolded: one space between words.
    """
    value = " ".join(str(value or "").split())
    return value.split(";", 1)[1].strip() if ";" in value else value


def _typed_address(value):
    return email_normalize(_typed_value(value)) if value else False


def _status(value):
    match = STATUS_RE.search(str(value or ""))
    return match.group(0) if match else ""


def _split_addresses(values):
    emails = []
    for value in values:
        for item in str(value).split(","):
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
