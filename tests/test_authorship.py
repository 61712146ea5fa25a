"""Authorship: the GitLab username replaces whatever author a client sends.

Unit rows for each place MLflow records an author, then the stock mlflow client against a
live server: Dave's run says "dave" although the script claims to be root, then mallory.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from mlflow import MlflowClient

from mlflow_bridge.edge import authorship
from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import route_for
from tests import warm_processes
from tests.api import Api


def stamp(rule: str, document: dict, method: str = "POST") -> dict:
    body = json.dumps(document).encode()
    stamped_body, stamped = authorship.stamp("dave", route_for(rule, method), body, document)
    assert json.loads(stamped_body) == stamped
    return stamped


SET_AUTHOR = {"run_id": "r", "key": "mlflow.user", "value": "mallory"}


class TestStamp:
    @pytest.mark.parametrize(
        ("rule", "document", "expected"),
        [
            pytest.param("/api/2.0/mlflow/runs/create",
                          {"experiment_id": "1", "user_id": "root",
                           "tags": [{"key": "mlflow.user", "value": "root"}]},
                          {"experiment_id": "1", "user_id": "dave",
                           "tags": [{"key": "mlflow.user", "value": "dave"}]},
                          id="a run's user_id and tag"),
            pytest.param("/api/2.0/mlflow/runs/create", {"experiment_id": "1"},
                         {"experiment_id": "1", "user_id": "dave",
                          "tags": [{"key": "mlflow.user", "value": "dave"}]},
                         id="a run without author gets one"),
            pytest.param("/api/2.0/mlflow/runs/create-promptlab-run",
                         {"experiment_id": "1", "user_id": "root"},
                         {"experiment_id": "1", "user_id": "dave",
                          "tags": [{"key": "mlflow.user", "value": "dave"}]},
                         id="a prompt lab run's author"),
            pytest.param("/api/2.0/mlflow/runs/set-tag",
                         {"run_id": "r", "key": "mlflow.user", "value": "mallory"},
                         {"run_id": "r", "key": "mlflow.user", "value": "dave"},
                         id="set-tag"),
            pytest.param("/api/2.0/mlflow/runs/log-batch",
                         {"run_id": "r", "tags": [{"key": "mlflow.user", "value": "x"},
                                                  {"key": "team", "value": "y"}]},
                         {"run_id": "r", "tags": [{"key": "mlflow.user", "value": "dave"},
                                                  {"key": "team", "value": "y"}]},
                         id="log-batch tags, others untouched"),
            pytest.param("/api/2.0/mlflow/logged-models",
                         {"experiment_id": "1", "tags": [{"key": "mlflow.user", "value": "x"}]},
                         {"experiment_id": "1", "tags": [{"key": "mlflow.user", "value": "dave"}]},
                         id="a logged model"),
            pytest.param("/api/3.0/mlflow/traces",
                         {"trace": {"trace_info": {"trace_metadata": {"mlflow.user": "root"},
                                                   "tags": {"mlflow.user": "root", "k": "v"}}}},
                         {"trace": {"trace_info": {"trace_metadata": {"mlflow.user": "dave"},
                                                   "tags": {"mlflow.user": "dave", "k": "v"}}}},
                         id="a trace's metadata and tags"),
            pytest.param("/api/3.0/mlflow/datasets/create",
                         {"name": "d", "tags": {"mlflow.user": "root"}},
                         {"name": "d", "tags": {"mlflow.user": "dave"}},
                         id="a dataset"),
            pytest.param("/api/3.0/mlflow/issues",
                         {"experiment_id": "1", "name": "i", "created_by": "mallory"},
                         {"experiment_id": "1", "name": "i", "created_by": "dave"},
                         id="created_by"),
            pytest.param("/api/2.0/mlflow/runs/log-batch",
                         {"run_id": "r", "params": [{"key": "mlflow.user", "value": "p"}]},
                         {"run_id": "r", "params": [{"key": "mlflow.user", "value": "p"}]},
                         id="a param named mlflow.user is not a tag"),
        ],
    )  # fmt: skip
    def test_it_replaces_every_author_with_the_gitlab_username(self, rule, document, expected):
        assert stamp(rule, document) == expected

    def test_it_leaves_reads_alone(self):
        document = {"experiment_ids": ["1"], "filter": "tags.`mlflow.user` = 'root'"}
        body = json.dumps(document).encode()

        route = route_for("/api/2.0/mlflow/runs/search", "POST")
        assert authorship.stamp("dave", route, body, document) == (body, document)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b'{"run_id": "r", "key": "mlflow\\u002euser", "value": "mallory"}',
                         id="tag spelled with an escape"),
            pytest.param(json.dumps(SET_AUTHOR).encode("utf-16"), id="utf-16"),
            pytest.param(json.dumps({**SET_AUTHOR, "run_id": "é"}, ensure_ascii=False).encode(),
                         id="not ascii"),
        ],
    )  # fmt: skip
    def test_it_finds_the_author_however_the_body_spells_it(self, body):
        route = route_for("/api/2.0/mlflow/runs/set-tag", "POST")

        _, stamped = authorship.stamp("dave", route, body, json.loads(body))

        assert stamped["value"] == "dave"

    def test_it_passes_a_body_naming_no_author_on_as_it_came(self):
        document = {"run_id": "r", "metrics": [{"key": "loss", "value": 1, "timestamp": 1}]}
        body = json.dumps(document).encode()

        route = route_for("/api/2.0/mlflow/runs/log-batch", "POST")
        assert authorship.stamp("dave", route, body, document) == (body, document)

    def test_it_refuses_deleting_a_runs_author(self):
        with pytest.raises(BridgeError, match="records who created the run"):
            stamp("/api/2.0/mlflow/runs/delete-tag", {"run_id": "r", "key": "mlflow.user"})


STOCK_CLIENT_SCRIPT = """
import mlflow
mlflow.set_experiment("authorship")
with mlflow.start_run(run_name="claims-root") as run:
    mlflow.log_metric("loss", 0.5)
    mlflow.set_tag("mlflow.user", "mallory")
with mlflow.start_run(run_name="claims-mallory", tags={"mlflow.user": "mallory"}) as other:
    pass
print(run.info.run_id, other.info.run_id)
"""


STOCK_TRACE_SCRIPT = """
import mlflow
mlflow.set_experiment("authorship-traces")

@mlflow.trace
def answer(question):
    mlflow.update_current_trace(tags={"mlflow.user": "mallory", "team": "nlp"})
    return "42"

answer("?")
mlflow.flush_trace_async_logging()
print(mlflow.get_last_active_trace_id())
"""


class TestStockClient:
    def test_it_signs_a_scripts_runs_with_the_gitlab_username_whatever_the_client_says(
        self, gunicorn_server, cast
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(
            {
                "MLFLOW_TRACKING_URI": gunicorn_server.tracking_uri(cast.project.path),
                "MLFLOW_TRACKING_TOKEN": cast.dave.token,
                # What getpass.getuser() reads first: the client would say "root".
                "LOGNAME": "root",
                "USER": "root",
            }
        )
        done = warm_processes.run_python(["-c", STOCK_CLIENT_SCRIPT], env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

        api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
        for run_id in done.stdout.strip().splitlines()[-1].split():
            run = api.ok("GET", "api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
            tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
            assert tags["mlflow.user"] == "dave"
            assert run["info"]["user_id"] == "dave"

    def test_it_signs_a_scripts_traces_with_the_gitlab_username_whatever_the_tags_say(
        self, gunicorn_server, cast
    ):
        """Issue 22: the stock client sends trace tags as root-span attributes
        (mlflow.traceTag.mlflow.user), a way the author stamp once did not read."""
        trace_id = run_as_dave(gunicorn_server, cast, STOCK_TRACE_SCRIPT)

        api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
        info = api.ok("GET", f"api/3.0/mlflow/traces/{trace_id}")["trace"]["trace_info"]
        assert info["tags"]["mlflow.user"] == "dave"
        assert info["tags"]["team"] == "nlp"


class TestThroughTheSite:
    def test_it_refuses_deleting_the_author_tag(self, site_project_a):
        api, seeded = site_project_a
        response = api.post("runs/delete-tag", {"run_id": seeded["run_id"], "key": "mlflow.user"})

        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "who created the run" in response.json()["message"]


# Issue 22: the author shapes the stock client sends beside run and trace tags, each claiming
# mallory: a dataset's tags (a JSON string), its records' tags (records, a JSON string), and a
# HUMAN assessment's source.
STOCK_SHAPES_SCRIPT = """
import json
import mlflow
from mlflow.entities import AssessmentSource
from mlflow.genai.datasets import create_dataset

experiment = mlflow.set_experiment("authorship-shapes")
dataset = create_dataset(name="claims-mallory", experiment_id=experiment.experiment_id,
                         tags={"mlflow.user": "mallory", "team": "nlp"})
dataset.merge_records([{"inputs": {"question": "?"}, "expectations": {"answer": "42"},
                        "tags": {"mlflow.user": "mallory"}}])
with mlflow.start_span("answer") as span:
    span.set_outputs("42")
mlflow.flush_trace_async_logging()
feedback = mlflow.log_feedback(trace_id=span.trace_id, name="correct", value=True,
                               source=AssessmentSource(source_type="HUMAN", source_id="mallory"))
print(json.dumps({"dataset_id": dataset.dataset_id, "trace_id": span.trace_id,
                  "assessment_id": feedback.assessment_id}))
"""


def run_as_dave(server, cast, script: str) -> str:
    """A script run with the stock client as Dave; the last line it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLFLOW_TRACKING_URI": server.tracking_uri(cast.project.path),
                "MLFLOW_TRACKING_TOKEN": cast.dave.token})  # fmt: skip
    done = warm_processes.run_python(["-c", script], env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


class TestAuthorShapes:
    def test_it_signs_datasets_their_records_and_human_feedback_with_the_gitlab_username(
        self, gunicorn_server, cast
    ):
        made = json.loads(run_as_dave(gunicorn_server, cast, STOCK_SHAPES_SCRIPT))

        api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
        dataset = api.ok("GET", f"api/3.0/mlflow/datasets/{made['dataset_id']}")["dataset"]
        records = api.ok("GET", f"api/3.0/mlflow/datasets/{made['dataset_id']}/records")
        assessment = api.ok("GET", f"api/3.0/mlflow/traces/{made['trace_id']}/assessments/"
                            f"{made['assessment_id']}")["assessment"]  # fmt: skip
        assert (dataset["created_by"], dataset["last_updated_by"]) == ("dave", "dave")
        assert json.loads(dataset["tags"]) == {"mlflow.user": "dave", "team": "nlp"}
        [record] = json.loads(records["records"])
        assert (record["created_by"], record["tags"]["mlflow.user"]) == ("dave", "dave")
        assert assessment["source"] == {"source_type": "HUMAN", "source_id": "dave"}

    def test_it_signs_a_v2_traces_request_metadata_list_with_the_gitlab_username(
        self, gunicorn_server, cast
    ):
        """No stock client API sends v2 StartTrace any more: its REST body, as older clients
        wrote it."""
        api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.dave.token)
        experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                               json={"name": "authorship-v2-traces"})["experiment_id"]  # fmt: skip
        started = api.ok("POST", "api/2.0/mlflow/traces", json={
            "experiment_id": experiment_id, "timestamp_ms": 1000,
            "request_metadata": [{"key": "mlflow.user", "value": "mallory"}],
            "tags": [{"key": "mlflow.user", "value": "mallory"}]})  # fmt: skip

        reader = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
        request_id = started["trace_info"]["request_id"]
        info = reader.ok("GET", f"api/2.0/mlflow/traces/{request_id}/info")["trace_info"]
        assert {"key": "mlflow.user", "value": "dave"} in info["request_metadata"]
        assert {"key": "mlflow.user", "value": "dave"} in info["tags"]
        assert "mallory" not in json.dumps(info)


@pytest.mark.django_db
class TestModelVersionCreator:
    """A model version's "Created by" (its `user_id`, which MLflow's store never fills) is the
    GitLab user who registered it, prompts' versions included, whatever the client claims."""

    @pytest.fixture
    def dave_client(self, site, cast, monkeypatch):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
        uri = site.tracking_uri(cast.project.path)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def test_it_records_the_caller_as_the_versions_creator(self, dave_client):
        run = dave_client.create_run(dave_client.create_experiment(f"e-{uuid.uuid4().hex[:8]}"))
        name = dave_client.create_registered_model(f"m-{uuid.uuid4().hex[:8]}").name

        created = dave_client.create_model_version(
            name, f"runs:/{run.info.run_id}/model", run.info.run_id
        )

        assert created.user_id == "dave"
        assert dave_client.get_model_version(name, created.version).user_id == "dave"
        assert [v.user_id for v in dave_client.search_model_versions(f"name='{name}'")] == ["dave"]

    def test_it_records_the_caller_as_a_prompt_versions_creator(self, dave_client):
        name = f"p-{uuid.uuid4().hex[:8]}"

        dave_client.register_prompt(name, "Answer {{question}}")

        assert dave_client.get_prompt_version(name, 1).user_id == "dave"

    def test_a_client_cannot_name_another_creator(self, site_project_a, cast, site):
        _, seeded = site_project_a
        dave = site.api(cast.project.path, cast.dave.token)

        version = dave.ok("POST", "api/2.0/mlflow/model-versions/create", json={
            "name": seeded["model"], "source": f"runs:/{seeded['run_id']}/model",
            "run_id": seeded["run_id"], "user_id": "mallory",
            "tags": [{"key": "mlflow.user", "value": "mallory"}]})["model_version"]  # fmt: skip

        read = dave.ok("GET", "api/2.0/mlflow/model-versions/get",
                       params={"name": seeded["model"], "version": version["version"]})  # fmt: skip
        assert (version["user_id"], read["model_version"]["user_id"]) == ("dave", "dave")
