#!/usr/bin/env bash
# `make test`: lint, the addon's Odoo tests, then the end-to-end tests against
# a real Odoo server and SMTP sink. Ends with one line "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"

RESULTS="$VAR/test-results${SENGERIO_OCA:+-oca}"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
TEST_DB="${TEST_DB:-sengerio_test_$$}"
passed=0
failed=0

cleanup() {
    trap - EXIT INT TERM
    # Stop anything this run started (Odoo, SMTP sinks) and drop its database.
    pkill -TERM -P $$ 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -z "${KEEP_TEST_DB:-}" ] && db_exists "$TEST_DB"; then
        dropdb --if-exists "$TEST_DB" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count() { # count NAME PASSED FAILED
    passed=$((passed + $2))
    failed=$((failed + $3))
    log "$1: $2 passed, $3 failed"
}

# SENGERIO_OCA=1: the Odoo and end-to-end tests beside the OCA mail addons of
# dev/oca-addons.txt, with the bridges (step 4 runs this script so).
modules="${TEST_MODULES:-sengerio_mailing,mass_mailing}"
tags="${ODOO_TEST_TAGS:-/sengerio_mailing}"
e2e_tests="${E2E_TESTS:-tests}"
if [ -n "${SENGERIO_OCA:-}" ]; then
    source "$ROOT/dev/oca.sh"
    setup_oca_addons
    export ADDONS_PATH="$ADDONS_PATH,$OCA_ADDONS_DIR"
    modules="$modules,$OCA_MODULES"
    tags="${ODOO_TEST_TAGS:-$OCA_TEST_TAGS}"
    e2e_tests="${E2E_TESTS:-$OCA_E2E_TESTS}"
fi

# 1. Lint ------------------------------------------------------------------
lint() { # lint NAME CMD...
    local name=$1
    shift
    if "$@" >"$RESULTS/$name.log" 2>&1; then
        count "$name" 1 0
    else
        cat "$RESULTS/$name.log" >&2
        count "$name" 0 1
    fi
}
if [ -z "${SENGERIO_OCA:-}" ]; then # the same code: linted once
    lint "ruff-check" "$VENV/bin/ruff" check .
    lint "ruff-format" "$VENV/bin/ruff" format --check .
    lint "pylint-odoo" "$VENV/bin/pylint" --rcfile=.pylintrc-mandatory sengerio_mailing sengerio_mailing_*/
    lint "readme" "$PY" dev/gen_readme.py --check
fi

# 2. Odoo tests ------------------------------------------------------------
dropdb --if-exists "$TEST_DB" 2>/dev/null || true
log "installing sengerio_mailing on $TEST_DB and running its Odoo tests"
odoo_log="$RESULTS/odoo-tests.log"
set +e
odoo_bin -d "$TEST_DB" -i "$modules" --test-enable \
    --test-tags "$tags" --stop-after-init \
    --http-interface=127.0.0.1 --http-port="${ODOO_TEST_HTTP_PORT:-8169}" \
    --max-cron-threads=0 --log-level=test >"$odoo_log" 2>&1
odoo_rc=$?
set -e
summary=$(grep -E 'odoo\.tests\.result: [0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$odoo_log" | tail -1 || true)
if [ -n "$summary" ]; then
    read -r f e t < <(sed -E 's/.*: ([0-9]+) failed, ([0-9]+) error\(s\) of ([0-9]+) tests.*/\1 \2 \3/' <<<"$summary")
    odoo_failed=$((f + e))
    odoo_passed=$((t - odoo_failed))
else
    odoo_passed=0
    odoo_failed=1
fi
if [ "$odoo_rc" -ne 0 ] && [ "$odoo_failed" -eq 0 ]; then
    odoo_failed=1
fi
# Show failures and errors from the Odoo log.
if [ "$odoo_failed" -ne 0 ]; then
    grep -E ' (ERROR|CRITICAL) ' -A 30 "$odoo_log" | head -300 >&2 || tail -50 "$odoo_log" >&2
fi
count "odoo-tests" "$odoo_passed" "$odoo_failed"

# 3. End-to-end tests ------------------------------------------------------
log "running the end-to-end tests"
set +e
# shellcheck disable=SC2086 # a list of paths
SENGERIO_E2E_DB="$TEST_DB" "$PY" -m pytest $e2e_tests -p no:cacheprovider \
    --junitxml="$RESULTS/e2e.xml" -q ${PYTEST_ARGS:-} >&2
set -e
read -r e2e_passed e2e_failed < <("$PY" - "$RESULTS/e2e.xml" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - bad - skipped, bad if total else max(bad, 1))
PYEOF
)
count "e2e" "$e2e_passed" "$e2e_failed"

# 4. Beside the OCA mail addons --------------------------------------------
if [ -z "${SENGERIO_OCA:-}" ] && [ -z "${SKIP_OCA:-}" ]; then
    log "again beside the OCA mail addons (dev/oca-addons.txt), on ${TEST_DB}_oca"
    set +e
    oca_line=$(SENGERIO_OCA=1 TEST_DB="${TEST_DB}_oca" bash "$ROOT/dev/test.sh" | tail -1)
    set -e
    if [[ "$oca_line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        count "oca" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
        count "oca" 0 1
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
