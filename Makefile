# The two commands of the README: `make run` and `make test` (`make test-fast`: the
# same run without the browser, worker and fault tiers).
.PHONY: run test test-fast lint lint-fix bench bench-listeners venv

# The test run's own servers. Empty REDIS_URL_TEST / BROKER_URL_TEST: the test
# settings claim a pair of Redis databases of this checkout (never a developer's
# REDIS_URL); the test database is named after this checkout (TEST_DATABASE_NAME
# overrides). The fault tests start a PostgreSQL and a Redis of their own.
export DATABASE_URL_TEST ?= postgres://postgres@127.0.0.1:5432/postgres
export REDIS_URL_TEST ?=
export BROKER_URL_TEST ?=

venv:
	bin/bootstrap

run:
	bin/run-dev

PYTEST = DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) CELERY_BROKER_URL=$(BROKER_URL_TEST) DJANGO_SETTINGS_MODULE=config_hub.settings.test \
	.venv/bin/python -m pytest

# The checks every change passes before a test runs: the layers (.importlinter),
# ruff (ruff.toml), and no model change without its migration.
lint: venv
	.venv/bin/lint-imports
	.venv/bin/ruff check .
	DJANGO_SETTINGS_MODULE=config_hub.settings.base .venv/bin/python manage.py makemigrations --check --dry-run

lint-fix: venv
	.venv/bin/ruff check --fix .

test: lint
	bin/test-setup
	$(PYTEST) $(PYTEST_ARGS)

test-fast: lint
	NO_BROWSER=1 bin/test-setup
	$(PYTEST) -m "not browser and not worker and not faults" $(PYTEST_ARGS)

bench: venv
	bench/run

# 10,000 change-stream listeners on the Procfile's web process (docs/performance.md).
bench-listeners: venv
	bench/listeners
