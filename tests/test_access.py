"""The membership cache: GitLab is asked once per TTL, answers are keyed by ids and hashes."""

from datetime import timedelta

import pytest
import responses
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from projects import access, gitlab
from projects.models import GitLabProject, Membership, TokenFingerprint

BASE = "https://gitlab.example.com"
TOKEN = "glpat-alice-very-secret"


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    settings.MEMBERSHIP_CACHE_TTL = 60
    settings.MEMBERSHIP_NEGATIVE_CACHE_TTL = 10
    cache.clear()


def answer_user(user_id=7, username="alice"):
    responses.get(f"{BASE}/api/v4/user", json={"id": user_id, "username": username, "bot": False})


def answer_project(project_id=42, path="ml/team/proj", level=30):
    responses.get(
        f"{BASE}/api/v4/projects/{path.replace('/', '%2F')}",
        json={"id": project_id, "path_with_namespace": path, "name": path.rsplit("/")[-1],
              "visibility": "private", "web_url": f"{BASE}/{path}", "archived": False,
              "topics": [], "permissions": {"project_access": {"access_level": level},
                                            "group_access": None}},
    )  # fmt: skip


pytestmark = pytest.mark.django_db


def access_of(path: str) -> access.ProjectAccess | None:
    """Dave's access to `path`, his token looked up afresh as in each request."""
    return access.access_to(access.credential_for(TOKEN), path)


class TestCredentialFor:
    @responses.activate
    def test_it_asks_gitlab_once_while_the_answer_is_fresh(self):
        answer_user()

        first = access.credential_for(TOKEN)
        second = access.credential_for(TOKEN)

        assert first.user.id == second.user.id == 7
        assert len(responses.calls) == 1

    @responses.activate
    def test_it_asks_again_once_the_answer_expired(self):
        answer_user()
        access.credential_for(TOKEN)
        TokenFingerprint.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

        access.credential_for(TOKEN)

        assert len(responses.calls) == 2

    @responses.activate
    def test_it_remembers_a_rejected_token_only_briefly(self):
        responses.get(f"{BASE}/api/v4/user", json={"message": "401 Unauthorized"}, status=401)

        for _ in range(2):
            with pytest.raises(gitlab.TokenRejected):
                access.credential_for(TOKEN)

        assert len(responses.calls) == 1
        fingerprint = TokenFingerprint.objects.get()
        assert fingerprint.user is None
        assert fingerprint.expires_at <= timezone.now() + timedelta(seconds=10)

    @responses.activate
    def test_it_stores_a_hash_of_the_token_never_the_token(self):
        answer_user()
        answer_project()
        access_of("ml/team/proj")

        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
            for table in tables:
                cursor.execute(f'SELECT * FROM "{table}"')
                assert TOKEN not in repr(cursor.fetchall()), table
        assert TokenFingerprint.objects.get().digest == TokenFingerprint.digest_of(TOKEN)


class TestAccessTo:
    @responses.activate
    def test_it_asks_gitlab_once_per_ttl_for_a_member(self):
        answer_user()
        answer_project(level=20)

        results = [access_of("ml/team/proj") for _ in range(3)]

        assert [r.level for r in results] == [20, 20, 20]
        assert results[0].can_read and not results[0].can_write
        assert results[0].role == "Reporter"
        assert len(responses.calls) == 2  # /user once, /projects once

    @responses.activate
    def test_it_keys_memberships_by_user_and_project_id(self):
        answer_user()
        answer_project()
        access_of("ml/team/proj")

        membership = Membership.objects.get()

        assert (membership.user_id, membership.project_id) == (7, 42)

    @responses.activate
    def test_it_caches_no_such_project_for_the_negative_ttl(self):
        answer_user()
        responses.get(f"{BASE}/api/v4/projects/ml%2Fnope", status=404,
                      json={"message": "404 Project Not Found"})  # fmt: skip

        assert access_of("ml/nope") is None
        assert access_of("ml/nope") is None
        assert len(responses.calls) == 2

    @responses.activate
    def test_it_follows_a_renamed_project_by_id(self):
        answer_user()
        answer_project(path="ml/team/old")
        answer_project(path="ml/team/new")
        access_of("ml/team/old")

        renamed = access_of("ml/team/new")

        assert renamed.project.id == 42
        assert GitLabProject.objects.get().path == "ml/team/new"

    @responses.activate
    def test_it_frees_a_path_reused_by_another_project(self):
        answer_user()
        answer_project(project_id=42, path="ml/team/proj")
        access_of("ml/team/proj")
        Membership.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        responses.replace(
            responses.GET, f"{BASE}/api/v4/projects/ml%2Fteam%2Fproj",
            json={"id": 43, "path_with_namespace": "ml/team/proj",
                  "permissions": {"project_access": {"access_level": 10}, "group_access": None}},
        )  # fmt: skip

        now = access_of("ml/team/proj")

        assert now.project.id == 43
        assert GitLabProject.objects.get(id=42).path != "ml/team/proj"
