# The two commands of the README: `make serve` and `make test` (SQLite, then PostgreSQL).
# `make test` needs, besides Python 3.11: PostgreSQL at 127.0.0.1:5432 (user postgres, trust
# auth; TEST_POSTGRES_URL names another) for its second half, and Debian's chromium
# (`apt-get install chromium`) for the browser tests. Without PostgreSQL, `make test-sqlite`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# requirements.txt is what the service runs on (the image installs only it); the tests' and
# benchmark's tools come from requirements-dev.txt, which includes it.
$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: install serve test test-sqlite test-postgres lint bench-quick
install: $(BIN)/.installed

serve: install
	$(BIN)/python manage.py serve

# Kubernetes' schemas ship inside kubernetes-validate: the check needs no network.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/kubernetes-validate --strict --quiet -k 1.30.0 deploy/kubernetes/*.yaml

# The whole suite twice: on SQLite, then on PostgreSQL (127.0.0.1:5432, user postgres; fresh
# databases per run, see tests/testenv.py).
test: lint test-sqlite test-postgres

test-sqlite: install
	TEST_DATABASE=sqlite $(BIN)/python -m pytest

test-postgres: install
	TEST_DATABASE=postgresql $(BIN)/python -m pytest

# Smoke test of the benchmark (bare MLflow vs this service, small sizes); numbers not asserted.
bench-quick: install
	$(BIN)/python bench/run.py --quick --no-write
