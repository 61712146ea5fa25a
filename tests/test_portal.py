"""The portal in-process: GitLab's list, cached, searched, and what happens when GitLab fails."""

from __future__ import annotations

import pytest
import requests
import responses
from django.core.cache import cache

from tests.sessions import logged_in_client

BASE = "https://gitlab.example.com"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    settings.GITLAB_MANDATORY_TOPICS = []
    cache.clear()


def listed(project_id: int, path: str, level: int) -> dict:
    return {"id": project_id, "path_with_namespace": path, "name": path.rsplit("/", 1)[-1],
            "topics": [], "web_url": f"{BASE}/{path}",
            "permissions": {"project_access": {"access_level": level},
                            "group_access": None}}  # fmt: skip


def answer_gitlab(*projects: dict) -> None:
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(f"{BASE}/api/v4/projects", json=list(projects))


@responses.activate
def test_it_asks_gitlab_once_per_ttl_for_the_list(client):
    answer_gitlab(listed(5101, "ml/a", 30), listed(5102, "ml/b", 20))
    browser = logged_in_client(client)

    first = browser.get("/mlflow/").content.decode()
    browser.get("/mlflow/?q=b")

    assert 'data-path="ml/a"' in first and 'data-path="ml/b"' in first
    assert (
        sum(call.request.url.startswith(f"{BASE}/api/v4/projects") for call in responses.calls) == 1
    )


@responses.activate
def test_it_searches_case_insensitively_in_the_path(client):
    answer_gitlab(listed(5101, "ml/Alpha", 30), listed(5102, "ml/beta", 20))

    page = logged_in_client(client).get("/mlflow/", {"q": "ALP"}).content.decode()

    assert 'data-path="ml/Alpha"' in page and 'data-path="ml/beta"' not in page


@responses.activate
def test_it_logs_out_when_gitlab_refuses_the_token(client):
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(f"{BASE}/api/v4/projects", status=401, json={"message": "401 Unauthorized"})

    response = logged_in_client(client).get("/mlflow/")

    assert response.status_code == 302
    assert response["Location"] == "/mlflow/login/?next=/mlflow/"
    assert "_auth_user_id" not in client.session


@responses.activate
def test_it_says_gitlab_is_not_answering(client):
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(f"{BASE}/api/v4/projects", body=requests.ConnectionError("refused"))

    response = logged_in_client(client).get("/mlflow/")

    assert response.status_code == 503
    assert b"GitLab is not answering" in response.content
