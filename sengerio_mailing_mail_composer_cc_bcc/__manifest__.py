# Copyright 2026 Sengerio
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Sengerio Mailing - Email CC and BCC",
    "summary": "The sender's hidden copy of document emails also when OCA's "
    "Email CC and BCC (mail_composer_cc_bcc) is installed",
    "version": "18.0.1.0.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/sengerio/sengerio_mailing",
    "author": "Sengerio",
    "license": "LGPL-3",
    "depends": ["sengerio_mailing", "mail_composer_cc_bcc"],
    "auto_install": True,
}
