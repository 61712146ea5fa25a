"""projects/memo.py: a cached member's repeated calls make no query, and whatever invalidates
the database's answers (webhooks, admin actions, refresh) voids every worker's memo at once.

Dave is a Developer of the project; his first call asks GitLab, his second reads the database
once and fills the memo, his next ones are answered from it.
"""

from __future__ import annotations

import itertools
import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from projects import membership_cache, memo
from projects.models import GitLabProject, Membership, TokenFingerprint
from sharinghub_mlflow.cache import FailSoftRedisCache
from tests import testenv
from tests.gitlab_double import GitLabDouble, Project, User
from tests.inprocess import Tracking

SECRET = "memo-hook-secret-0123456789"
# A database of its own: other suites' servers share database 0.
REDIS = testenv.redis_url("memo")
BODY = {"max_results": 5}
_names = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def memo_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.MEMBERSHIP_CACHE_TTL = 60
    settings.MEMBERSHIP_MEMO_TTL = 5
    settings.GITLAB_WEBHOOK_SECRET = SECRET


@pytest.fixture
def project(gitlab: GitLabDouble) -> Project:
    return gitlab.add_project(f"memo{next(_names)}/team/churn")


@pytest.fixture
def dave(gitlab: GitLabDouble, project: Project) -> User:
    dave = gitlab.add_user(f"dave-memo{next(_names)}")
    project.direct[dave.id] = 30
    return dave


def search(client, project: Project, user: User) -> int:
    return Tracking(client, project.path, user.token).post("experiments/search", BODY)[0]


def memoized(client, project: Project, user: User) -> None:
    """Two calls: GitLab's answer stored, then read in one query and memoized."""
    assert search(client, project, user) == 200
    assert search(client, project, user) == 200


def hook(client, event: dict):
    response = client.post("/hooks/gitlab/", json.dumps(event), content_type="application/json",
                           HTTP_X_GITLAB_TOKEN=SECRET)  # fmt: skip
    assert response.status_code == 200, response.content
    return response


def removed_from_team(project: Project, user: User) -> dict:
    return {"event_name": "user_remove_from_team", "project_id": project.id,
            "project_path_with_namespace": project.path, "user_id": user.id,
            "user_username": user.username, "access_level": "Developer"}  # fmt: skip


class TestHotPath:
    def test_it_makes_no_django_query_for_a_cached_members_repeated_call(
        self, client, project, dave
    ):
        memoized(client, project, dave)

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert [query["sql"] for query in queries.captured_queries] == []

    def test_it_reads_the_database_once_to_fill_the_memo(self, client, project, dave):
        assert search(client, project, dave) == 200

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert len(queries.captured_queries) == 1

    def test_it_keys_entries_by_the_tokens_hash_never_the_token(self, client, project, dave):
        memoized(client, project, dave)

        assert list(memo._entries) == [(TokenFingerprint.digest_of(dave.token), project.path)]
        assert dave.token not in repr(memo._entries)

    def test_it_is_off_when_its_lifetime_is_0(self, client, settings, project, dave):
        settings.MEMBERSHIP_MEMO_TTL = 0
        memoized(client, project, dave)

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert len(queries.captured_queries) == 1
        assert memo._entries == {}


class TestLifetime:
    def test_it_reads_the_database_again_once_its_lifetime_passed(
        self, client, monkeypatch, project, dave
    ):
        memoized(client, project, dave)
        later = memo.clock() + 5
        monkeypatch.setattr(memo, "clock", lambda: later)

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert len(queries.captured_queries) == 1

    def test_it_serves_no_longer_than_the_rows_it_was_read_from(
        self, client, settings, monkeypatch, project, dave
    ):
        settings.MEMBERSHIP_MEMO_TTL = 3600
        memoized(client, project, dave)
        expiry = Membership.objects.get(user_id=dave.id).expires_at.timestamp()
        monkeypatch.setattr(memo, "clock", lambda: expiry)
        # What the database says once the membership expired: GitLab no longer has Dave.
        Membership.objects.update(expires_at=timezone.now())
        del project.direct[dave.id]

        assert search(client, project, dave) == 404


class TestInvalidation:
    def test_it_refuses_a_member_a_webhook_removed_on_the_very_next_call(
        self, client, project, dave
    ):
        memoized(client, project, dave)
        del project.direct[dave.id]

        hook(client, removed_from_team(project, dave))

        assert search(client, project, dave) == 404

    def test_it_asks_gitlab_at_once_about_a_project_a_webhook_says_was_destroyed(
        self, client, gitlab, project, dave
    ):
        memoized(client, project, dave)
        asked = gitlab.count("/api/v4/projects/")

        hook(client, {"event_name": "project_destroy", "project_id": project.id,
                      "path_with_namespace": project.path})  # fmt: skip
        search(client, project, dave)

        assert gitlab.count("/api/v4/projects/") == asked + 1

    def test_it_answers_no_more_for_a_renamed_projects_old_path(
        self, client, gitlab, project, dave
    ):
        memoized(client, project, dave)
        old = Project(project.id, project.path)
        gitlab.rename(project, project.path + "-renamed")

        hook(client, {"event_name": "project_rename", "project_id": project.id,
                      "path_with_namespace": project.path})  # fmt: skip

        assert search(client, old, dave) == 404
        assert search(client, project, dave) == 200

    def test_it_voids_every_workers_memo_through_the_shared_generation(self, client, project, dave):
        memoized(client, project, dave)
        del project.direct[dave.id]
        # Another worker's invalidation: the rows deleted, the generation changed; this
        # process's entries are not touched directly.
        entries = dict(memo._entries)
        Membership.objects.filter(user_id=dave.id).delete()
        memo._new_generation()
        memo._entries.update(entries)

        assert search(client, project, dave) == 404

    def test_it_forgets_tokens_an_administrator_invalidates(
        self, client, admin_client, project, dave
    ):
        memoized(client, project, dave)
        digest = TokenFingerprint.digest_of(dave.token)
        project.direct.pop(dave.id)

        admin_client.post("/admin/projects/tokenfingerprint/", {
            "action": "invalidate", "_selected_action": [digest]})  # fmt: skip

        assert not TokenFingerprint.objects.filter(digest=digest).exists()
        assert search(client, project, dave) == 404

    def test_it_forgets_an_orphaned_project(self, client, project, dave):
        memoized(client, project, dave)

        membership_cache.orphan(project.id)

        assert GitLabProject.objects.get(id=project.id).orphaned_at is not None
        assert search(client, project, dave) == 404

    def test_it_forgets_a_level_a_refresh_changed(self, client, gitlab, settings, project, dave):
        settings.GITLAB_SERVICE_TOKEN = gitlab.add_user(f"admin{next(_names)}", admin=True).token
        memoized(client, project, dave)
        project.direct[dave.id] = 20  # Reporter now: reads, cannot write

        membership_cache.refresh(Membership.objects.filter(user_id=dave.id))

        tracking = Tracking(client, project.path, dave.token)
        assert tracking.post("experiments/create", {"name": f"e{next(_names)}"})[0] == 403


class TestThroughTheSharedCache:
    @pytest.fixture(autouse=True)
    def redis(self, settings):
        settings.CACHE_URL = REDIS
        settings.CACHES = {"default": {"BACKEND": "sharinghub_mlflow.cache.FailSoftRedisCache",
                                       "LOCATION": REDIS}}  # fmt: skip
        cache.delete(memo.GENERATION_KEY)
        yield
        cache.delete(memo.GENERATION_KEY)

    def test_it_makes_no_django_query_for_a_repeated_call(self, client, project, dave):
        memoized(client, project, dave)

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert queries.captured_queries == []

    def test_it_reads_the_database_again_once_another_process_changed_the_generation(
        self, client, project, dave
    ):
        memoized(client, project, dave)
        cache.set(memo.GENERATION_KEY, "another worker's", timeout=None)

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert len(queries.captured_queries) == 1

    def test_it_reads_the_database_while_the_cache_cannot_answer(
        self, client, monkeypatch, project, dave
    ):
        memoized(client, project, dave)
        monkeypatch.setattr(FailSoftRedisCache, "paused_until", float("inf"))

        with CaptureQueriesContext(connection) as queries:
            assert search(client, project, dave) == 200

        assert len(queries.captured_queries) == 1


class TestPathsReused:
    def test_it_answers_for_the_project_that_now_holds_a_path(self, client, gitlab, project, dave):
        memoized(client, project, dave)
        # GitLab gave the path to a new project (the old one moved away, no webhook came);
        # the service learns it when GitLab answers for the path: here, for Olga.
        old_path = project.path
        gitlab.rename(project, project.path + "-old")
        newcomer = gitlab.add_project(old_path)
        newcomer.direct[dave.id] = 10
        olga = gitlab.add_user(f"olga{next(_names)}")
        newcomer.direct[olga.id] = 30
        assert search(client, newcomer, olga) == 200

        tracking = Tracking(client, old_path, dave.token)

        assert tracking.post("experiments/create", {"name": f"e{next(_names)}"})[0] != 200
