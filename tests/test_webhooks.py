"""POST /hooks/gitlab/: GitLab's member and project events drop exactly the cached answers
they change, so a removed member is refused at once, not after the cache TTL.

Hilda is a Developer of the group <g>/team (so of <g>/team/churn and <g>/team/sub/model) and a
direct Developer of <g>/other/churn. Hugo is a direct Developer of <g>/team/churn.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.utils import timezone

from projects.models import GitLabProject, Membership, WebhookDelivery
from tests.gitlab_double import GitLabDouble, Project, User
from tests.inprocess import Tracking

SECRET = "hook-secret-0123456789"
BODY = {"max_results": 10}
_groups = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hook_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.MEMBERSHIP_CACHE_TTL = 60
    settings.GITLAB_WEBHOOK_SECRET = SECRET
    cache.clear()


@dataclass
class Team:
    top: str
    project: Project
    sub_project: Project
    other_project: Project
    hilda: User
    hugo: User


@pytest.fixture
def team(gitlab: GitLabDouble) -> Team:
    top = f"hooks{next(_groups)}"
    project = gitlab.add_project(f"{top}/team/churn")
    sub_project = gitlab.add_project(f"{top}/team/sub/model")
    other_project = gitlab.add_project(f"{top}/other/churn")
    hilda, hugo = gitlab.add_user("hilda"), gitlab.add_user("hugo")
    gitlab.group_members[(f"{top}/team", hilda.id)] = 30
    other_project.direct[hilda.id] = 30
    project.direct[hugo.id] = 30
    return Team(top, project, sub_project, other_project, hilda, hugo)


def member_event(name: str, user: User, group_path: str = "team") -> dict:
    """A group webhook's Member Hook body: `group_path` is the group's own segment only."""
    return {"event_name": name, "group_name": group_path, "group_path": group_path,
            "group_id": 77, "user_username": user.username, "user_name": user.username,
            "user_email": f"{user.username}@example.com", "user_id": user.id,
            "group_access": "Developer", "created_at": "2026-11-27T10:00:00Z",
            "updated_at": "2026-11-27T10:00:00Z", "expires_at": None}  # fmt: skip


def post_hook(client, event: dict, *, key: str | None = None, secret: str | None = SECRET,
              headers: dict | None = None):  # fmt: skip
    extra = {"HTTP_X_GITLAB_EVENT": "Member Hook", **(headers or {})}
    if secret is not None:
        extra["HTTP_X_GITLAB_TOKEN"] = secret
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    body = event if isinstance(event, str) else json.dumps(event)
    return client.post("/hooks/gitlab/", body, content_type="application/json", **extra)


def search(client, project: Project, user: User) -> int:
    return Tracking(client, project.path, user.token).post("experiments/search", BODY)[0]


def cached_paths(user: User) -> set[str]:
    return set(Membership.objects.filter(user_id=user.id).values_list("project__path", flat=True))


class TestSecret:
    def test_it_refuses_a_wrong_secret_with_401_and_changes_nothing(self, client, team):
        search(client, team.project, team.hilda)

        response = post_hook(client, member_event("user_remove_from_group", team.hilda),
                             secret="not-the-secret")  # fmt: skip

        assert response.status_code == 401
        assert "GITLAB_WEBHOOK_SECRET" in response.json()["message"]
        assert cached_paths(team.hilda) == {team.project.path}

    def test_it_refuses_a_missing_secret_with_401(self, client, team):
        response = post_hook(client, member_event("user_remove_from_group", team.hilda),
                             secret=None)  # fmt: skip

        assert response.status_code == 401

    def test_it_says_how_to_turn_it_on_when_no_secret_is_configured(self, client, settings):
        settings.GITLAB_WEBHOOK_SECRET = ""

        response = post_hook(client, {"event_name": "user_remove_from_group"}, secret="")

        assert response.status_code == 503
        assert "set GITLAB_WEBHOOK_SECRET" in response.json()["message"]

    def test_it_accepts_post_only(self, client):
        assert client.get("/hooks/gitlab/", HTTP_X_GITLAB_TOKEN=SECRET).status_code == 405


class TestGroupMemberEvents:
    def test_it_refuses_a_removed_member_on_the_very_next_request(self, client, gitlab, team):
        assert search(client, team.project, team.hilda) == 200
        assert search(client, team.project, team.hugo) == 200
        del gitlab.group_members[(f"{team.top}/team", team.hilda.id)]
        # Without the hook, the cached answer would keep Hilda in until the TTL runs out.
        assert search(client, team.project, team.hilda) == 200

        response = post_hook(client, member_event("user_remove_from_group", team.hilda),
                             key="delivery-1")  # fmt: skip

        assert response.status_code == 200
        assert response.json()["invalidated"] == 1
        assert search(client, team.project, team.hilda) == 404
        assert search(client, team.project, team.hugo) == 200

    def test_it_changes_nothing_more_when_an_event_is_replayed(self, client, gitlab, team):
        search(client, team.project, team.hilda)
        del gitlab.group_members[(f"{team.top}/team", team.hilda.id)]
        event = member_event("user_remove_from_group", team.hilda)
        post_hook(client, event, key="delivery-2")
        # Hilda is added back; her new membership is cached.
        gitlab.group_members[(f"{team.top}/team", team.hilda.id)] = 30
        assert search(client, team.project, team.hilda) == 200
        calls = len(gitlab.calls)

        replayed = post_hook(client, event, key="delivery-2")

        assert replayed.status_code == 200
        assert replayed.json()["invalidated"] == 0
        assert cached_paths(team.hilda) == {team.project.path}
        assert search(client, team.project, team.hilda) == 200
        assert len(gitlab.calls) == calls
        assert WebhookDelivery.objects.filter(key="delivery-2").count() == 1

    def test_it_takes_the_event_uuid_as_key_without_an_idempotency_key(self, client, team):
        event = member_event("user_update_for_group", team.hilda)
        headers = {"HTTP_X_GITLAB_EVENT_UUID": "uuid-3"}
        search(client, team.project, team.hilda)
        assert post_hook(client, event, headers=headers).json()["invalidated"] == 1
        search(client, team.project, team.hilda)

        assert post_hook(client, event, headers=headers).json()["invalidated"] == 0
        assert cached_paths(team.hilda) == {team.project.path}

    def test_it_drops_the_group_and_its_subgroups_only(self, client, team):
        for project in (team.project, team.sub_project, team.other_project):
            assert search(client, project, team.hilda) == 200
        search(client, team.project, team.hugo)

        post_hook(client, member_event("user_update_for_group", team.hilda))

        assert cached_paths(team.hilda) == {team.other_project.path}
        assert cached_paths(team.hugo) == {team.project.path}

    def test_it_drops_by_full_path_when_the_event_has_one(self, client, team):
        for project in (team.project, team.other_project):
            search(client, project, team.hilda)
        event = {**member_event("user_remove_from_group", team.hilda),
                 "group_full_path": f"{team.top}/team"}  # fmt: skip

        post_hook(client, event)

        assert cached_paths(team.hilda) == {team.other_project.path}

    def test_it_lets_a_member_added_to_a_group_in_at_once(self, client, gitlab, team):
        newcomer = gitlab.add_user("newcomer")
        gitlab.add_project(f"{team.top}/team/open", visibility="internal")
        open_path = f"{team.top}/team/open"
        # An internal project answers "no access" to a non-member (who reads nothing there:
        # test_visibility): cached, and a 404 here.
        assert (
            Tracking(client, open_path, newcomer.token).post("experiments/search", BODY)[0] == 404
        )
        gitlab.group_members[(f"{team.top}/team", newcomer.id)] = 30

        post_hook(client, member_event("user_add_to_group", newcomer))

        assert (
            Tracking(client, open_path, newcomer.token).post("experiments/search", BODY)[0] == 200
        )


class TestProjectEvents:
    def system_event(self, name: str, project: Project, user: User) -> dict:
        return {"event_name": name, "project_id": project.id, "project_path": project.path,
                "project_path_with_namespace": project.path, "project_name": "churn",
                "user_id": user.id, "user_username": user.username,
                "access_level": "Developer", "project_visibility": "private"}  # fmt: skip

    def test_it_drops_one_membership_on_a_project_member_event(self, client, gitlab, team):
        search(client, team.project, team.hugo)
        search(client, team.project, team.hilda)
        del team.project.direct[team.hugo.id]

        post_hook(client, self.system_event("user_remove_from_team", team.project, team.hugo))

        assert search(client, team.project, team.hugo) == 404
        assert cached_paths(team.hilda) == {team.project.path}

    def test_it_follows_a_rename_and_keeps_memberships(self, client, gitlab, team):
        search(client, team.project, team.hugo)
        old_path = team.project.path
        gitlab.rename(team.project, f"{team.top}/team/renamed")
        event = {"event_name": "project_rename", "project_id": team.project.id,
                 "path_with_namespace": team.project.path,
                 "old_path_with_namespace": old_path}  # fmt: skip

        post_hook(client, event)

        assert GitLabProject.objects.get(id=team.project.id).path == team.project.path
        assert cached_paths(team.hugo) == {team.project.path}
        calls = len(gitlab.calls)
        assert search(client, team.project, team.hugo) == 200
        assert len(gitlab.calls) == calls  # the new path is served from the cache

    def test_it_follows_a_transfer_and_asks_gitlab_again(self, client, gitlab, team):
        search(client, team.project, team.hilda)
        old_path = team.project.path
        gitlab.rename(team.project, f"{team.top}/other/moved")
        event = {"event_name": "project_transfer", "project_id": team.project.id,
                 "path_with_namespace": team.project.path,
                 "old_path_with_namespace": old_path}  # fmt: skip

        post_hook(client, event)

        assert GitLabProject.objects.get(id=team.project.id).path == team.project.path
        assert cached_paths(team.hilda) == set()
        # Out of her group now: Hilda is no member of the transferred project.
        assert search(client, team.project, team.hilda) == 404

    def test_it_drops_a_destroyed_projects_memberships(self, client, team):
        search(client, team.project, team.hugo)

        post_hook(client, {"event_name": "project_destroy", "project_id": team.project.id,
                           "path_with_namespace": team.project.path})  # fmt: skip

        assert cached_paths(team.hugo) == set()

    def test_it_orphans_a_destroyed_project_and_keeps_the_first_date(self, client, team):
        search(client, team.project, team.hugo)
        event = {"event_name": "project_destroy", "project_id": team.project.id,
                 "path_with_namespace": team.project.path}  # fmt: skip

        post_hook(client, event, key="destroy-1")
        first = GitLabProject.objects.get(id=team.project.id).orphaned_at
        post_hook(client, event, key="destroy-2")

        assert first is not None
        assert GitLabProject.objects.get(id=team.project.id).orphaned_at == first

    def test_it_makes_an_orphaned_project_unreachable_even_from_a_fresh_membership(
        self, client, team
    ):
        search(client, team.project, team.hugo)
        GitLabProject.objects.filter(id=team.project.id).update(orphaned_at=timezone.now())

        assert search(client, team.project, team.hugo) == 404

    def test_it_restores_an_orphaned_project_gitlab_answers_for(self, client, team):
        GitLabProject.objects.create(id=team.project.id, path=team.project.path,
                                     orphaned_at=timezone.now())  # fmt: skip

        assert search(client, team.project, team.hugo) == 200
        assert GitLabProject.objects.get(id=team.project.id).orphaned_at is None


class TestOtherDeliveries:
    def test_it_acknowledges_and_ignores_unknown_events(self, client, team):
        search(client, team.project, team.hilda)

        response = post_hook(client, {"object_kind": "push", "event_name": "push"}, key="push-1")

        assert response.status_code == 200
        assert response.json()["invalidated"] == 0
        assert cached_paths(team.hilda) == {team.project.path}

    def test_it_refuses_a_body_that_is_not_json(self, client):
        assert post_hook(client, "not json").status_code == 400

    def test_it_refuses_an_event_without_its_fields_and_does_not_remember_it(self, client):
        response = post_hook(client, {"event_name": "user_remove_from_group"}, key="broken-1")

        assert response.status_code == 400
        assert not WebhookDelivery.objects.filter(key="broken-1").exists()

    @pytest.mark.parametrize("path", [None, ["a"], "", 42, "a//b", "/a/b"])
    @pytest.mark.parametrize("name", ["project_rename", "project_transfer"])
    def test_it_refuses_a_move_to_a_path_that_is_not_one_and_stores_nothing(
        self, client, team, name, path
    ):
        event = {"event_name": name, "project_id": team.project.id, "path_with_namespace": path}
        search(client, team.project, team.hilda)

        response = post_hook(client, event, key=f"bad-move-{name}-{path!r}")

        assert response.status_code == 400
        assert "path_with_namespace" in response.json()["message"]
        assert GitLabProject.objects.get(id=team.project.id).path == team.project.path
        assert not WebhookDelivery.objects.filter(key=f"bad-move-{name}-{path!r}").exists()
