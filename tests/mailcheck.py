"""Checks on what the SMTP sink really received: envelope and raw bytes."""

import re
from email.utils import getaddresses

# Headers that identify the author: the sender's own address may be there.
AUTHOR_HEADERS = {"from", "sender", "reply-to"}
TRACKING_MARKS = (
    re.compile(rb"/mail/track/"),  # open-tracking pixel
    re.compile(rb"https?://[^\s\"'<>]+/r/[A-Za-z0-9]+"),  # shortened links
    re.compile(rb"/mail/tracking/open/|data-odoo-tracking-email"),  # mail_tracking
)
TRACKING_HEADERS = {
    "list-unsubscribe",
    "list-unsubscribe-post",
    "precedence",
    "x-odoo-mailtracking-id",  # mail_tracking
    "x-odoo-tracking-id",
}


def raw_headers(raw):
    """The header block of a raw message, unfolded, as (name, value) pairs."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0].decode("ascii", "replace")
    head = re.sub(r"\r?\n[ \t]+", " ", head)
    pairs = []
    for line in head.splitlines():
        name, _sep, value = line.partition(":")
        pairs.append((name.strip().lower(), value.strip()))
    return pairs


def assert_true_bcc(received, customer, sender):
    """``sender`` got exactly one copy: the envelope of the customer's message.

    :param received: every sink message of the send (parsed by the fixture)
    """
    carriers = [m for m in received if sender in m["rcpt_tos"]]
    assert len(carriers) == 1, "expected one SMTP message for the sender"
    mail = carriers[0]
    assert sorted(mail["rcpt_tos"]) == sorted([customer, sender])
    to = [a.lower() for _n, a in getaddresses(mail["message"].get_all("To", []))]
    assert to == [customer]
    for name, value in raw_headers(mail["raw"]):
        assert name not in ("bcc", "x-odoo-bcc"), "a Bcc header went on the wire"
        if name not in AUTHOR_HEADERS:
            assert sender not in value.lower(), "%s shows the hidden copy" % name
    return mail


def assert_no_hidden_copy(received):
    """Every envelope recipient is a visible (To/Cc) recipient."""
    assert received
    for mail in received:
        shown = {
            a.lower()
            for header in ("To", "Cc")
            for _n, a in getaddresses(mail["message"].get_all(header, []))
        }
        assert set(mail["rcpt_tos"]) <= shown, mail["rcpt_tos"]


def assert_no_tracking(received):
    for mail in received:
        for name, _value in raw_headers(mail["raw"]):
            assert name not in TRACKING_HEADERS, name
        for part in mail["message"].walk():
            if part.get_content_maintype() == "text":
                body = part.get_payload(decode=True)
                for mark in TRACKING_MARKS:
                    assert not mark.search(body), mark.pattern


def pdf_attachments(mail):
    return [
        part.get_content()
        for part in mail["message"].iter_attachments()
        if part.get_content_type() == "application/pdf"
    ]
