"""MLflow's request messages: a JSON body is parsed into protobuf once, by the bridge, and
MLflow's handler reuses that parse when it reads the same document (issue 12)."""

from __future__ import annotations

import itertools

import pytest
from mlflow.protos.service_pb2 import LogBatch, SetTag
from mlflow.utils import proto_json_utils

from mlflow_bridge.edge import messages
from mlflow_bridge.embedded import parse
from tests.inprocess import Tracking

pytestmark = pytest.mark.django_db
_projects = itertools.count()


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The message types protobuf's JSON parser fills while the test runs."""
    parsed: list[str] = []
    parse_dict = proto_json_utils.parse_dict

    def counting(js_dict, message):
        parsed.append(type(message).__name__)
        parse_dict(js_dict, message)

    monkeypatch.setattr(proto_json_utils, "parse_dict", counting)
    return parsed


@pytest.fixture
def tracking(client, gitlab, settings) -> Tracking:
    settings.GITLAB_URL = gitlab.url
    user = gitlab.add_user("parser")
    project = gitlab.add_project(f"parse/team/once-{next(_projects)}")
    project.direct[user.id] = 30
    return Tracking(client, project.path, user.token)


def batch(run_id: str, size: int) -> dict:
    return {"run_id": run_id, "metrics": [
        {"key": f"m{j % 10}", "value": j / 2, "timestamp": 1, "step": j // 10}
        for j in range(size)]}  # fmt: skip


class TestParseOnce:
    def test_it_parses_a_log_batch_once_and_mlflow_stores_every_metric(self, tracking, parses):
        _, run_id = tracking.new_run("once")
        parses.clear()

        status, _ = tracking.post("runs/log-batch", batch(run_id, 1000))

        assert status == 200
        assert parses.count("LogBatch") == 1
        history = tracking.get("metrics/get-history", run_id=run_id, metric_key="m3")[1]
        assert sorted(m["step"] for m in history["metrics"]) == list(range(100))

    def test_it_lets_mlflow_parse_what_the_bridge_rewrote(self, tracking, parses):
        _, run_id = tracking.new_run("stamped")
        parses.clear()

        # The bridge stamps the author: MLflow reads another document than the one checked.
        status, _ = tracking.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.user",
                                                   "value": "someone-else"})  # fmt: skip

        assert status == 200
        assert parses.count("SetTag") == 2
        tags = tracking.get("runs/get", run_id=run_id)[1]["run"]["data"]["tags"]
        assert {"key": "mlflow.user", "value": "parser"} in tags

    def test_it_never_reuses_a_parse_outside_its_request(self):
        message = SetTag()

        parse.parse_dict_once({"run_id": "r", "key": "k", "value": "v"}, message)

        assert (message.run_id, message.key, message.value) == ("r", "k", "v")

    def test_it_parses_a_different_document_itself(self):
        checked = messages.check_parses("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "a"})
        message = LogBatch()

        with parse.reused(checked):
            parse.parse_dict_once({"run_id": "b"}, message)

        assert message.run_id == "b"
