from odoo import models

from .. import bounce


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

    def send_email(self, message, *args, **kwargs):
        """Remember a hidden copy as sent once the SMTP server accepted it."""
        # read before super(): the Bcc header is removed from the message there
        bcc = message["Bcc"]
        message_id = message["Message-Id"]
        res = super().send_email(message, *args, **kwargs)
        if bcc and message_id:
            self.env["mail.mail"]._sengerio_mark_bcc_sent(message_id, bcc)
        return res
