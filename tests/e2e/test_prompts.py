"""Prompts are registered models too: per project, invisible to other projects."""

import mlflow
import pytest
from mlflow.exceptions import MlflowException


@pytest.fixture
def as_user(monkeypatch):
    def switch(tracking_uri: str, token: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)

    yield switch
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_it_keeps_prompts_inside_their_project(as_user, gunicorn_server, gitlab, cast):
    uri_a = gunicorn_server.tracking_uri(cast.project.path)
    uri_b = gunicorn_server.tracking_uri(cast.other_project.path)

    as_user(uri_a, cast.dave.token)
    mlflow.genai.register_prompt("greeting", template="Hello {{name}} from A")
    as_user(uri_b, cast.otto.token)
    with pytest.raises(MlflowException):
        mlflow.genai.load_prompt("prompts:/greeting/1")
    mlflow.genai.register_prompt("greeting", template="Hello {{name}} from B")

    assert mlflow.genai.load_prompt("prompts:/greeting/1").template == "Hello {{name}} from B"
    as_user(uri_a, cast.dave.token)
    assert mlflow.genai.load_prompt("prompts:/greeting/1").template == "Hello {{name}} from A"
