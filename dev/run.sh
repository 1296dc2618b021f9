#!/usr/bin/env bash
# `make run`: Odoo 18 with sengerio_mailing on a demo database, mail going to
# a local SMTP sink that stores every message under var/mail/.
# `make run MAIL=real`: mail going to the mail chain instead (dev/mailchain.py:
# a private Postfix and Dovecot), bounces fetched back over IMAP.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"

port_free "$ODOO_HTTP_PORT" || die "port $ODOO_HTTP_PORT is busy: stop the other Odoo first or set ODOO_HTTP_PORT"
port_free "$SMTP_PORT" || die "port $SMTP_PORT is busy: stop the other SMTP sink first or set SMTP_PORT"
MAIL="${MAIL:-sink}"
IMAP_PORT="${IMAP_PORT:-2143}"
case "$MAIL" in
sink) ;;
real) port_free "$IMAP_PORT" || die "port $IMAP_PORT is busy: set IMAP_PORT" ;;
*) die "MAIL=$MAIL: use MAIL=sink (the default) or MAIL=real" ;;
esac

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$MAIL" = real ]; then
    ready="$VAR/mailchain.ready"
    rm -f "$ready"
    "$PY" dev/mailchain.py --dir "$VAR/mailchain" --alias-domain "$ALIAS_DOMAIN" \
        --smtp-port "$SMTP_PORT" --imap-port "$IMAP_PORT" --ready-file "$ready" &
    pids+=($!)
    for _ in $(seq 120); do
        [ -f "$ready" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || die "the mail chain did not start, see $VAR/mailchain/log/"
        sleep 0.5
    done
    [ -f "$ready" ] || die "the mail chain did not start, see $VAR/mailchain/log/"
else
    mkdir -p "$VAR/mail"
    # the sink also plays the mail server of the demo customer that bounces
    "$PY" dev/smtp_sink.py --port "$SMTP_PORT" --spool "$VAR/mail" \
        --bounce-domain "$BOUNCE_DOMAIN" \
        --odoo-url "http://127.0.0.1:$ODOO_HTTP_PORT" --odoo-db "$DEMO_DB" &
    pids+=($!)
fi

if module_installed "$DEMO_DB" sengerio_mailing; then
    log "updating sengerio_mailing on $DEMO_DB"
    odoo_bin -d "$DEMO_DB" -u sengerio_mailing --stop-after-init --no-http --log-level=warn
else
    log "creating $DEMO_DB with demo data and sengerio_mailing (about a minute)"
    odoo_bin -d "$DEMO_DB" -i sengerio_mailing --stop-after-init --no-http --log-level=warn
fi
SMTP_PORT="$SMTP_PORT" ALIAS_DOMAIN="$ALIAS_DOMAIN" ODOO_URL="http://127.0.0.1:$ODOO_HTTP_PORT" \
    odoo_bin shell -d "$DEMO_DB" --no-http --log-level=warn <dev/configure_db.py
mail_note="Sent mail lands in $VAR/mail/ (<stamp>.eml + <stamp>.json envelope)."
if [ "$MAIL" = real ]; then
    eval "$("$PY" dev/mailchain.py --print-settings)"
    IMAP_PORT="$IMAP_PORT" ALIAS_DOMAIN="$ALIAS_DOMAIN" MAILCHAIN_PASSWORD="$MAILCHAIN_PASSWORD" \
        AGENCY_DOMAIN="$AGENCY_DOMAIN" CUSTOMER_DOMAIN="$CUSTOMER_DOMAIN" \
        odoo_bin shell -d "$DEMO_DB" --no-http --log-level=warn <dev/configure_mailchain.py
    mail_note="Mail goes through Postfix at 127.0.0.1:$SMTP_PORT into the IMAP mailboxes
  above (Dovecot at 127.0.0.1:$IMAP_PORT); logs in $VAR/mailchain/log/."
fi

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
if [ "$MAIL" = real ]; then
    cat >&2 <<MSG

  Odoo is ready at http://localhost:$ODOO_HTTP_PORT
  Log in as admin / admin (demo salesperson: demo / demo).
  $mail_note
  Stop with Ctrl-C.

MSG
else
    # once per database: documents really sent through Odoo's flows
    "$PY" dev/seed_demo.py --url "http://127.0.0.1:$ODOO_HTTP_PORT" --db "$DEMO_DB" ||
        log "seeding the demo documents failed (see above); Odoo keeps running"
    cat >&2 <<MSG

  Odoo is ready at http://localhost:$ODOO_HTTP_PORT
  Log in as admin / admin, or as the demo salesperson demo / demo:
  Generated Documents lists the demo documents sent, bounced and failed.
  $mail_note
  The hidden copies are there, as an extra envelope recipient.
  Customer "Nowhere Travel" (any address @$BOUNCE_DOMAIN) bounces: send it
  a quotation and watch the bounce come back to the sender within a minute.
  Start over with: make clean-db
  Stop with Ctrl-C.

MSG
fi
wait "$odoo_pid"
