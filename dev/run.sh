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
# the sink also plays the mail server of the demo customer that bounces
"$PY" dev/smtp_sink.py --port "$SMTP_PORT" --spool "$VAR/mail" \
    --bounce-domain "$BOUNCE_DOMAIN" \
    --odoo-url "http://127.0.0.1:$ODOO_HTTP_PORT" --odoo-db "$DEMO_DB" &
pids+=($!)

if module_installed "$DEMO_DB" sengerio_mailing; then
    log "updating sengerio_mailing on $DEMO_DB"
    odoo_bin -d "$DEMO_DB" -u sengerio_mailing --stop-after-init --no-http --log-level=warn
else
    log "creating $DEMO_DB with demo data and sengerio_mailing (about a minute)"
    odoo_bin -d "$DEMO_DB" -i sengerio_mailing --stop-after-init --no-http --log-level=warn
fi
SMTP_PORT="$SMTP_PORT" ALIAS_DOMAIN="$ALIAS_DOMAIN" ODOO_URL="http://127.0.0.1:$ODOO_HTTP_PORT" \
    odoo_bin shell -d "$DEMO_DB" --no-http --log-level=warn <dev/configure_db.py

"$PY" "$ODOO_SRC/odoo-bin" --addons-path="$ADDONS_PATH" -d "$DEMO_DB" \
    --db-filter="^${DEMO_DB}\$" --http-interface=127.0.0.1 --http-port="$ODOO_HTTP_PORT" "$@" &
pids+=($!)
odoo_pid=$!

log "waiting for Odoo at http://127.0.0.1:$ODOO_HTTP_PORT"
until "$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=5)" \
    "http://127.0.0.1:$ODOO_HTTP_PORT/web/health" 2>/dev/null; do
    kill -0 "$odoo_pid" 2>/dev/null || die "Odoo stopped, see its log above"
    sleep 1
done
# once per database: documents really sent through Odoo's flows
"$PY" dev/seed_demo.py --url "http://127.0.0.1:$ODOO_HTTP_PORT" --db "$DEMO_DB" ||
    log "seeding the demo documents failed (see above); Odoo keeps running"

cat >&2 <<MSG

  Odoo is ready at http://localhost:$ODOO_HTTP_PORT
  Log in as admin / admin, or as the demo salesperson demo / demo:
  Generated Documents lists the demo documents sent, bounced and failed.
  Sent mail lands in $VAR/mail/ (<stamp>.eml + <stamp>.json envelope):
  the hidden copies are there, as an extra envelope recipient.
  Customer "Nowhere Travel" (any address @$BOUNCE_DOMAIN) bounces: send it
  a quotation and watch the bounce come back to the sender within a minute.
  Start over with: make clean-db
  Stop with Ctrl-C.

MSG
wait "$odoo_pid"
