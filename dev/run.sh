#!/usr/bin/env bash
# `make run`: Odoo 18 with sengerio_mailing on a demo database, mail going to
# a local SMTP sink that stores every message under var/mail/.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"

port_free "$ODOO_HTTP_PORT" || die "port $ODOO_HTTP_PORT is busy: stop the other Odoo first or set ODOO_HTTP_PORT"
port_free "$SMTP_PORT" || die "port $SMTP_PORT is busy: stop the other SMTP sink first or set SMTP_PORT"

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$VAR/mail"
"$PY" dev/smtp_sink.py --port "$SMTP_PORT" --spool "$VAR/mail" &
pids+=($!)

if module_installed "$DEMO_DB" sengerio_mailing; then
    log "updating sengerio_mailing on $DEMO_DB"
    odoo_bin -d "$DEMO_DB" -u sengerio_mailing --stop-after-init --no-http --log-level=warn
else
    log "creating $DEMO_DB with demo data and sengerio_mailing (about a minute)"
    odoo_bin -d "$DEMO_DB" -i sengerio_mailing --stop-after-init --no-http --log-level=warn
fi
SMTP_PORT="$SMTP_PORT" ALIAS_DOMAIN="$ALIAS_DOMAIN" \
    odoo_bin shell -d "$DEMO_DB" --no-http --log-level=warn <dev/configure_db.py

cat >&2 <<MSG

  Odoo is starting at http://localhost:$ODOO_HTTP_PORT
  Log in as admin / admin (demo salesperson: demo / demo).
  Sent mail lands in $VAR/mail/ (<stamp>.eml + <stamp>.json envelope).
  Stop with Ctrl-C.

MSG
"$PY" "$ODOO_SRC/odoo-bin" --addons-path="$ADDONS_PATH" -d "$DEMO_DB" \
    --db-filter="^${DEMO_DB}\$" --http-interface=127.0.0.1 --http-port="$ODOO_HTTP_PORT" "$@" &
pids+=($!)
wait "${pids[-1]}"
