# The two commands of the README, plus a few helpers.
.PHONY: run test test-scaleout setup lint bench clean-db

run:  ## Odoo 18 + sengerio_mailing on demo data, mail to var/mail/ (MAIL=real: through Postfix and Dovecot)
	bash dev/run.sh

test:  ## lint, Odoo tests, end-to-end tests; last line "N passed, N failed"
	bash dev/test.sh

test-scaleout:  ## only the scale-out tests: two servers drain 2,000 queued emails
	bash -c 'source dev/setup.sh && setup_all && SENGERIO_SCALEOUT=1 "$$PY" -m pytest tests/test_scale_out.py -p no:cacheprovider -q'

setup:  ## only prepare PostgreSQL, wkhtmltopdf, Odoo and the virtualenv
	bash dev/setup.sh

lint:
	bash -c 'source dev/common.sh && "$$VENV/bin/ruff" check . && "$$VENV/bin/ruff" format --check . && "$$VENV/bin/pylint" --rcfile=.pylintrc-mandatory sengerio_mailing sengerio_mailing_*/'

bench:  ## benchmark: 400 documents posted and sent, vanilla Odoo vs the addon, taking turns
	bash -c 'source dev/setup.sh && setup_all && "$$PY" bench/bcc_queue.py $(BENCH_ARGS)'

.PHONY: bench-register
bench-register:  ## benchmark: the Generated Documents list at 10,000 vs 1,000,000 entries
	bash -c 'source dev/setup.sh && setup_all && "$$PY" bench/register_list.py $(BENCH_ARGS)'

.PHONY: bench-bounce
bench-bounce:  ## benchmark: 1,000 DSNs through the mail gateway, vanilla Odoo vs the addon
	bash -c 'source dev/setup.sh && setup_all && "$$PY" bench/bounce_gateway.py $(BENCH_ARGS)'

.PHONY: screenshots
screenshots:  ## the README screenshots, taken by the browser tests into docs/screenshots/
	bash -c 'source dev/setup.sh && setup_all && SENGERIO_SCREENSHOTS="$$ROOT/docs/screenshots" "$$PY" -m pytest tests/test_browser.py tests/test_demo_seed_e2e.py -q -p no:cacheprovider'

.PHONY: bench-scaleout
bench-scaleout:  ## benchmark: 2,000 queued document emails drained by 1 vs 2 Odoo servers
	bash -c 'source dev/setup.sh && setup_all && "$$PY" bench/scale_out.py $(BENCH_ARGS)'

clean-db:  ## drop the demo database and its files (the next `make run` recreates and seeds it)
	bash -c 'source dev/common.sh && dropdb --if-exists "$$DEMO_DB" && rm -rf "$${XDG_DATA_HOME:-$$HOME/.local/share}/Odoo/filestore/$$DEMO_DB"'
