"""MLflow-style JSON errors: `{"error_code": ..., "message": ...}` with the matching status."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from projects import gitlab_health

# MLflow's error codes (mlflow.protos.databricks_pb2) and the status MLflow gives each.
STATUS_OF_CODE = {
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "REQUEST_LIMIT_EXCEEDED": 413,
    "TEMPORARILY_UNAVAILABLE": 503,
}


class BridgeError(Exception):
    """A request the bridge answers itself, with an MLflow error code and a message."""

    def __init__(
        self,
        error_code: str,
        message: str,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}
        # Only where the code's usual status would mislead clients (gitlab_unavailable).
        self._status = status

    @property
    def status(self) -> int:
        return self._status or STATUS_OF_CODE[self.error_code]


def error_response(error: BridgeError) -> JsonResponse:
    response = JsonResponse(
        {"error_code": error.error_code, "message": error.message}, status=error.status
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


def not_found() -> BridgeError:
    """The one answer for "no such project" and "not yours": no existence oracle."""
    return BridgeError(
        "RESOURCE_DOES_NOT_EXIST",
        "Project not found. Check the tracking URI, and that your GitLab token belongs to a "
        "member of the project.",
    )


def server_error(request, *args, **kwargs) -> JsonResponse:
    """Django's handler500: even an unexpected failure answers in MLflow's JSON shape."""
    return JsonResponse(
        {"error_code": "INTERNAL_ERROR", "message": "Internal error; it has been logged."},
        status=500,
    )


# Failed Dependency: GitLab, which the request needs, failed. mlflow clients do not retry it.
LONG_OUTAGE_STATUS = 424


def gitlab_unavailable(exc: Exception) -> BridgeError:
    """The error for a request that needs GitLab while GitLab cannot answer.

    While GitLab has failed for less than GITLAB_OUTAGE_RETRYABLE seconds: a 503, which the
    mlflow client retries for minutes, riding out a short outage. Once it has failed for longer,
    the same kind of message as a 424, which clients do not retry: the user reads it at once
    instead of after minutes of silent retries.
    """
    seconds = gitlab_health.down_for() or 0.0
    if seconds < settings.GITLAB_OUTAGE_RETRYABLE:
        return BridgeError(
            "TEMPORARILY_UNAVAILABLE",
            f"Cannot check your access right now ({exc}); retry in a moment.",
        )
    return BridgeError(
        "TEMPORARILY_UNAVAILABLE",
        f"Cannot check your access: {exc}, and GitLab has not answered for {int(seconds)} "
        "seconds. Try again once GitLab is back; if it stays unreachable, the service's "
        "GITLAB_URL may be wrong (ask its operator).",
        status=LONG_OUTAGE_STATUS,
    )
