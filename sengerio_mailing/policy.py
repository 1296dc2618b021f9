"""Sengerio's mailing policy as small pure functions.

Which document type a send is, and who gets the hidden copy. The Odoo
overrides in ``models/`` gather the facts and call these.
"""

from collections import namedtuple

from odoo.tools import email_normalize
from odoo.tools.mail import single_email_re

# Document types that get a hidden copy to their sender, in settings order.
BCC_DOCUMENT_TYPES = (
    "quotation",
    "booking_confirmation",
    "invoice",
    "credit_note",
    "supplier_document",
)
DOCUMENT_TYPES = (*BCC_DOCUMENT_TYPES, "other")

# Sale order templates that are not the order itself (payment, cancellation).
SALE_OTHER_TEMPLATES = frozenset(
    {
        "sale.mail_template_sale_payment_executed",
        "sale.mail_template_sale_cancellation",
    }
)
# Purchase templates that send the RFQ or the purchase order to the vendor.
PURCHASE_DOCUMENT_TEMPLATES = frozenset(
    {
        "purchase.email_template_edi_purchase",
        "purchase.email_template_edi_purchase_done",
    }
)

#: A possible sender: display name, raw email and whether it is a person
#: (not the company, not OdooBot).
Sender = namedtuple("Sender", ["name", "email", "is_person"])

# Why a send that could have had a hidden copy got none.
NO_BCC_SENDER = "no_sender"
NO_BCC_INVALID_EMAIL = "invalid_email"
NO_BCC_VISIBLE = "visible_recipient"


def sale_order_document_type(state, proforma=False, template_xmlid=None, cancel=False):
    """Type of a sale order send: quotation, booking confirmation or other."""
    if proforma or cancel or template_xmlid in SALE_OTHER_TEMPLATES:
        return "other"
    if state in ("draft", "sent"):
        return "quotation"
    if state == "sale":
        return "booking_confirmation"
    return "other"


def account_move_document_type(move_type):
    """Type of a journal entry send: customer invoice, credit note or other."""
    return {"out_invoice": "invoice", "out_refund": "credit_note"}.get(
        move_type, "other"
    )


def purchase_order_document_type(template_xmlid):
    """Type of a purchase order send: the RFQ/PO itself, or other."""
    if template_xmlid in PURCHASE_DOCUMENT_TEMPLATES:
        return "supplier_document"
    return "other"


def valid_email(email):
    """Return the normalized address if ``email`` is one well-formed address."""
    normalized = email_normalize(email or "", strict=True)
    if normalized and single_email_re.match(normalized) and "@@" not in email:
        return normalized
    return None


def choose_bcc_recipient(author, responsible, visible_emails):
    """Return ``(sender, email, reason)`` for the hidden copy of a send.

    ``email`` is the normalized address to copy, or ``None`` with a
    ``reason`` (one of the ``NO_BCC_*`` codes); ``sender`` is the chosen
    :class:`Sender`, if any.

    The sender is the message author when it is a person with an email,
    else the document's responsible user. No copy goes to an invalid address
    or to someone who already receives the email as a visible recipient.
    """
    if author and author.is_person and author.email:
        sender = author
    elif responsible and responsible.email:
        sender = responsible
    else:
        return None, None, NO_BCC_SENDER
    email = valid_email(sender.email)
    if not email:
        return sender, None, NO_BCC_INVALID_EMAIL
    if email in {email_normalize(e) for e in visible_emails if e}:
        return sender, None, NO_BCC_VISIBLE
    return sender, email, None


# Register states, from best to worst: an entry shows its worst recipient.
STATE_SEVERITY = ("sent", "outgoing", "cancel", "exception", "bounced")
NOTIFICATION_STATES = {
    "ready": "outgoing",
    "process": "outgoing",
    "pending": "outgoing",
    "sent": "sent",
    "bounce": "bounced",
    "exception": "exception",
    "canceled": "cancel",
}
MAIL_STATES = {
    "outgoing": "outgoing",
    "sent": "sent",
    "received": "sent",
    "exception": "exception",
    "cancel": "cancel",
}


def worst_state(states):
    """The worst of register ``states`` (None for no state)."""
    ranked = [STATE_SEVERITY.index(s) for s in states if s in STATE_SEVERITY]
    return STATE_SEVERITY[max(ranked)] if ranked else None
