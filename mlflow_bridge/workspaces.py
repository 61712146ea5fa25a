"""The workspace calls of MLflow's UI, answered with the project's one workspace.

MLflow 3.17's UI lists workspaces (GET ajax-api/3.0/mlflow/workspaces) and lets the user pick
one. Under a project there is exactly one: the bridge answers GET of the list and of that
workspace itself, from what it knows (ui_answers.py), so MLflow's workspace handlers (which
see every workspace) are never called. Every other workspace route stays refused (routes.py). Which
workspace a request reads is never the client's choice anyway (dispatch.py).
"""

from __future__ import annotations

from projects.models import GitLabProject


def describe(project: GitLabProject) -> dict:
    """The project's workspace as MLflow's Workspace message."""
    return {"name": project.workspace, "description": project.path}
