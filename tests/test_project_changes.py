"""GitLab projects change under us: renamed or transferred projects keep their data at the new
path (rows follow the id); archived projects are read-only for everyone."""

from __future__ import annotations

import itertools

import pytest

from tests.api import Api

SEARCH = {"max_results": 10}
_archives = itertools.count()


@pytest.fixture
def owner(gitlab):
    return gitlab.add_user("renata")


def seeded(gitlab, server, owner, path: str):
    project = gitlab.add_project(path)
    project.direct[owner.id] = 50
    api = Api(server.tracking_uri(path), owner.token)
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": "kept"})["experiment_id"]  # fmt: skip
    return project, experiment_id


def experiment_named(server, path: str, token: str, name: str = "kept"):
    return Api(server.tracking_uri(path), token).get("experiments/get-by-name",
                                                     experiment_name=name)  # fmt: skip


class TestRename:
    def test_it_serves_the_same_experiments_at_the_new_path(self, gitlab, site, owner):
        project, experiment_id = seeded(gitlab, site, owner, "moves/a/churn")

        gitlab.rename(project, "moves/b/churn-renamed")
        at_new = experiment_named(site, "moves/b/churn-renamed", owner.token)

        assert at_new.status_code == 200
        assert at_new.json()["experiment"]["experiment_id"] == experiment_id

    def test_it_answers_404_at_an_old_path_gitlab_no_longer_resolves(self, gitlab, site, owner):
        project, _ = seeded(gitlab, site, owner, "moves/c/churn")
        gitlab.rename(project, "moves/d/churn")
        experiment_named(site, "moves/d/churn", owner.token)

        at_old = experiment_named(site, "moves/c/churn", owner.token)
        missing = experiment_named(site, "moves/no/such", owner.token)

        assert at_old.status_code == 404
        assert at_old.content == missing.content

    def test_it_serves_the_same_project_at_an_old_path_gitlab_still_resolves(
        self, gitlab, site, owner
    ):
        project, experiment_id = seeded(gitlab, site, owner, "moves/e/churn")
        gitlab.rename(project, "moves/f/churn", keep_old=True)

        at_old = experiment_named(site, "moves/e/churn", owner.token)
        at_new = experiment_named(site, "moves/f/churn", owner.token)

        assert at_old.json()["experiment"]["experiment_id"] == experiment_id
        assert at_new.json()["experiment"]["experiment_id"] == experiment_id


class TestArchived:
    @pytest.fixture
    def archived(self, gitlab, owner):
        project = gitlab.add_project(f"moves/archive{next(_archives)}/churn")
        project.archived = True
        project.direct[owner.id] = 50
        return project

    def test_it_lets_members_read_an_archived_project(self, site, archived, owner):
        api = Api(site.tracking_uri(archived.path), owner.token)

        assert api.post("experiments/search", SEARCH).status_code == 200

    def test_it_refuses_writes_even_to_the_owner(self, site, archived, owner):
        api = Api(site.tracking_uri(archived.path), owner.token)

        response = api.post("experiments/create", {"name": "late"})

        assert response.status_code == 403
        assert response.json() == {
            "error_code": "PERMISSION_DENIED",
            "message": f"{archived.path} is archived in GitLab, so it is read-only here "
            "for everyone.",
        }
