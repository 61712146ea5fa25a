"""One access-log line per request to a project, and Prometheus metrics at /metrics.

The log line names the project id, the principal (GitLab user id), MLflow's route rule (never
the raw path or query, which may carry names), the action, the status and the duration to the
first byte; never a header or a token. /metrics answers only with `Authorization: Bearer
<METRICS_TOKEN>`, and is 404 while METRICS_TOKEN is unset.

Under gunicorn each worker counts on its own; `serve` sets PROMETHEUS_MULTIPROC_DIR so that
/metrics, whichever worker answers, sums every worker (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# GitLab's and the membership cache's counters are the projects app's (projects/metrics.py):
# imported so that /metrics lists them whatever the process imported first.
from projects.metrics import CACHE_LOOKUPS, GITLAB_CALLS  # noqa: E402, F401

access_log = logging.getLogger("sharinghub.access")

REQUESTS = Counter(
    "sharinghub_requests_total", "Requests to projects' MLflow servers.", ["action", "status"]
)
LATENCY = Histogram(
    "sharinghub_request_duration_seconds",
    "Seconds from a request to its response's first byte.",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600),
)
CACHE_ERRORS = Counter(
    "sharinghub_cache_errors_total", "Cache (Redis) operations that failed and were skipped."
)


class AccessLogMiddleware:
    """Logs and counts every request below /mlflow/ once its response starts."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        response = self.get_response(request)
        if request.path.startswith("/mlflow/"):
            self.record(request, response.status_code, time.monotonic() - started)
        return response

    @staticmethod
    def record(request: HttpRequest, status: int, duration: float) -> None:
        route = getattr(request, "route", None)
        project_access = getattr(request, "project_access", None)
        action = route.action.value if route is not None else "-"
        REQUESTS.labels(action, str(status)).inc()
        LATENCY.labels(action).observe(duration)
        access_log.info(
            "project=%s principal=%s method=%s route=%s action=%s status=%s duration_ms=%.1f",
            project_access.project.id if project_access else "-",
            project_access.user.id if project_access and project_access.user else "-",
            request.method,
            route.rule if route is not None else "-",
            action,
            status,
            duration * 1000,
        )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format, for a scraper holding METRICS_TOKEN."""
    if not settings.METRICS_TOKEN:
        raise Http404
    expected = f"Bearer {settings.METRICS_TOKEN}".encode()
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        return HttpResponse("METRICS_TOKEN required.\n", status=401, content_type="text/plain")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
