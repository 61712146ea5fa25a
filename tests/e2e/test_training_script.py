"""A full training script with the stock mlflow client against a live gunicorn server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRAIN = Path(__file__).with_name("train.py")


def run_script(tracking_uri: str, project_id: int, **auth: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLFLOW_TRACKING_URI": tracking_uri, "PROJECT_ID": str(project_id), **auth})
    done = subprocess.run(
        [sys.executable, str(TRAIN)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def deep_project(gitlab, cast):
    project = gitlab.add_project("ml/vision/detection/churn")
    project.direct[cast.dave.id] = 30
    project.direct[cast.rita.id] = 20
    return project


@pytest.fixture(scope="module")
def results(gunicorn_server, deep_project, cast):
    return run_script(
        gunicorn_server.tracking_uri(deep_project.path),
        deep_project.id,
        MLFLOW_TRACKING_TOKEN=cast.dave.token,
    )


class TestTrainingScript:
    def test_it_logs_a_run_without_experiment_into_the_projects_default(self, results):
        assert results["default_experiment_name"] == "Default"

    def test_it_resolves_the_suffixed_experiment_name_to_the_same_experiment(self, results):
        assert results["suffixed_experiment_id"] == results["experiment_id"]

    def test_it_logs_params_metrics_and_tags(self, results):
        assert results["params"] == {"alpha": "0.5", "beta": "2", "gamma": "x"}
        assert results["metrics"] == {"loss": 1.0 / 25, "accuracy": 0.9, "f1": 0.8}
        assert results["tags"] == {"team": "churn", "stage": "dev"}
        assert results["loss_history"] == [1.0 / (step + 1) for step in range(25)]

    def test_it_stores_and_serves_artifacts(self, results):
        assert results["artifacts"] == ["notes.txt", "plots"]
        assert results["plot_artifacts"] == ["plots/a.csv"]
        assert results["downloaded_notes"] == "hello from the training script"

    def test_it_logs_registers_and_loads_a_model(self, results):
        assert results["predictions"] == results["expected_predictions"]
        assert results["champion_predictions"] == results["expected_predictions"]
        assert results["aliases"] == {"champion": "1"}
        assert results["registered_tags"] == {"owner": "ml-team"}
        assert results["version_tags"] == {"validated": "yes"}
        assert results["logged_model_id"] in results["logged_models"]

    def test_it_records_traces(self, results):
        assert results["traced_value"] == 42
        assert results["trace_status"].endswith("OK")
        assert results["trace_spans"] == ["double"]

    def test_it_finds_the_run_with_search(self, results):
        assert results["search_runs"] == [results["run_id"]]
        assert results["experiments"] == ["Default", "baseline"]

    def test_it_works_with_basic_auth_too(self, gunicorn_server, gitlab, cast):
        project = gitlab.add_project("ml/basic/churn")
        project.direct[cast.dave.id] = 30

        basic = run_script(
            gunicorn_server.tracking_uri(project.path),
            project.id,
            MLFLOW_TRACKING_USERNAME="anything",
            MLFLOW_TRACKING_PASSWORD=cast.dave.token,
        )

        assert basic["predictions"] == basic["expected_predictions"]
        assert basic["experiments"] == ["Default", "baseline"]
