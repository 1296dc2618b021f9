from odoo import models

from odoo.addons.base.models.ir_mail_server import extract_rfc2822_addresses


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    def _prepare_email_message(self, message, smtp_session):
        """Keep the Bcc header's addresses in the envelope, as Odoo does.

        For a send from the composer, ``mail_composer_cc_bcc`` replaces the
        envelope with the one recipient each email is for. That drops the
        sender's hidden copy, which ``sengerio_mailing`` puts in the Bcc header
        of the customer's email (its own Bcc recipients get emails of their
        own, whose Bcc header is their address).
        """
        bcc = message["Bcc"]
        smtp_from, smtp_to_list, message = super()._prepare_email_message(
            message, smtp_session
        )
        if bcc and self.env.context.get("is_from_composer"):
            validated_to = self.env.context.get("send_validated_to") or []
            smtp_to_list = [
                *smtp_to_list,
                *(
                    address
                    for address in extract_rfc2822_addresses(bcc)
                    if address not in smtp_to_list
                    and (not validated_to or address in validated_to)
                ),
            ]
        return smtp_from, smtp_to_list, message
