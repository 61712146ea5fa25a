"""Where the test suite keeps its data: a DATA_DIR per process in the run's temporary directory,
and fresh PostgreSQL databases when TEST_DATABASE=postgresql; and which ports' and Redis
databases' slot is this half's of `make test`.

A pytest plugin (`-p tests.testenv` in pyproject.toml), not a conftest: pytest-django reads
the settings before any conftest is imported, so the environment must be set earlier.

- TEST_DATABASE=sqlite (default): in-process tests and every live server use SQLite files
  under the run's temporary directory.
- TEST_DATABASE=postgresql: in-process tests use a fresh Django database (pytest-django makes
  its `test_` copy) and a fresh MLflow database; every live server gets two fresh databases of
  its own. All are created on TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432)
  and dropped when the run ends, with the run's directory.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite").lower()
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"TEST_DATABASE is {TEST_DATABASE!r}: use sqlite or postgresql.")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# `make test` runs its SQLite and PostgreSQL halves side by side: each half has its own slot of
# the tests' ports (tests/live.py) and of Redis's 16 databases.
HALF = ("sqlite", "postgresql").index(TEST_DATABASE)
# The Redis database of each use (none flushes another's): 8 per half.
REDIS_DATABASES = {"replicas": 0, "serving": 1, "throttling": 3, "memo_workers": 5, "memo": 7}
REDIS_DATABASES_PER_HALF = 8


def redis_url(use: str) -> str:
    """The local Redis's database for `use` (REDIS_DATABASES) in this half of `make test`."""
    return f"redis://127.0.0.1:6379/{REDIS_DATABASES[use] + HALF * REDIS_DATABASES_PER_HALF}"


# Configuration the developer's shell may carry must not point the tests at real data.
for _name in (
    "DATABASE_URL",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_REGISTRY_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "CACHE_URL",
):
    os.environ.pop(_name, None)

# One run of pytest: its controller (pytest-xdist's, or the only process) names it, and its
# workers, started after this plugin is loaded, inherit the name. What the run shares (the
# migrated template, tests/live.py) lives in RUN_DIRECTORY and in databases named after it;
# the controller removes them all when the run ends.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
if WORKER == "main":
    os.environ["SHARINGHUB_TEST_RUN"] = uuid.uuid4().hex[:8]
RUN = os.environ["SHARINGHUB_TEST_RUN"]
RUN_DIRECTORY = Path(tempfile.gettempdir()) / f"sharinghub-mlflow-run-{RUN}"
RUN_DIRECTORY.mkdir(exist_ok=True)
_prefix = f"shm_test_{RUN}_{WORKER}"
_databases_made = itertools.count()


def _admin_connection():
    import psycopg2
    import pytest

    try:
        connection = psycopg2.connect(f"{POSTGRES_URL}/postgres")
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise pytest.UsageError(
            f"TEST_DATABASE=postgresql needs PostgreSQL at {POSTGRES_URL} (user postgres, trust "
            f"auth), which does not answer ({reason}). Start it (Debian: `pg_ctlcluster "
            "<version> main start`), point TEST_POSTGRES_URL at one, or run `make test-sqlite`."
        ) from None
    connection.autocommit = True
    return connection


def fresh_postgres_database(label: str, template: str = "") -> str:
    """The URL of a new PostgreSQL database, dropped when the run ends: empty, or a
    copy of the database `template` names (a URL)."""
    name = f"{_prefix}_{next(_databases_made)}_{label}"
    connection = _admin_connection()
    copy = f' TEMPLATE "{template.rsplit("/", 1)[-1]}"' if template else ""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        connection.close()
    return f"{POSTGRES_URL}/{name}"


def database_env(label: str = "server", templates: dict[str, str] | None = None) -> dict[str, str]:
    """DATABASE_URL and MLFLOW_BACKEND_STORE_URI for a new live server: fresh databases on
    PostgreSQL (copies of `templates`' if given); nothing on SQLite (the server's DATA_DIR
    holds its files)."""
    if TEST_DATABASE != "postgresql":
        return {}
    templates = templates or {}
    return {
        "DATABASE_URL": fresh_postgres_database(
            f"{label}_django", templates.get("DATABASE_URL", "")
        ),
        "MLFLOW_BACKEND_STORE_URI": fresh_postgres_database(
            f"{label}_mlflow", templates.get("MLFLOW_BACKEND_STORE_URI", "")
        ),
    }


_data_dir = RUN_DIRECTORY / WORKER
_data_dir.mkdir(exist_ok=True)
os.environ["DATA_DIR"] = str(_data_dir)
if TEST_DATABASE == "postgresql":
    # The xdist workers' live servers share PostgreSQL's 100 connections (max_connections):
    # each MLflow engine keeps at most 1 idle and opens 4 more under load (a test server
    # worker's 4 threads never wait for one), not MLflow's 5 and 10, sized for one server.
    # Three workers' files side by side peaked at 77 connections (93 with 2 idle per engine).
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "1")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "4")
# Every test client comes from 127.0.0.1 and many try bad tokens on purpose: the throttles
# are wide open in-process and on live servers, except where a test sets them
# (tests/test_throttling.py, tests/security/test_throttling.py).
for _scope in (
    "GITLAB_LOOKUPS_PER_ADDRESS",
    "GITLAB_LOOKUPS",
    "FAILED_AUTHENTICATIONS_PER_ADDRESS",
):
    os.environ[f"THROTTLE_{_scope}"] = "1000000/s"
os.environ.update(database_env("inprocess"))


def pytest_report_header(config) -> str:
    return f"test database: {TEST_DATABASE}"


def pytest_collection_finish(session) -> None:
    """What collection imported (Django, MLflow, pandas...) lives as long as the process: once
    frozen, Python's garbage collector no longer walks it at every full collection, as in the
    service's own workers (sharinghub_mlflow/wsgi.py): 15% less CPU for six in-process files."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config) -> None:
    """In the run's controller, once its workers are done: every database and file of the run."""
    if WORKER != "main":
        return
    shutil.rmtree(RUN_DIRECTORY, ignore_errors=True)
    if TEST_DATABASE != "postgresql":
        return
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                           [f"shm_test_{RUN}_"])  # fmt: skip
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()
