from odoo import models
from odoo.tools import email_normalize_all

# Context keys that Odoo's "Send" actions put on the composer.
SEND_ACTION_KEYS = ("mark_so_as_sent", "mark_rfq_as_sent", "force_email")


class MailComposeMessage(models.TransientModel):
    _inherit = "mail.compose.message"

    def _action_send_mail_comment(self, res_ids):
        """Mark messages posted by a document send, so they get classified."""
        return super(
            MailComposeMessage, self._sengerio_with_send_context()
        )._action_send_mail_comment(res_ids)

    def action_schedule_message(self, scheduled_date=False):
        """Send Later: the scheduled message remembers it sends a document."""
        return super(
            MailComposeMessage, self._sengerio_with_send_context()
        ).action_schedule_message(scheduled_date=scheduled_date)

    def _prepare_mail_values(self, res_ids):
        """In mass mode, classify each record's email in its values."""
        results = super()._prepare_mail_values(res_ids)
        if (
            self.composition_mode != "mass_mail"
            or not self._sengerio_is_document_send()
        ):
            return results
        records = self.env[self.model].browse(res_ids)
        for record in records:
            values = results.get(record.id)
            if not values or not hasattr(record, "_sengerio_send_values"):
                continue
            partners = self.env["res.partner"].browse(
                [cmd[1] for cmd in values.get("recipient_ids") or [] if cmd[0] == 4]
            )
            others = email_normalize_all(
                "%s,%s" % (values.get("email_to") or "", values.get("email_cc") or "")
            )
            author = self.env["res.partner"].browse(values.get("author_id") or [])
            values.update(
                record._sengerio_send_values(
                    self.template_id, author, partners, other_emails=others
                )
            )
        return results

    def _sengerio_with_send_context(self):
        """This composer, with the context that marks a document send."""
        if len(self) != 1 or not self._sengerio_is_document_send():
            return self
        return self.with_context(
            sengerio_document_send=True, sengerio_template_id=self.template_id.id
        )

    def _sengerio_is_document_send(self):
        """A send from a template or a document's Send button, not a chat."""
        return bool(
            self.model
            and (
                self.template_id
                or any(self.env.context.get(key) for key in SEND_ACTION_KEYS)
            )
        )
