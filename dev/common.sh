# Shared settings for the dev scripts. Source it, do not run it.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ODOO_SRC="${ODOO_SRC:-/opt/odoo-18.0}"
ODOO_BRANCH_URL="${ODOO_BRANCH_URL:-https://github.com/odoo/odoo.git}"
# The virtualenv lives outside the checkout so fresh clones (CI) reuse it.
VENV="${SENGERIO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sengerio_mailing/venv}"
PY="$VENV/bin/python"
VAR="$ROOT/var"
ODOO_HTTP_PORT="${ODOO_HTTP_PORT:-8069}"
SMTP_PORT="${SMTP_PORT:-2525}"
ALIAS_DOMAIN="${ALIAS_DOMAIN:-sengerio.localhost}"
DEMO_DB="${DEMO_DB:-sengerio_demo}"
# the demo customer domain whose mail server bounces (dev/seed_demo.py)
BOUNCE_DOMAIN="${BOUNCE_DOMAIN:-nowhere.example}"
ADDONS_PATH="$ODOO_SRC/addons,$ODOO_SRC/odoo/addons,$ROOT"
export ROOT ODOO_SRC VENV PY VAR ODOO_HTTP_PORT SMTP_PORT ALIAS_DOMAIN DEMO_DB ADDONS_PATH BOUNCE_DOMAIN

log() { printf '[sengerio] %s\n' "$*" >&2; }
die() { printf '[sengerio] error: %s\n' "$*" >&2; exit 1; }

odoo_bin() {
    "$PY" "$ODOO_SRC/odoo-bin" --addons-path="$ADDONS_PATH" "$@"
}

db_exists() {
    psql -lqtA -d postgres | cut -d'|' -f1 | grep -qx "$1"
}

module_installed() {
    db_exists "$1" && [ "$(psql -d "$1" -tAc "SELECT state FROM ir_module_module WHERE name='$2'" 2>/dev/null)" = "installed" ]
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
