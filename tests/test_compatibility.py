"""What a stock MLflow 3 client or UI sends works as on a bare `mlflow server` (issue 11).

Each test gets a fresh project of its own, where Cora is a Developer.
"""

from __future__ import annotations

import itertools

import pytest

from tests.api import Api

_numbers = itertools.count(1)


@pytest.fixture
def fresh(gunicorn_server, gitlab) -> Api:
    """A project nobody has used yet, and Cora, its Developer."""
    number = next(_numbers)
    project = gitlab.add_project(f"ml/compat/fresh-{number}")
    cora = gitlab.add_user(f"cora-{number}")
    project.direct[cora.id] = 30
    api = Api(gunicorn_server.tracking_uri(project.path), cora.token)
    api.project = project
    return api


def new_run(api: Api) -> tuple[str, str]:
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": "compat"})["experiment_id"]  # fmt: skip
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
    return experiment_id, run["run"]["info"]["run_id"]


class TestArtifactNames:
    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("日本.txt", id="CJK"),
            pytest.param("é.txt", id="latin-1 letter"),
            pytest.param("ü.txt", id="another latin-1 letter"),
            pytest.param("emoji 🚀 and space.txt", id="emoji and space"),
            pytest.param("dir ñ/naïve.csv", id="non-ASCII directory"),
        ],
    )
    def test_it_round_trips_a_utf8_name_through_the_artifact_proxy(self, fresh, name):
        experiment_id, run_id = new_run(fresh)
        path = f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{name}"

        fresh.ok("PUT", path, data=name.encode())
        listing = fresh.ok("GET", "api/2.0/mlflow/artifacts/list",
                           params={"run_id": run_id, "path": name.rpartition("/")[0]})  # fmt: skip
        downloaded = fresh.call("GET", path)
        from_ui = fresh.call("GET", "get-artifact", params={"run_id": run_id, "path": name})
        fresh.ok("DELETE", path)

        assert [f["path"] for f in listing["files"]] == [name]
        assert downloaded.status_code == 200 and downloaded.content == name.encode()
        assert from_ui.status_code == 200 and from_ui.content == name.encode()
        assert fresh.call("GET", path).status_code == 404

    def test_it_keeps_two_names_that_differ_only_in_a_non_ascii_letter(self, fresh):
        experiment_id, run_id = new_run(fresh)
        base = f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"

        fresh.ok("PUT", f"{base}/é.txt", data=b"first")
        fresh.ok("PUT", f"{base}/ü.txt", data=b"second")

        assert fresh.call("GET", f"{base}/é.txt").content == b"first"
        assert fresh.call("GET", f"{base}/ü.txt").content == b"second"
