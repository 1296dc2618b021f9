# The OCA mail addons pinned in dev/oca-addons.txt, unpacked onto an addons
# directory of their own. Source it after common.sh, do not run it.
# shellcheck shell=bash

OCA_PINS="$ROOT/dev/oca-addons.txt"
OCA_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/sengerio_mailing/oca-wheels"
OCA_ADDONS_DIR="$VAR/oca-addons"
# the Odoo modules of those wheels
OCA_MODULES="mail_tracking,mail_composer_cc_bcc"
export OCA_ADDONS_DIR OCA_MODULES

setup_oca_addons() {
    local stamp="$OCA_ADDONS_DIR/.sengerio-stamp" want pin wheel tmp
    want="$(sha256sum "$OCA_PINS" | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "fetching the OCA mail addons of $OCA_PINS"
    mkdir -p "$OCA_WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: -r "$OCA_PINS" -d "$OCA_WHEELS" >&2
    rm -rf "$OCA_ADDONS_DIR"
    mkdir -p "$OCA_ADDONS_DIR"
    tmp="$(mktemp -d)"
    while read -r pin; do
        # odoo-addon-mail_tracking==18.0.1.0.11 -> odoo_addon_mail_tracking-18.0.1.0.11-*.whl
        wheel=("$OCA_WHEELS/$(sed -e 's/-/_/g' -e 's/==/-/' <<<"$pin")"-*.whl)
        [ -f "${wheel[0]}" ] || die "no wheel for $pin in $OCA_WHEELS"
        "$PY" -m zipfile -e "${wheel[0]}" "$tmp"
    done < <(grep -Ev '^\s*(#|$)' "$OCA_PINS")
    find "$tmp/odoo/addons" -mindepth 1 -maxdepth 1 -type d -exec mv {} "$OCA_ADDONS_DIR/" \;
    rm -rf "$tmp"
    echo "$want" >"$stamp"
}

# what `make test` runs beside them: the addon's Odoo tests and the bridges'
OCA_TEST_TAGS="/sengerio_mailing,/sengerio_mailing_mail_tracking,/sengerio_mailing_mail_composer_cc_bcc"
# but for those about what mail_composer_cc_bcc changes by design: it sends
# every recipient of a composer send the customer's version, in one email
# (no email per language or internal recipient to keep the copy off)...
OCA_TEST_TAGS+=",-/sengerio_mailing:TestBccCarrier.test_copy_rides_the_customer_email_not_an_internal_one"
OCA_TEST_TAGS+=",-/sengerio_mailing:TestBccCarrier.test_copy_rides_the_first_customer_when_the_document_partner_is_not_a_recipient"
OCA_TEST_TAGS+=",-/sengerio_mailing:TestRegisterFollowsOdoo.test_an_entry_shared_by_sibling_emails_is_written_after_the_commit"
# ... and where a recipient without a valid address fails its whole email
# (IndexError in its _prepare_outgoing_list): the bridge's
# test_invalid_address_fails_then_resend_carries_the_copy says what then holds
OCA_TEST_TAGS+=",-/sengerio_mailing:TestBccRules.test_no_sender_at_all"
OCA_TEST_TAGS+=",-/sengerio_mailing:TestRegister.test_invalid_address_then_resend_without_second_copy"
# and the end-to-end tests of hidden copies, tracking, the register, bounces
OCA_E2E_TESTS="tests/test_bcc_e2e.py tests/test_access_e2e.py tests/test_bounce_e2e.py tests/test_oca_e2e.py"
# (not the sibling emails of one message: mail_composer_cc_bcc makes one)
OCA_E2E_TESTS+=" --deselect tests/test_bcc_e2e.py::test_sibling_emails_sent_by_two_processes_at_once"
