"""The Django admin shows and controls the membership cache, for Django staff only.

In <g>/team/churn: Ada is a direct Developer (cached as Guest), Max maintains the group <g>/team.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.auth.models import User as DjangoUser
from django.utils import timezone

from projects.models import (
    GitLabProject,
    GitLabUser,
    Membership,
    ProjectUsage,
    TokenFingerprint,
)
from tests.gitlab_double import GitLabDouble, Project, User

_groups = itertools.count()
MEMBERSHIPS = "/admin/projects/membership/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admin_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    # The staff user's password is hashed for each test: keep that cheap.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.GITLAB_SERVICE_TOKEN = gitlab.add_user("admin-refresher", admin=True).token


def cache_membership(project: Project, user: User, level: int, *, expired=False) -> Membership:
    row, _ = GitLabProject.objects.get_or_create(id=project.id, defaults={"path": project.path})
    GitLabUser.objects.get_or_create(id=user.id, defaults={"username": user.username})
    expires = timezone.now() + timedelta(seconds=-1 if expired else 60)
    return Membership.objects.create(
        user_id=user.id, project=row, access_level=level, source="project", expires_at=expires
    )


@pytest.fixture
def team(gitlab: GitLabDouble) -> dict:
    top = f"adm{next(_groups)}"
    project, other = gitlab.add_project(f"{top}/team/churn"), gitlab.add_project(f"{top}/x/y")
    ada, max_ = gitlab.add_user(f"ada-{top}"), gitlab.add_user(f"max-{top}")
    project.direct[ada.id] = 30
    gitlab.group_members[(f"{top}/team", max_.id)] = 40
    return {
        "project": project,
        "other": other,
        "ada": ada,
        "max": max_,
        "ada_row": cache_membership(project, ada, 10),
        "max_row": cache_membership(other, max_, 40, expired=True),
    }


def remember_token(digest: str, user: User) -> None:
    expires = timezone.now() + timedelta(minutes=1)
    TokenFingerprint.objects.create(digest=digest, user_id=user.id, expires_at=expires)


def listed(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def act(admin_client, url: str, action: str, *pks) -> str:
    response = admin_client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )
    return listed(response)


class TestWhoGetsIn:
    def test_it_sends_anonymous_visitors_to_the_login_page(self, client):
        response = client.get(MEMBERSHIPS)

        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    def test_it_refuses_users_who_are_not_staff(self, client):
        client.force_login(DjangoUser.objects.create_user("norm", password="x"))

        response = client.get(MEMBERSHIPS)

        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    @pytest.mark.parametrize(
        "model",
        [
            "gitlabproject",
            "gitlabuser",
            "membership",
            "tokenfingerprint",
            "cijob",
            "webhookdelivery",
        ],
    )
    def test_it_renders_every_list_for_staff(self, admin_client, team, model):
        assert admin_client.get(f"/admin/projects/{model}/").status_code == 200


class TestMembershipList:
    def test_it_shows_readable_role_names(self, admin_client, team):
        page = listed(admin_client.get(MEMBERSHIPS))

        assert "Guest" in page
        assert "Maintainer" in page

    @pytest.mark.parametrize("field", ["username", "path"])
    def test_it_searches_by_username_and_project_path(self, admin_client, team, field):
        query = team["ada"].username if field == "username" else team["project"].path

        page = listed(admin_client.get(MEMBERSHIPS, {"q": query}))

        assert team["ada"].username in page
        assert team["max"].username not in page

    @pytest.mark.parametrize(
        ("query", "shown"),
        [
            pytest.param({"access_level__exact": "40"}, "max", id="role"),
            pytest.param({"expired": "yes"}, "max", id="expired"),
            pytest.param({"expired": "no"}, "ada", id="fresh"),
        ],
    )
    def test_it_filters(self, admin_client, team, query, shown):
        page = listed(admin_client.get(MEMBERSHIPS, query))

        hidden = "ada" if shown == "max" else "max"
        assert team[shown].username in page
        assert team[hidden].username not in page

    def test_it_filters_by_project(self, admin_client, team):
        page = listed(admin_client.get(MEMBERSHIPS, {"project__id__exact": team["project"].id}))

        assert team["ada"].username in page
        assert team["max"].username not in page


class TestActions:
    def test_it_refreshes_from_gitlab_now(self, admin_client, team):
        page = act(admin_client, MEMBERSHIPS, "refresh_from_gitlab", team["ada_row"].pk)

        refreshed = Membership.objects.get(pk=team["ada_row"].pk)
        assert (refreshed.access_level, refreshed.source) == (30, "project")
        assert refreshed.is_fresh
        assert "1 memberships refreshed from GitLab (1 changed)" in page

    def test_it_says_clearly_that_refreshing_needs_the_service_token(
        self, admin_client, team, settings
    ):
        settings.GITLAB_SERVICE_TOKEN = ""

        page = act(admin_client, MEMBERSHIPS, "refresh_from_gitlab", team["ada_row"].pk)

        assert "Set GITLAB_SERVICE_TOKEN" in page
        assert Membership.objects.get(pk=team["ada_row"].pk).access_level == 10

    def test_it_invalidates(self, admin_client, team):
        page = act(admin_client, MEMBERSHIPS, "invalidate", team["ada_row"].pk)

        assert not Membership.objects.filter(pk=team["ada_row"].pk).exists()
        assert Membership.objects.filter(pk=team["max_row"].pk).exists()
        assert "1 memberships forgotten" in page

    def test_it_refreshes_a_project_and_follows_its_rename(self, admin_client, gitlab, team):
        gitlab.rename(team["project"], team["project"].path + "-renamed")
        team["project"].archived = True

        projects = "/admin/projects/gitlabproject/"
        act(admin_client, projects, "refresh_from_gitlab", team["project"].id)

        project = GitLabProject.objects.get(id=team["project"].id)
        assert (project.path, project.archived) == (team["project"].path, True)
        assert Membership.objects.get(pk=team["ada_row"].pk).access_level == 30

    def test_it_invalidates_a_users_memberships_and_tokens(self, admin_client, team):
        remember_token("e" * 64, team["ada"])

        act(admin_client, "/admin/projects/gitlabuser/", "invalidate", team["ada"].id)

        assert not Membership.objects.filter(user_id=team["ada"].id).exists()
        assert not TokenFingerprint.objects.filter(user_id=team["ada"].id).exists()
        assert Membership.objects.filter(user_id=team["max"].id).exists()

    def test_it_invalidates_token_fingerprints(self, admin_client, team):
        remember_token("f" * 64, team["ada"])

        act(admin_client, "/admin/projects/tokenfingerprint/", "invalidate", "f" * 64)

        assert not TokenFingerprint.objects.exists()


MIRRORS = ["gitlabproject", "gitlabuser", "membership", "tokenfingerprint", "cijob",
           "webhookdelivery"]  # fmt: skip


class TestReadOnly:
    """What mirrors GitLab is changed in GitLab: the admin shows it and offers the actions."""

    @pytest.mark.parametrize("model", MIRRORS)
    def test_it_offers_no_add_form(self, admin_client, team, model):
        assert admin_client.get(f"/admin/projects/{model}/add/").status_code == 403
        assert f"/admin/projects/{model}/add/" not in listed(
            admin_client.get(f"/admin/projects/{model}/")
        )

    def test_it_shows_a_membership_without_a_form_to_save(self, admin_client, team):
        url = f"{MEMBERSHIPS}{team['ada_row'].pk}/change/"

        page = listed(admin_client.get(url))
        response = admin_client.post(url, {"access_level": "50"})

        assert 'name="_save"' not in page and "<select" not in page
        assert response.status_code == 403
        assert Membership.objects.get(pk=team["ada_row"].pk).access_level == 10

    def test_it_offers_refresh_and_invalidate_but_not_delete(self, admin_client, team):
        page = listed(admin_client.get(MEMBERSHIPS))

        assert 'value="refresh_from_gitlab"' in page and 'value="invalidate"' in page
        assert 'value="delete_selected"' not in page
        assert admin_client.get(f"{MEMBERSHIPS}{team['ada_row'].pk}/delete/").status_code == 403

    def test_it_keeps_the_services_own_users_editable(self, admin_client):
        assert admin_client.get("/admin/auth/user/add/").status_code == 200


class TestBrandingAndProjectPage:
    def test_it_is_branded_sharinghub_mlflow(self, admin_client):
        page = listed(admin_client.get("/admin/"))

        assert "SharingHub MLflow" in page and "Django administration" not in page

    def test_it_shows_a_projects_usage_members_and_gitlab_link(self, admin_client, team, gitlab):
        project = GitLabProject.objects.get(id=team["project"].id)
        project.web_url = f"{gitlab.url}/{project.path}"
        project.save()
        ProjectUsage.objects.create(project=project, experiments=2, runs=7, artifact_bytes=2048)

        page = listed(admin_client.get(f"/admin/projects/gitlabproject/{project.id}/change/"))

        assert f'href="{project.web_url}"' in page
        assert "2 experiments" in page and "7 runs" in page and "2.0 kB" in page
        assert team["ada"].username in page and "Guest" in page
