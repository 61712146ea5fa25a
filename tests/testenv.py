"""Where the test suite keeps its data: a temporary DATA_DIR, and fresh PostgreSQL databases
when TEST_DATABASE=postgresql.

A pytest plugin (`-p tests.testenv` in pyproject.toml), not a conftest: pytest-django reads
the settings before any conftest is imported, so the environment must be set earlier.

- TEST_DATABASE=sqlite (default): in-process tests and every live server use SQLite files
  under temporary directories.
- TEST_DATABASE=postgresql: in-process tests use a fresh Django database (pytest-django makes
  its `test_` copy) and a fresh MLflow database; every live server gets two fresh databases of
  its own. All are created on TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432)
  and dropped when the session ends.
"""

from __future__ import annotations

import os
import tempfile
import uuid

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite").lower()
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"TEST_DATABASE is {TEST_DATABASE!r}: use sqlite or postgresql.")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")

# Configuration the developer's shell may carry must not point the tests at real data.
for _name in (
    "DATABASE_URL",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_REGISTRY_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "CACHE_URL",
):
    os.environ.pop(_name, None)

_prefix = f"shm_test_{uuid.uuid4().hex[:8]}"
_created: list[str] = []


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
    """The URL of a new PostgreSQL database, dropped at the end of the session: empty, or a
    copy of the database `template` names (a URL)."""
    name = f"{_prefix}_{len(_created)}_{label}"
    connection = _admin_connection()
    copy = f' TEMPLATE "{template.rsplit("/", 1)[-1]}"' if template else ""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        connection.close()
    _created.append(name)
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


os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="sharinghub-mlflow-tests-")
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


def pytest_unconfigure(config) -> None:
    if not _created:
        return
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            for name in _created:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()
