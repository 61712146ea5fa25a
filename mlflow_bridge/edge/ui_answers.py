"""The bridge's own answers to calls MLflow's UI makes that this server does not pass to MLflow
(routes.BRIDGE_ANSWERS names them).

- The workspace list and the project's workspace. MLflow 3.17's UI lists workspaces and lets
  the user pick one; under a project there is exactly one, so MLflow's workspace handlers
  (which see every workspace) are never called. Every other workspace route stays refused
  (routes.py), and which workspace a request reads is never the client's choice (dispatch.py).
- The assistant's configuration: MLflow's assistant lives in its FastAPI server only, so the UI
  is told it is not available (`remote_access_allowed: false`, no providers) instead of
  getting a 404 on every page.
- The gateway proxy's reads: the runs page lists the AI gateway's endpoints on every visit.
  A bare server without a gateway answers every read `{"endpoints": []}`
  (mlflow/server/handlers.py, gateway_proxy_handler); so does this one. A POST through the
  proxy (a call to a model) stays refused.

The UI's probe for MLflow's auth plugin (`users/current`) keeps the 404 a bare server gives:
answering it would make the UI ask for the plugin's roles and permissions too.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import JsonResponse

from mlflow_bridge.edge.routes import BridgeAnswer, bridge_answer_for
from projects.models import GitLabProject
from projects.records import ProjectAccess


def describe(project: GitLabProject) -> dict:
    """The project's workspace as MLflow's Workspace message."""
    return {"name": project.workspace, "description": project.path}


# fmt: off
ANSWERS: dict[BridgeAnswer, Callable[[GitLabProject], dict]] = {
    BridgeAnswer.WORKSPACE_LIST:      lambda project: {"workspaces": [describe(project)]},
    BridgeAnswer.WORKSPACE:           lambda project: {"workspace": describe(project)},
    BridgeAnswer.ASSISTANT_CONFIG:    lambda project: {"remote_access_allowed": False,
                                                       "providers": {}},
    BridgeAnswer.ASSISTANT_PROVIDERS: lambda project: {"providers": [], "resolved": None},
    BridgeAnswer.GATEWAY_PROXY:       lambda project: {"endpoints": []},
}
# fmt: on


def answer(method: str, rest: str, project_access: ProjectAccess) -> JsonResponse | None:
    """The bridge's answer to one of those reads, or None for any other request."""
    project: GitLabProject = project_access.project
    kind = bridge_answer_for(method, rest, project.workspace)
    return None if kind is None else JsonResponse(ANSWERS[kind](project))
