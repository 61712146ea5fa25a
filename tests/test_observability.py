"""Access-log lines and /metrics, in-process; GitLab answered by `responses`."""

import logging

import pytest
import responses
from django.core.cache import cache

BASE = "https://gitlab.example.com"
TOKEN = "glpat-dave-observed"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
URL = "/mlflow/ml/team/observed/tracking/api/2.0/mlflow/experiments/search?max_results=5"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    settings.METRICS_TOKEN = "scrape-me"
    cache.clear()


def answer_gitlab(level=30):
    responses.get(f"{BASE}/api/v4/user", json={"id": 77, "username": "dave"})
    responses.get(
        f"{BASE}/api/v4/projects/ml%2Fteam%2Fobserved",
        json={"id": 4277, "path_with_namespace": "ml/team/observed",
              "permissions": {"project_access": {"access_level": level}, "group_access": None}},
    )  # fmt: skip


class TestAccessLog:
    @responses.activate
    def test_it_logs_one_line_with_project_principal_route_action_and_status(self, client, caplog):
        answer_gitlab()

        with caplog.at_level(logging.INFO, logger="sharinghub.access"):
            response = client.get(URL, **AUTH)

        assert response.status_code == 200
        [line] = [r.getMessage() for r in caplog.records if r.name == "sharinghub.access"]
        assert line.startswith(
            "project=4277 principal=77 method=GET route=/2.0/mlflow/experiments/search "
            "action=read status=200 duration_ms="
        )

    @responses.activate
    def test_it_never_logs_the_token(self, client, caplog):
        responses.get(f"{BASE}/api/v4/user", status=401)

        with caplog.at_level(logging.INFO, logger="sharinghub.access"):
            response = client.get(URL, **AUTH)

        assert response.status_code == 401
        assert "project=- principal=- method=GET route=- action=- status=401" in caplog.text
        assert TOKEN not in caplog.text


class TestMetrics:
    def test_it_is_404_without_a_metrics_token(self, client, settings):
        settings.METRICS_TOKEN = ""

        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404

    def test_it_refuses_a_wrong_token(self, client):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401

    @responses.activate
    def test_it_counts_requests_gitlab_calls_and_cache_lookups(self, client):
        answer_gitlab()
        client.get(URL, **AUTH)
        client.get(URL, **AUTH)

        text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()

        assert 'sharinghub_requests_total{action="read",status="200"}' in text
        assert 'sharinghub_gitlab_calls_total{outcome="200"}' in text
        assert 'sharinghub_membership_cache_total{result="hit"}' in text
        # A token's first lookup is asked of GitLab with that token (it proves its read_api
        # scope), whatever the cache holds; the second is served from the cache.
        assert 'sharinghub_membership_cache_total{result="unproven_token"}' in text
        assert 'sharinghub_request_duration_seconds_bucket{action="read",le="0.5"}' in text
