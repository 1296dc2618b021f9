# Copyright 2026 Sengerio
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Sengerio Mailing - Email tracking",
    "summary": "Document emails stay untracked when OCA's Email tracking "
    "(mail_tracking) is installed; other emails keep its tracking",
    "version": "18.0.1.0.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/sengerio/sengerio_mailing",
    "author": "Sengerio",
    "license": "LGPL-3",
    "depends": ["sengerio_mailing", "mail_tracking"],
    "auto_install": True,
}
