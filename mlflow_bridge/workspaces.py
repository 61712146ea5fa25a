"""The workspace calls of MLflow's UI, answered with the project's one workspace.

MLflow 3.17's UI lists workspaces (GET ajax-api/3.0/mlflow/workspaces) and lets the user pick
one. Under a project there is exactly one: the bridge answers GET of the list and of that
workspace itself, from what it knows, so MLflow's workspace handlers (which see every
workspace) are never called. Every other workspace route stays refused (routes.py). Which
workspace a request reads is never the client's choice anyway (dispatch.py).
"""

from __future__ import annotations

from django.http import JsonResponse

from mlflow_bridge.routes import table_key
from projects.models import GitLabProject

WORKSPACES_RULE = "/3.0/mlflow/workspaces"


def describe(project: GitLabProject) -> dict:
    """The project's workspace as MLflow's Workspace message."""
    return {"name": project.workspace, "description": project.path}


def answer(method: str, rest: str, project: GitLabProject) -> JsonResponse | None:
    """The bridge's own answer to a workspace read of the UI, or None for any other request."""
    if method not in ("GET", "HEAD"):
        return None
    key = table_key(rest)
    if key == WORKSPACES_RULE:
        return JsonResponse({"workspaces": [describe(project)]})
    if key == f"{WORKSPACES_RULE}/{project.workspace}":
        return JsonResponse({"workspace": describe(project)})
    return None
