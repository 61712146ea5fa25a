"""The bridge's own answers to calls MLflow's UI makes that this server does not pass to MLflow.

- The workspace list and the project's workspace (workspaces.py).
- The assistant's configuration: MLflow's assistant lives in its FastAPI server only, so the UI
  is told it is not available (`remote_access_allowed: false`, no providers) instead of
  getting a 404 on every page.

The UI's probe for MLflow's auth plugin (`users/current`) keeps the 404 a bare server gives:
answering it would make the UI ask for the plugin's roles and permissions too.
"""

from __future__ import annotations

from django.http import JsonResponse

from mlflow_bridge import workspaces
from mlflow_bridge.routes import table_key
from projects.records import ProjectAccess

ASSISTANT_CONFIG_RULE = "/3.0/mlflow/assistant/config"
ASSISTANT_PROVIDERS_RULE = "/3.0/mlflow/assistant/providers"


def answer(method: str, rest: str, project_access: ProjectAccess) -> JsonResponse | None:
    """The bridge's answer to one of those reads, or None for any other request."""
    if method not in ("GET", "HEAD"):
        return None
    key = table_key(rest)
    if key == ASSISTANT_CONFIG_RULE:
        return JsonResponse({"remote_access_allowed": False, "providers": {}})
    if key == ASSISTANT_PROVIDERS_RULE:
        return JsonResponse({"providers": [], "resolved": None})
    return workspaces.answer(method, rest, project_access.project)
