"""What `serve` checks before it accepts requests: each problem names the setting to fix."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, connections


def where(url: str) -> str:
    """A database URL without its credentials: scheme, host, port and database (or file)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


REACH = "Check it, and that the database accepts connections from this host."


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def django_database_problem() -> str | None:
    """Why Django's database (DATABASE_URL) cannot be used, or None."""
    try:
        connections["default"].ensure_connection()
    except DatabaseError as exc:
        return f"DATABASE_URL: cannot connect ({_first_line(exc)}). {REACH}"
    finally:
        connections["default"].close()
    return None


def mlflow_database_problem() -> str | None:
    """Why MLflow's database (MLFLOW_BACKEND_STORE_URI) cannot be used, or None."""
    import sqlalchemy

    uri = settings.MLFLOW_BACKEND_STORE_URI
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = _first_line(exc.orig or exc)
        return f"MLFLOW_BACKEND_STORE_URI ({where(uri)}): cannot connect ({reason}). {REACH}"
    finally:
        engine.dispose()
    return None


def artifact_destination_problem() -> str | None:
    """Why a local MLFLOW_ARTIFACTS_DESTINATION cannot take files, or None. An S3 destination
    is not checked here: its credentials may only work from the pods that serve."""
    destination = settings.MLFLOW_ARTIFACTS_DESTINATION
    if "://" in destination:
        return None
    try:
        Path(destination).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=destination, prefix=".serve-check."):
            pass
    except OSError as exc:
        return (
            f"MLFLOW_ARTIFACTS_DESTINATION ({destination}): cannot write there "
            f"({type(exc).__name__}). Point it at a writable directory or an s3:// bucket."
        )
    return None


def fatal_problems() -> list[str]:
    """What stops the service from working at all: it must not start with any of these."""
    checks = (django_database_problem, mlflow_database_problem, artifact_destination_problem)
    return [problem for check in checks if (problem := check())]
