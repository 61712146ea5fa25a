"""MLflow-style JSON errors: `{"error_code": ..., "message": ...}` with the matching status.

`BridgeError` is a DRF `APIException` carrying one of MLflow's error codes; `exception_handler`
(REST_FRAMEWORK's EXCEPTION_HANDLER) is the one place that turns any exception of the edge
into MLflow's shape: the bridge's own, DRF's (authentication, permissions, throttles) and
GitLab's (a token refused, GitLab not answering).
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions
from sqlalchemy import exc as sqlalchemy_errors

from projects import gitlab, gitlab_health

# MLflow's error codes (mlflow.protos.databricks_pb2) and the status MLflow gives each.
STATUS_OF_CODE = {
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "TEMPORARILY_UNAVAILABLE": 503,
}
# DRF's exceptions, as MLflow would name them.
CODE_OF_DRF_EXCEPTION: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "UNAUTHENTICATED",
    exceptions.AuthenticationFailed: "UNAUTHENTICATED",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "RESOURCE_DOES_NOT_EXIST",
    exceptions.Throttled: "REQUEST_LIMIT_EXCEEDED",
    exceptions.ParseError: "MALFORMED_REQUEST",
}
CHALLENGE = 'Bearer realm="mlflow", Basic realm="mlflow"'
DATABASE_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    sqlalchemy_errors.OperationalError,
    sqlalchemy_errors.InterfaceError,
)

logger = logging.getLogger(__name__)


class BridgeError(exceptions.APIException):
    """A request the bridge answers itself, with an MLflow error code and a message.

    `status` overrides the code's usual status where MLflow has no code of its own (413), or
    where the usual one would mislead clients (424: gitlab_unavailable).
    """

    def __init__(
        self,
        error_code: str,
        message: str,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ):
        super().__init__(detail=message, code=error_code)
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}
        self.status_code = status or STATUS_OF_CODE[error_code]

    @property
    def status(self) -> int:
        return self.status_code


class Unauthenticated(BridgeError, exceptions.AuthenticationFailed):
    """Bad credentials: 401 with the view's WWW-Authenticate challenge (DRF adds it)."""

    def __init__(self, message: str):
        super().__init__("UNAUTHENTICATED", message)


def too_large(limit: int) -> BridgeError:
    return BridgeError(
        "REQUEST_LIMIT_EXCEEDED",
        f"The request body is larger than {limit} bytes (MAX_JSON_BODY_SIZE). "
        "Log large data as artifacts.",
        status=413,
    )


def not_found() -> BridgeError:
    """The one answer for "no such project" and "not yours": no existence oracle."""
    return BridgeError(
        "RESOURCE_DOES_NOT_EXIST",
        "Project not found. Check the tracking URI, and that your GitLab token belongs to a "
        "member of the project.",
    )


def token_refused(exc: gitlab.TokenRejected) -> Unauthenticated:
    """401 for a token GitLab refused, saying how to get one it accepts."""
    if isinstance(exc, gitlab.TokenScopeTooNarrow):
        return Unauthenticated(
            "Your GitLab token lacks the read_api scope: create a token with read_api."
        )
    return Unauthenticated("GitLab does not accept this token (unknown, expired or revoked).")


# Failed Dependency: GitLab, which the request needs, failed. mlflow clients do not retry it.
LONG_OUTAGE_STATUS = 424


def gitlab_unavailable(exc: gitlab.GitLabUnavailable) -> BridgeError:
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


def database_unavailable() -> BridgeError:
    """The database restarted or cannot be reached: retryable, as Django reconnects on the next
    request (CONN_HEALTH_CHECKS) and MLflow's engine tests each pooled connection before use
    (pool_pre_ping). The driver's text stays in the log."""
    return BridgeError(
        "TEMPORARILY_UNAVAILABLE",
        "The service's database is unavailable right now; retry in a moment.",
        headers={"Retry-After": "5"},
    )


def as_bridge_error(exc: Exception) -> BridgeError | None:
    """Any exception of the edge as MLflow would name it; None for a genuine bug."""
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, gitlab.TokenRejected):
        error = token_refused(exc)
        error.headers["WWW-Authenticate"] = CHALLENGE
        return error
    if isinstance(exc, gitlab.GitLabUnavailable):
        return gitlab_unavailable(exc)
    # Django's, or SQLAlchemy's when the bridge reads MLflow's database itself (owners), or
    # the same wrapped by MLflow's store when the edge calls it (a workspace's default
    # experiment): MLflow raises its own exception `from` the driver's.
    if isinstance(exc, DATABASE_UNAVAILABLE) or isinstance(exc.__cause__, DATABASE_UNAVAILABLE):
        logger.warning("Database unavailable: %s", type(exc).__name__)
        return database_unavailable()
    if isinstance(exc, exceptions.APIException):
        code = next(
            (code for kind, code in CODE_OF_DRF_EXCEPTION.items() if isinstance(exc, kind)),
            "INVALID_PARAMETER_VALUE",
        )
        return BridgeError(code, str(exc.detail), status=exc.status_code)
    return None


def exception_handler(exc: Exception, context: dict) -> JsonResponse | None:
    """DRF's EXCEPTION_HANDLER: every refusal in MLflow's JSON shape, with its headers."""
    error = as_bridge_error(exc)
    if error is None:
        return None
    response = error_response(error)
    if auth_header := getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = auth_header
    if wait := getattr(exc, "wait", None):
        response["Retry-After"] = str(math.ceil(wait))
    return response


def error_response(error: BridgeError) -> JsonResponse:
    """The one writer of MLflow's error shape in Django; gunicorn's own refusals, before
    Django, are written by workers.json_error."""
    response = JsonResponse(
        {"error_code": error.error_code, "message": error.message}, status=error.status
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


def server_error(request, *args, **kwargs) -> JsonResponse:
    """Django's handler500: even an unexpected failure answers in MLflow's JSON shape."""
    return error_response(
        BridgeError("INTERNAL_ERROR", "Internal error; it has been logged.", status=500)
    )
