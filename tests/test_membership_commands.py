"""`gitlab_refresh` asks GitLab again for memberships in use; `gitlab_prune` deletes the unusable.

In <g>/team/churn: Dora is a direct Developer, Greg maintains the group <g>/team, Shay is a
Developer through a shared group, and Gus has left. All four are cached as Guests.
"""

from __future__ import annotations

import io
import itertools
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from projects import membership_cache
from projects.models import (
    CIJob,
    GitLabProject,
    GitLabUser,
    Membership,
    TokenFingerprint,
    WebhookDelivery,
)
from tests.gitlab_double import GitLabDouble, Project, User

_groups = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def command_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.GITLAB_OUTAGE_GRACE = 15 * 60
    settings.GITLAB_SERVICE_TOKEN = gitlab.add_user("refresher", admin=True).token


def cache_membership(project: Project, user: User, level: int = 10, *, age=timedelta(0),
                     expired: bool = False) -> Membership:  # fmt: skip
    """Store what GitLab said `age` ago, as the membership cache would have."""
    row, _ = GitLabProject.objects.get_or_create(id=project.id, defaults={"path": project.path})
    GitLabUser.objects.get_or_create(id=user.id, defaults={"username": user.username})
    fetched = timezone.now() - age
    expires = timezone.now() + timedelta(seconds=-1 if expired else 60)
    return Membership.objects.create(user_id=user.id, project=row, access_level=level,
                                     fetched_at=fetched, expires_at=expires)  # fmt: skip


def refresh(*arguments: str) -> str:
    out = io.StringIO()
    call_command("gitlab_refresh", "--per-second", "1000", *arguments, stdout=out)
    return out.getvalue()


@pytest.fixture
def team(gitlab: GitLabDouble) -> dict:
    top = f"cmd{next(_groups)}"
    project = gitlab.add_project(f"{top}/team/churn")
    users = {name: gitlab.add_user(name) for name in ("dora", "greg", "shay", "gus")}
    project.direct[users["dora"].id] = 30
    gitlab.group_members[(f"{top}/team", users["greg"].id)] = 40
    project.shared[users["shay"].id] = 30
    return {"project": project, **users}


def level_and_source(user: User) -> tuple[int, str]:
    membership = Membership.objects.get(user_id=user.id)
    return membership.access_level, membership.source


class TestGitLabRefresh:
    def test_it_refreshes_every_membership_in_use_with_its_source(self, team):
        for name in ("dora", "greg", "shay", "gus"):
            cache_membership(team["project"], team[name])

        out = refresh()

        assert level_and_source(team["dora"]) == (30, "project")
        assert level_and_source(team["greg"]) == (40, "group")
        assert level_and_source(team["shay"]) == (30, "shared")
        assert level_and_source(team["gus"]) == (0, "")
        assert "[4/4]" in out
        assert "4 memberships refreshed from GitLab (4 changed), 0 forgotten" in out

    def test_it_leaves_expired_memberships_alone(self, team):
        cache_membership(team["project"], team["dora"], expired=True)

        assert "0 memberships refreshed" in refresh()
        assert level_and_source(team["dora"]) == (10, "")

    def test_it_follows_a_renamed_and_archived_project(self, gitlab, team):
        cache_membership(team["project"], team["dora"])
        gitlab.rename(team["project"], team["project"].path + "-renamed")
        team["project"].archived = True

        refresh()

        project = GitLabProject.objects.get(id=team["project"].id)
        assert (project.path, project.archived) == (team["project"].path, True)

    def test_it_forgets_the_memberships_of_a_project_gitlab_no_longer_has(self, gitlab, team):
        cache_membership(team["project"], team["dora"])
        del gitlab.projects[team["project"].id]

        out = refresh()

        assert not Membership.objects.filter(user_id=team["dora"].id).exists()
        assert "1 forgotten" in out

    def test_it_orphans_a_project_gitlab_no_longer_has_even_without_memberships(self, gitlab, team):
        GitLabProject.objects.create(id=team["project"].id, path=team["project"].path)
        del gitlab.projects[team["project"].id]

        out = refresh()

        assert GitLabProject.objects.get(id=team["project"].id).orphaned_at is not None
        assert "1 projects newly orphaned" in out

    def test_it_orphans_nothing_on_the_word_of_a_token_that_cannot_see_everything(
        self, settings, gitlab, team
    ):
        settings.GITLAB_SERVICE_TOKEN = gitlab.add_user("not-an-admin").token
        GitLabProject.objects.create(id=team["project"].id, path=team["project"].path)

        out = refresh()

        assert GitLabProject.objects.get(id=team["project"].id).orphaned_at is None
        assert "1 projects not found were not orphaned: GITLAB_SERVICE_TOKEN is no " in out

    def test_it_restores_an_orphaned_project_gitlab_has_again(self, team):
        GitLabProject.objects.create(id=team["project"].id, path=team["project"].path,
                                     orphaned_at=timezone.now())  # fmt: skip

        out = refresh()

        assert GitLabProject.objects.get(id=team["project"].id).orphaned_at is None
        assert "0 projects newly orphaned" in out

    def test_it_needs_the_service_token(self, settings):
        settings.GITLAB_SERVICE_TOKEN = ""

        with pytest.raises(CommandError, match="Set GITLAB_SERVICE_TOKEN"):
            refresh()

    def test_it_says_when_gitlab_refuses_the_service_token(self, settings, team):
        cache_membership(team["project"], team["dora"])
        settings.GITLAB_SERVICE_TOKEN = "glpat-revoked"

        with pytest.raises(CommandError, match="renew it"):
            refresh()

    def test_it_stops_with_a_clear_error_when_gitlab_is_down(self, gitlab, team):
        cache_membership(team["project"], team["dora"])
        gitlab.down = True
        try:
            with pytest.raises(CommandError, match="run the command again later"):
                refresh()
        finally:
            gitlab.down = False

    def test_it_paces_its_calls(self):
        pace = membership_cache.paced(per_second=20)
        started = time.monotonic()

        for _ in range(5):
            pace()

        assert time.monotonic() - started >= 4 / 20


class TestGitLabPrune:
    def test_it_deletes_what_even_an_outage_cannot_use(self, team):
        old, recent = timedelta(minutes=20), timedelta(minutes=5)
        cache_membership(team["project"], team["dora"], age=old, expired=True)
        kept_in_grace = cache_membership(team["project"], team["greg"], age=recent, expired=True)
        kept_fresh = cache_membership(team["project"], team["shay"])
        cache_membership(team["project"], team["gus"], level=0, expired=True)
        now = timezone.now()
        for digest, user, age, expired in [
            ("a" * 64, team["dora"], old, True),
            ("b" * 64, team["greg"], recent, True),
            ("c" * 64, None, timedelta(0), True),
            ("d" * 64, team["shay"], timedelta(0), False),
        ]:
            TokenFingerprint.objects.create(
                digest=digest,
                user_id=user and user.id,
                fetched_at=now - age,
                expires_at=now + timedelta(seconds=-1 if expired else 60),
            )
        CIJob.objects.create(
            id=1, project_id=team["project"].id, pipeline_id=1, user_id=team["dora"].id
        )
        with_token = CIJob.objects.create(
            id=2, project_id=team["project"].id, pipeline_id=2, user_id=team["shay"].id
        )
        TokenFingerprint.objects.filter(digest="d" * 64).update(job=with_token)
        WebhookDelivery.objects.create(key="old", received_at=now - timedelta(days=8))
        WebhookDelivery.objects.create(key="new", received_at=now - timedelta(days=1))
        out = io.StringIO()

        call_command("gitlab_prune", stdout=out)

        assert set(Membership.objects.all()) == {kept_in_grace, kept_fresh}
        assert set(TokenFingerprint.objects.values_list("digest", flat=True)) == {
            "b" * 64,
            "d" * 64,
        }
        assert list(CIJob.objects.values_list("id", flat=True)) == [2]
        assert list(WebhookDelivery.objects.values_list("key", flat=True)) == ["new"]
        assert out.getvalue().strip() == ("Deleted 2 memberships, 2 token fingerprints, "
                                          "1 CI jobs, 1 webhook keys.")  # fmt: skip
