"""MLflow-style JSON errors: `{"error_code": ..., "message": ...}` with the matching status."""

from __future__ import annotations

from django.http import JsonResponse

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

    def __init__(self, error_code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS_OF_CODE[self.error_code]


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
