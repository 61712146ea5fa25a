"""How `serve` runs gunicorn, and the effective configuration it prints (never a secret)."""

from __future__ import annotations

import os
import shutil
import sys
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings


def without_password(url: str) -> str:
    """`url` with any password replaced by ***; paths and plain directories unchanged."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = f"{user}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_database(database: dict) -> str:
    """Django's database settings as engine, host and name (never the password)."""
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        return f"sqlite {database['NAME']}"
    host = f"{database.get('HOST') or 'localhost'}:{database.get('PORT') or 'default'}"
    return f"{engine} {database.get('USER') or ''}@{host}/{database['NAME']}"


# gunicorn's largest finite request line (its default, 4094, refuses the URL MLflow's UI
# builds to chart 100 runs). A bare `mlflow server` (uvicorn) allows 16 KiB of request head.
LIMIT_REQUEST_LINE = 8190


def worker_class(threads: int) -> str:
    """gunicorn's sync or gthread worker, with its refusals in MLflow's JSON shape."""
    name = "JsonErrorThreadWorker" if threads > 1 else "JsonErrorSyncWorker"
    return f"mlflow_bridge.embedded.workers.{name}"


def wsgi_target() -> str:
    """Django's WSGI_APPLICATION as gunicorn names it ("module:attribute"): the site is the
    settings' to name, not this app's."""
    module, _, attribute = settings.WSGI_APPLICATION.rpartition(".")
    return f"{module}:{attribute}"


def gunicorn_argv(options: dict) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", wsgi_target(),
        "--bind", options["bind"],
        "--workers", str(options["workers"]),
        "--threads", str(options["threads"]),
        "--worker-class", worker_class(options["threads"]),
        "--limit-request-line", str(LIMIT_REQUEST_LINE),
        "--timeout", str(options["timeout"]),
        "--graceful-timeout", str(options["graceful_timeout"]),
        "--keep-alive", str(settings.SERVE_KEEPALIVE),
        "--access-logfile", "-",
    ]  # fmt: skip


def prepare_metrics_directory() -> None:
    """An empty directory where gunicorn's workers keep their metrics (prometheus_client's
    multiprocess mode), named to them through the environment before gunicorn starts."""
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def browser_sign_ins() -> str:
    """How a person signs in at /mlflow/login/ with this configuration."""
    if settings.GITLAB_OAUTH_CLIENT_ID:
        return "Log in with GitLab (OAuth), or a GitLab access token"
    return (
        "a GitLab access token on the login page (no OAuth application: set "
        'GITLAB_OAUTH_CLIENT_ID and GITLAB_OAUTH_CLIENT_SECRET for "Log in with GitLab")'
    )


def effective_configuration(options: dict) -> list[tuple[str, str]]:
    """What this process will serve with, one (name, value) per line; secrets only as set/unset."""
    worker_class = "gthread" if options["threads"] > 1 else "sync"
    return [
        ("bind", options["bind"]),
        ("workers", f"{options['workers']} ({worker_class}, {options['threads']} thread(s) each)"),
        ("timeout", f"{options['timeout']}s, graceful shutdown {options['graceful_timeout']}s"),
        ("allowed hosts", ", ".join(settings.ALLOWED_HOSTS)),
        ("debug", str(settings.DEBUG)),
        ("https only", f"{settings.SECURE_SSL} (HSTS {settings.SECURE_HSTS_SECONDS}s)"),
        ("trust X-Forwarded-Proto", str(settings.TRUST_X_FORWARDED_PROTO)),
        ("django database", describe_database(settings.DATABASES["default"])),
        ("mlflow backend store", without_password(settings.MLFLOW_BACKEND_STORE_URI)),
        ("mlflow registry store", without_password(settings.MLFLOW_REGISTRY_STORE_URI)),
        ("artifacts", without_password(settings.MLFLOW_ARTIFACTS_DESTINATION)),
        ("s3 endpoint", settings.MLFLOW_S3_ENDPOINT_URL or "(AWS default)"),
        ("cache", without_password(settings.CACHE_URL) or "per process (no CACHE_URL)"),
        ("gitlab", settings.GITLAB_URL),
        ("browser sign-in", browser_sign_ins()),
        ("gitlab service token", "set" if settings.GITLAB_SERVICE_TOKEN else "unset"),
        ("gitlab webhook secret", "set" if settings.GITLAB_WEBHOOK_SECRET else "unset"),
        ("membership cache ttl", f"{settings.MEMBERSHIP_CACHE_TTL}s"),
        ("metrics", "/metrics (METRICS_TOKEN set)" if settings.METRICS_TOKEN else "off"),
    ]
