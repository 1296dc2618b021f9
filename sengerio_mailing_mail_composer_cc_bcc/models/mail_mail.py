from odoo import models


class MailMail(models.Model):
    _inherit = "mail.mail"

    def _send(self, *args, **kwargs):
        """Emails of notification messages go out as Odoo sends them.

        Odoo's own sends through a template (a confirmation after a portal
        signature, the payment email, a purchase reminder) post a
        notification, for which ``mail_composer_cc_bcc`` skips its Cc and Bcc
        (``skip_adding_cc_bcc``). Its rewrite of the emails and their envelope
        still ran (``is_from_composer``), without their recipients: no To
        header, or no email at all.
        """
        if self.env.context.get("skip_adding_cc_bcc") and self.env.context.get(
            "is_from_composer"
        ):
            return super(MailMail, self.with_context(is_from_composer=False))._send(
                *args, **kwargs
            )
        return super()._send(*args, **kwargs)
