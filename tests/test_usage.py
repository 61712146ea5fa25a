"""Usage per project: measured by `usage`, stored with its age, shown by the admin.

Each test has its own projects in <g>/...: Uma owns them all.
"""

from __future__ import annotations

import io
import itertools
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from mlflow_bridge.operations import usage
from projects.models import GitLabProject, ProjectUsage
from tests.gitlab_double import GitLabDouble, Project, User
from tests.inprocess import Tracking

_groups = itertools.count()
PROJECTS = "/admin/projects/gitlabproject/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def usage_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def uma(gitlab: GitLabDouble) -> User:
    return gitlab.add_user(f"uma{next(_groups)}")


def owned(gitlab: GitLabDouble, owner: User) -> Project:
    project = gitlab.add_project(f"use{next(_groups)}/team/churn")
    project.direct[owner.id] = 50
    return project


def log(client, project: Project, owner: User, sizes: list[int]) -> Tracking:
    tracking = Tracking(client, project.path, owner.token)
    experiment_id, _ = tracking.new_run(f"usage{next(_groups)}")
    for size in sizes:
        run_id = tracking.post("runs/create", {"experiment_id": experiment_id})[1]["run"]
        path = f"{experiment_id}/{run_id['info']['run_id']}/artifacts/f.bin"
        assert tracking.artifact("PUT", path, b"x" * size)[0] == 200
    return tracking


def command(*arguments: str) -> str:
    out = io.StringIO()
    call_command("usage", *arguments, stdout=out)
    return out.getvalue()


class TestMeasure:
    def test_it_counts_runs_and_bytes_per_project_and_stores_them(self, client, gitlab, uma):
        big, small = owned(gitlab, uma), owned(gitlab, uma)
        log(client, big, uma, [3000, 4000])
        log(client, small, uma, [10])

        measured = usage.measure([f"p-{big.id}", f"p-{small.id}"])

        assert measured[f"p-{big.id}"].runs == 3  # the experiment's first run has no artifact
        assert measured[f"p-{big.id}"].artifact_bytes == 7000
        assert measured[f"p-{small.id}"].artifact_bytes == 10
        stored = ProjectUsage.objects.get(project_id=big.id)
        assert (stored.runs, stored.artifact_bytes, stored.artifact_files) == (3, 7000, 2)
        assert stored.last_activity is not None

    def test_it_prints_stored_figures_without_measuring(self, client, gitlab, uma):
        project = owned(gitlab, uma)
        log(client, project, uma, [500])
        usage.measure([f"p-{project.id}"])
        log(client, project, uma, [700])  # uploaded after the measurement

        rows = json.loads(command("--cached", "--format", "json"))

        (row,) = [row for row in rows if row["project_id"] == project.id]
        assert row["artifact_bytes"] == 500
        assert row["path"] == project.path and row["measured_at"]

    def test_its_table_names_each_column_once_and_counts_one_project_in_the_singular(
        self, client, gitlab, uma
    ):
        project = owned(gitlab, uma)
        log(client, project, uma, [500])
        usage.measure([f"p-{project.id}"])
        ProjectUsage.objects.exclude(project_id=project.id).delete()

        lines = command("--cached").splitlines()

        assert lines[0].split() == ["project", "path", "experiments", "runs", "reg.", "models",
                                    "logged", "models", "traces", "artifacts", "last",
                                    "activity"]  # fmt: skip
        assert lines[-1].startswith("1 project, ")

    def test_it_says_so_when_nothing_was_measured(self):
        assert command("--cached").splitlines()[-1] == (
            "0 projects, 0 B of artifacts; figures measured 0 s ago at most."
        )


class TestAdminProjectList:
    def test_it_shows_and_sorts_by_size_and_activity(self, admin_client):
        now = timezone.now()
        for project_id, size, days in [(9001, 5_000_000, 3), (9002, 7_000, 1), (9003, 0, 0)]:
            project = GitLabProject.objects.create(id=project_id, path=f"adm/usage/p{project_id}")
            if size:
                ProjectUsage.objects.create(project=project, artifact_bytes=size, runs=4,
                                            last_activity=now - timedelta(days=days),
                                            measured_at=now - timedelta(hours=2))  # fmt: skip

        by_size = admin_client.get(PROJECTS, {"o": "-5", "q": "adm/usage"}).content.decode()
        by_activity = admin_client.get(PROJECTS, {"o": "-9", "q": "adm/usage"}).content.decode()

        assert "5.0 MB" in by_size and "7.0 kB" in by_size
        assert "2\xa0hours ago" in by_size
        assert "never (run usage)" in by_size
        assert by_size.index("p9001") < by_size.index("p9002")
        assert by_activity.index("p9002") < by_activity.index("p9001")

    def test_it_filters_orphaned_projects(self, admin_client):
        GitLabProject.objects.create(id=9011, path="adm/orphan/gone", orphaned_at=timezone.now())
        GitLabProject.objects.create(id=9012, path="adm/orphan/here")

        page = admin_client.get(PROJECTS, {"orphaned": "yes"}).content.decode()

        assert "adm/orphan/gone" in page and "adm/orphan/here" not in page
