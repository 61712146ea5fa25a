"""Health probes for load balancers: no authentication; /readyz also reports GitLab."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers."""
    return JsonResponse({"status": "ok"})


GITLAB_PROBE_KEY = "readyz:gitlab"
GITLAB_PROBE_TTL = 30


def gitlab_status() -> str:
    """ "ok", or what is wrong with GITLAB_URL: asked at most every GITLAB_PROBE_TTL seconds."""
    from projects import gitlab

    answer = cache.get(GITLAB_PROBE_KEY)
    if answer is None:
        answer = gitlab.unreachable_reason(timeout=min(settings.GITLAB_TIMEOUT, 2.0)) or "ok"
        cache.set(GITLAB_PROBE_KEY, answer, GITLAB_PROBE_TTL)
    return answer


def readyz(request: HttpRequest) -> JsonResponse:
    """Both databases answer a trivial query. The cache and GitLab are reported, but neither
    makes the service unready: it serves without the cache (sharinghub_mlflow/cache.py), and
    members within GITLAB_OUTAGE_GRACE keep working without GitLab."""
    from mlflow_bridge.embedded import mlflow_app

    checks = {}
    try:
        connection.ensure_connection()
        checks["django_database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say which.
        checks["django_database"] = type(exc).__name__
    try:
        mlflow_app.ping()
        checks["mlflow_database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["mlflow_database"] = type(exc).__name__
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            **checks,
            "cache": cache_health(),
            "gitlab": gitlab_status(),
        },
        status=200 if ready else 503,
    )


def cache_health() -> str:
    """ "ok", "per process" (no CACHE_URL), or "degraded: <error>" while Redis fails."""
    health = getattr(cache, "health", None)
    if health is None:
        return "per process"
    answer = health()
    return answer if answer == "ok" else f"degraded: {answer}"
