import logging

from odoo import models
from odoo.tools import email_normalize

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from .. import bounce

_logger = logging.getLogger(__name__)


class _RefusalRecorder:
    """An SMTP session that keeps the recipients the server refused.

    ``smtplib`` raises only when the server refuses *every* envelope
    recipient; otherwise ``send_message`` returns the refused ones, which
    Odoo does not look at.
    """

    def __init__(self, smtp):
        self._smtp = smtp
        self.refused = {}

    def __getattr__(self, name):
        return getattr(self._smtp, name)

    def send_message(self, *args, **kwargs):
        self.refused = self._smtp.send_message(*args, **kwargs) or {}
        return self.refused


def smtp_reply(reply):
    """``(code, text)`` of an SMTP reply as one line: ``550 5.1.1 No such user``."""
    code, text = reply
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(f"{code} {text}".split())


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    def build_email(self, *args, **kwargs):
        """Make the notices about bounces valid SMTP, whatever the report.

        Python's email package writes a ``message/*`` attachment exactly as
        it got it: a report received with bare LF line endings, 8-bit text or
        very long lines would reach the wire so, and strict servers refuse
        the whole email. The notice's own text goes quoted-printable, so it
        is 7-bit for servers that do not announce 8BITMIME.
        """
        msg = super().build_email(*args, **kwargs)
        if msg[bounce.NOTICE_HEADER]:
            for part in msg.walk():
                if part.is_multipart():
                    continue
                if part.get_content_maintype() == "message" and isinstance(
                    part.get_payload(), str
                ):
                    raw = part.get_payload(decode=True)
                    ctype, cte, payload = bounce.report_wire_form(raw)
                    part.set_payload(payload)
                    part.replace_header("Content-Type", ctype)
                    if part["Content-Transfer-Encoding"]:
                        part.replace_header("Content-Transfer-Encoding", cte)
                    else:
                        part["Content-Transfer-Encoding"] = cte
                elif part.get_content_maintype() == "text" and str(
                    part["Content-Transfer-Encoding"]
                ).lower() in ("8bit", "binary"):
                    part.set_content(
                        part.get_content(),
                        subtype=part.get_content_subtype(),
                        charset="utf-8",
                        cte="quoted-printable",
                    )
        return msg

    def send_email(self, message, *args, smtp_session=None, **kwargs):
        """Send the hidden copy with the customer's email; never hide a refusal.

        When the server refuses the customer but takes the sender's hidden
        copy, the email fails as it would without the copy (Odoo's
        notification turns ``exception``, its resend wizard works); the
        copy is recorded as sent, so a resend sends no second one. When the
        server refuses only the copy, that is noted and the email is sent.
        """
        # read before super(): the Bcc header is removed from the message there
        bcc = message["Bcc"]
        message_id = message["Message-Id"]
        if not (bcc and message_id):
            return super().send_email(
                message, *args, smtp_session=smtp_session, **kwargs
            )
        recorder = _RefusalRecorder(smtp_session) if smtp_session else None
        res = super().send_email(message, *args, smtp_session=recorder, **kwargs)
        refused = {
            email_normalize(address) or address: reply
            for address, reply in (recorder.refused if recorder else {}).items()
        }
        bcc_email = email_normalize(bcc) or bcc
        bcc_refusal = refused.pop(bcc_email, None)
        self.env["mail.mail"]._sengerio_bcc_done(
            message_id, bcc, refusal=bcc_refusal and smtp_reply(bcc_refusal)
        )
        if refused:
            reason = "; ".join(
                "%s: %s" % (address, smtp_reply(reply))
                for address, reply in refused.items()
            )
            _logger.info(
                "Mail %s: the SMTP server refused %s, the hidden copy went out",
                message_id,
                reason,
            )
            raise MailDeliveryException(reason)
        return res
