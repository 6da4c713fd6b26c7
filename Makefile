# The two commands of the README: `make run` and `make test` (`make test-fast`: the
# same run without the browser, worker and fault tiers).
.PHONY: run test test-fast bench venv

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

test: venv
	bin/test-setup
	$(PYTEST) $(PYTEST_ARGS)

test-fast: venv
	NO_BROWSER=1 bin/test-setup
	$(PYTEST) -m "not browser and not worker and not faults" $(PYTEST_ARGS)

bench: venv
	bench/run
