#!/usr/bin/env bash
# Idempotent setup shared by `make run` and `make test`:
# system packages, PostgreSQL, wkhtmltopdf, Odoo source and the virtualenv.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

apt_updated=""
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing system packages: ${missing[*]} (install them, then retry)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        $sudo apt-get update -qq >&2
        apt_updated=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

setup_system() {
    # chromium: the browser the end-to-end tests drive (tests/test_browser.py)
    apt_install postgresql postgresql-client libpq-dev wkhtmltopdf git \
        build-essential python3-dev fonts-dejavu-core chromium
}

# Postfix and Dovecot for the mail chain (dev/mailchain.py): private
# instances only, so Debian's own are left unconfigured ("No configuration")
# and never started.
setup_mailchain() {
    local sudo="" new_dovecot=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! dpkg -s postfix >/dev/null 2>&1; then
        echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    fi
    dpkg -s dovecot-core >/dev/null 2>&1 || new_dovecot=1
    apt_install postfix dovecot-imapd dovecot-lmtpd
    if [ -n "$new_dovecot" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        # the package starts a system-wide IMAP server: not ours to run
        $sudo systemctl disable --now dovecot.service dovecot.socket >&2 || true
    fi
}

setup_postgres() {
    if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
        die "no PostgreSQL cluster found (pg_lsclusters is empty)"
    fi
    local ver name
    read -r ver name _ < <(pg_lsclusters -h | head -1)
    if ! pg_lsclusters -h | head -1 | grep -q online; then
        log "starting PostgreSQL $ver/$name"
        pg_ctlcluster "$ver" "$name" start
    fi
    local me
    me="$(id -un)"
    if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$me'\"" | grep -q 1; then
        log "creating PostgreSQL role $me"
        su postgres -c "createuser --superuser '$me'"
    fi
}

setup_odoo_src() {
    if [ -f "$ODOO_SRC/odoo-bin" ]; then
        return 0
    fi
    log "no Odoo at $ODOO_SRC; trying to clone the 18.0 branch"
    if git clone --depth 1 --branch 18.0 "$ODOO_BRANCH_URL" "$ODOO_SRC" >&2; then
        return 0
    fi
    die "Odoo 18.0 not found at $ODOO_SRC and it could not be cloned: put an Odoo 18.0 Community tree there or set ODOO_SRC to one"
}

setup_venv() {
    local stamp="$VENV/.sengerio-stamp" want
    # rebuilt when a requirement, or the way they are installed, changes
    want="$( (cat "$ODOO_SRC/requirements.txt" "$ROOT/dev/requirements-dev.txt" && declare -f setup_venv) | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "building the virtualenv at $VENV (a few minutes the first time)"
    mkdir -p "$(dirname "$VENV")"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade "pip<25" "setuptools<81" wheel >&2
    # Odoo's pins, with two fixes: cbor2 5.4.2 no longer builds (5.4.6 is the
    # compatible fix release) and python-ldap only serves auth_ldap.
    local req="$VENV/odoo-requirements.txt"
    sed -e 's/^cbor2==5\.4\.2/cbor2==5.4.6/' -e '/^python-ldap/d' \
        "$ODOO_SRC/requirements.txt" >"$req"
    "$PY" -m pip install -q -r "$req" -r "$ROOT/dev/requirements-dev.txt" >&2
    echo "$want" >"$stamp"
}

setup_all() {
    setup_system
    setup_mailchain
    setup_postgres
    setup_odoo_src
    setup_venv
    mkdir -p "$VAR"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    setup_all
    log "setup done: Odoo $ODOO_SRC, virtualenv $VENV"
fi
