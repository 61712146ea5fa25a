"""MLflow UI's workspace and assistant calls under a project: one workspace, no assistant."""

from __future__ import annotations

import pytest

from tests.api import Api


@pytest.fixture
def api(site, cast, site_project_b) -> Api:
    """Project A as Olivia, who also owns project B (whose workspace exists by now)."""
    return Api(site.tracking_uri(cast.project.path), cast.olivia.token)


@pytest.mark.parametrize("prefix", ["api", "ajax-api"])
def test_it_lists_only_the_projects_own_workspace(api, cast, prefix):
    answer = api.ok("GET", f"{prefix}/3.0/mlflow/workspaces")

    assert answer == {
        "workspaces": [{"name": f"p-{cast.project.id}", "description": cast.project.path}]
    }


def test_it_lists_the_same_whatever_workspace_the_client_names(api, cast):
    answer = api.ok("GET", "ajax-api/3.0/mlflow/workspaces",
                    headers={"X-MLFLOW-WORKSPACE": f"p-{cast.other_project.id}"})  # fmt: skip

    assert [w["name"] for w in answer["workspaces"]] == [f"p-{cast.project.id}"]


def test_it_describes_the_projects_own_workspace(api, cast):
    answer = api.ok("GET", f"ajax-api/3.0/mlflow/workspaces/p-{cast.project.id}")

    assert answer == {"workspace": {"name": f"p-{cast.project.id}",
                                    "description": cast.project.path}}  # fmt: skip


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "ajax-api/3.0/mlflow/workspaces/p-{other}"),
        ("GET", "ajax-api/3.0/mlflow/workspaces/default"),
        ("POST", "ajax-api/3.0/mlflow/workspaces"),
        ("PATCH", "ajax-api/3.0/mlflow/workspaces/p-{own}"),
        ("DELETE", "ajax-api/3.0/mlflow/workspaces/p-{own}"),
        ("DELETE", "api/3.0/mlflow/workspaces/p-{other}"),
    ],
)
def test_it_refuses_every_other_workspace_route(api, cast, method, path):
    path = path.format(own=cast.project.id, other=cast.other_project.id)

    response = api.call(method, path, json={"name": "p-999", "description": "x"})

    assert response.status_code == 403
    assert response.json()["message"] == (
        "Workspace administration: not available on this SharingHub MLflow server."
    )


def test_it_answers_non_members_404_like_every_route(site, cast):
    outsider = Api(site.tracking_uri(cast.project.path), cast.charlie.token)

    assert outsider.call("GET", "ajax-api/3.0/mlflow/workspaces").status_code == 404


def test_it_tells_the_ui_the_assistant_is_not_available(api):
    """MLflow's assistant lives in its FastAPI server only: the UI is told, not sent a 404."""
    assert api.ok("GET", "ajax-api/3.0/mlflow/assistant/config")["remote_access_allowed"] is False
    assert api.ok("GET", "ajax-api/3.0/mlflow/assistant/providers")["providers"] == []
