"""The portal in-process: GitLab's list, cached, searched, and what happens when GitLab fails."""

from __future__ import annotations

import re

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


class TestManyProjects:
    """A member of 402 projects, one of which (ml/p377) has MLflow data."""

    @pytest.fixture
    def member_of_402(self, client, monkeypatch):
        from datetime import UTC, datetime

        from mlflow_bridge.embedded.activity import RecentRun
        from projects.models import ProjectUsage
        from sharinghub_mlflow import portal

        answer_gitlab(*[listed(6000 + i, f"ml/p{i:03}", 30 if i % 2 else 20) for i in range(402)])
        busy = f"p-{6000 + 377}"
        now = datetime.now(tz=UTC)
        monkeypatch.setattr(
            portal,
            "activity_of",
            lambda workspaces: (
                {busy: ProjectUsage(experiments=1, runs=2, last_activity=now)}
                if busy in workspaces
                else {}
            ),
        )
        monkeypatch.setattr(portal, "recent_runs", lambda workspaces, limit: [
            RecentRun(busy, "4", "a" * 32, "nightly", "FINISHED", now, "dave")])  # fmt: skip
        return logged_in_client(client)

    @responses.activate
    def test_it_shows_the_project_with_data_first_and_50_rows_a_page(self, member_of_402):
        page = member_of_402.get("/mlflow/").content.decode()

        paths = re.findall(r'<tr data-path="([^"]+)"', page)
        assert len(paths) == 50
        assert paths[:3] == ["ml/p377", "ml/p000", "ml/p001"]
        assert "1–50 of 402 projects" in page and 'rel="next" href="?page=2"' in page
        assert "just now" in page and "0 minutes" not in page

    @responses.activate
    def test_it_pages_on_to_the_last_rows(self, member_of_402):
        page = member_of_402.get("/mlflow/", {"page": 9}).content.decode()

        assert re.findall(r'<tr data-path="([^"]+)"', page) == ["ml/p400", "ml/p401"]
        assert 'rel="prev" href="?page=8"' in page and 'rel="next"' not in page

    @responses.activate
    def test_it_keeps_the_filter_across_pages(self, member_of_402):
        page = member_of_402.get("/mlflow/", {"q": "p3"}).content.decode()

        assert "1–50 of 100 projects" in page and 'href="?q=p3&amp;page=2"' in page

    @responses.activate
    def test_it_lists_recent_runs_across_projects(self, member_of_402):
        page = member_of_402.get("/mlflow/").content.decode()
        recent = page[page.index('id="recent-runs"') :]

        assert "Recent runs across your projects" in recent
        assert 'href="/mlflow/ml/p377/tracking/#/experiments/4/runs/' + "a" * 32 in recent
        assert all(text in recent for text in ("nightly", "finished", "ml/p377", "dave"))
