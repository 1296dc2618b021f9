from odoo import api, models


class MailTrackingEmail(models.Model):
    _inherit = "mail.tracking.email"

    @api.model_create_multi
    def create(self, vals_list):
        """No tracking row for an email of a document: nothing to open or hide.

        ``mail_tracking`` creates one row per email it sends, then adds a
        pixel pointing to it; ``ir.mail_server`` reads that pixel for the
        ``X-Odoo-MailTracking-ID`` header, and swallows any SMTP error of an
        email with a row. A document email gets an unsaved placeholder instead
        (``mail_tracking`` pairs one record with each email): no row, so no
        pixel, no header, and its failures stay Odoo's failures.
        """
        messages = self.env["mail.message"].sudo()
        untracked = [
            bool(
                vals.get("mail_message_id")
                and messages.browse(vals["mail_message_id"]).sengerio_document_type
            )
            for vals in vals_list
        ]
        created = iter(
            super().create(
                [
                    vals
                    for vals, skip in zip(vals_list, untracked, strict=True)
                    if not skip
                ]
            )
        )
        return self.concat(
            *(self.new() if skip else next(created) for skip in untracked)
        )

    def tracking_img_add(self, email):
        """No pixel for a placeholder (a document email, see ``create``)."""
        if not self.id:
            return None
        return super().tracking_img_add(email)
