from odoo import fields, models


class SengerioGeneratedDocumentMixin(models.AbstractModel):
    """Smart button "Sent documents" on the documents that can be emailed."""

    _name = "sengerio.generated.document.mixin"
    _description = "Sent Documents Smart Button"

    sengerio_document_count = fields.Integer(
        "Sent Documents", compute="_compute_sengerio_document_count"
    )

    def _compute_sengerio_document_count(self):
        Register = self.env["sengerio.generated.document"]
        if not Register.has_access("read"):
            self.sengerio_document_count = 0
            return
        counts = dict(
            Register._read_group(
                [("res_model", "=", self._name), ("res_id", "in", self.ids)],
                ["res_id"],
                ["__count"],
            )
        )
        for record in self:
            record.sengerio_document_count = counts.get(record.id, 0)

    def _sengerio_past_document_type(self):
        """Type of a document emailed before the addon was installed.

        Odoo does not keep which template sent it: the type is read from the
        record as it is now.
        """
        return self._sengerio_document_type(self.env["mail.template"])

    def action_view_sengerio_documents(self):
        self.ensure_one()
        action = self.env["ir.actions.actions"]._for_xml_id(
            "sengerio_mailing.sengerio_generated_document_action"
        )
        action["domain"] = [("res_model", "=", self._name), ("res_id", "=", self.id)]
        action["context"] = {}
        action["name"] = self.env._("Sent Documents")
        return action
