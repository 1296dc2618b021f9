# Copyright 2026 Sengerio
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Sengerio Mailing",
    "summary": "Document emails with a true BCC to the sender, no tracking, "
    "a register of generated documents and bounces returned to the sender",
    "version": "18.0.1.0.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/sengerio/sengerio_mailing",
    "author": "Sengerio",
    "license": "LGPL-3",
    "depends": ["mail", "sale_management", "sale_async_emails", "account", "purchase"],
    "external_dependencies": {"python": ["flufl.bounce"]},
    "post_init_hook": "post_init_hook",
    "uninstall_hook": "uninstall_hook",
    "data": [
        "security/sengerio_mailing_security.xml",
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "views/sengerio_generated_document_views.xml",
        "views/sale_order_views.xml",
        "views/account_move_views.xml",
        "views/purchase_order_views.xml",
        "views/res_config_settings_views.xml",
        "views/sengerio_bounce_notice_views.xml",
        "views/sengerio_mailing_menus.xml",
    ],
}
