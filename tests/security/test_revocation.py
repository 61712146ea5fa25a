"""A revoked GitLab token stops working within the cache TTL (time behind the cache's expiry)."""

from datetime import timedelta

import pytest
import responses
from django.core.cache import cache
from django.utils import timezone

from projects import memo
from projects.models import Membership, TokenFingerprint

BASE = "https://gitlab.example.com"
URL = "/mlflow/ml/team/revoked/tracking/api/2.0/mlflow/experiments/search"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    cache.clear()


def let_ttl_pass(monkeypatch) -> None:
    """The cached answers expire: in the database, and so in every worker's memo (which
    serves no entry past the rows it was read from)."""
    expiry = max(row.expires_at for row in [*TokenFingerprint.objects.all(),
                                            *Membership.objects.all()])  # fmt: skip
    monkeypatch.setattr(memo, "clock", lambda: expiry.timestamp())
    past = timezone.now() - timedelta(seconds=1)
    TokenFingerprint.objects.update(expires_at=past)
    Membership.objects.update(expires_at=past)


@responses.activate
def test_it_refuses_a_revoked_token_once_the_ttl_has_passed(client, monkeypatch):
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(f"{BASE}/api/v4/projects/ml%2Fteam%2Frevoked", json={
        "id": 777, "path_with_namespace": "ml/team/revoked",
        "permissions": {"project_access": {"access_level": 30}, "group_access": None}})  # fmt: skip
    auth = {"HTTP_AUTHORIZATION": "Bearer glpat-soon-revoked"}
    assert (
        client.post(URL, {"max_results": 5}, content_type="application/json", **auth).status_code
        == 200
    )

    revoked = {"error": "invalid_token", "error_description": "Token was revoked."}
    responses.replace(responses.GET, f"{BASE}/api/v4/user", json=revoked, status=401)
    responses.replace(responses.GET, f"{BASE}/api/v4/projects/ml%2Fteam%2Frevoked",
                      json=revoked, status=401)  # fmt: skip
    within_ttl = client.post(URL, {"max_results": 5}, content_type="application/json", **auth)
    let_ttl_pass(monkeypatch)
    after_ttl = client.post(URL, {"max_results": 5}, content_type="application/json", **auth)

    assert within_ttl.status_code == 200
    assert after_ttl.status_code == 401
    assert after_ttl.json()["error_code"] == "UNAUTHENTICATED"
