import functools

from odoo import api, models
from odoo.osv import expression


class SengerioGeneratedDocumentPart(models.AbstractModel):
    """A part of a Generated Documents entry: readable with its entry.

    Its recipients and its delivery reports tell as much as the entry, so a
    user reads them exactly when they may read the entry (see
    ``sengerio.generated.document._sengerio_access_condition``).
    """

    _name = "sengerio.generated.document.part"
    _description = "Part of a Generated Document"

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        """Only the parts of entries the user may read."""
        if not self.env.su:
            self.browse().check_access("read")
            Register = self.env["sengerio.generated.document"]
            if not Register._sengerio_sees_all():
                domain = expression.AND(
                    [list(domain or []), [("document_id", "in", Register._search([]))]]
                )
        return super()._search(domain, offset=offset, limit=limit, order=order)

    def _check_access(self, operation):
        """Reading a part needs reading its entry."""
        result = super()._check_access(operation)
        parts = self - result[0] if result else self
        if not parts or self.env.su:
            return result
        entries = parts.sudo().document_id.with_env(self.env)
        readable = entries._filtered_access("read")
        forbidden = parts.filtered(lambda part: part.sudo().document_id not in readable)
        if not forbidden:
            return result
        if result:
            forbidden |= result[0]
        return forbidden, functools.partial(
            self.env["ir.rule"]._make_access_error, operation, forbidden
        )
