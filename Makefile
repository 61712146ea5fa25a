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

# The whole suite on SQLite and, side by side with it, again on PostgreSQL (127.0.0.1:5432,
# user postgres; fresh databases per run, see tests/testenv.py) but for the tests marked
# any_database, whose subject the database does not change (pyproject.toml): they run in the
# SQLite half; and the tests marked many_connections run after the others of the PostgreSQL
# half, by themselves. Each half prints its output once it is done.
# Each half spreads its test files over TEST_WORKERS pytest-xdist workers, each with its own
# DATA_DIR, databases and block of ports, and each half has its own Redis databases
# (tests/testenv.py, tests/live.py). A file waiting on a browser, a server or a timeout
# leaves the cores to the others (docs/development.md). (WORKERS is the service's own
# setting: gunicorn's workers.)
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile

test: lint
	$(MAKE) --no-print-directory --jobs 2 --output-sync=target test-sqlite test-postgres

test-sqlite: install
	TEST_DATABASE=sqlite $(PYTEST)

test-postgres: install
	TEST_DATABASE=postgresql $(PYTEST) -m "not any_database and not many_connections"
	TEST_DATABASE=postgresql $(BIN)/python -m pytest -m many_connections

# Smoke test of the benchmark (bare MLflow vs this service, small sizes); numbers not asserted.
bench-quick: install
	$(BIN)/python bench/run.py --quick --no-write
