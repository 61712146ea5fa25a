"""`purge_projects`: only projects orphaned long enough, only their data.

Pia owns <g>/team/gone (deleted in GitLab) and <g>/team/kept.
"""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from mlflow_bridge.operations import purge
from projects.models import GitLabProject, ProjectUsage
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking

_groups = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def purge_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url


@pytest.fixture
def seeded(client, gitlab: GitLabDouble) -> dict:
    top = f"purge{next(_groups)}"
    pia = gitlab.add_user(f"pia-{top}")
    found = {}
    for name in ("gone", "kept"):
        project = gitlab.add_project(f"{top}/team/{name}")
        project.direct[pia.id] = 50
        tracking = Tracking(client, project.path, pia.token)
        experiment_id, run_id = tracking.new_run("seeded")
        tracking.post("runs/log-parameter", {"run_id": run_id, "key": "a", "value": "1"})
        tracking.artifact("PUT", f"{experiment_id}/{run_id}/artifacts/n.txt", b"notes")
        found[name] = GitLabProject.objects.get(id=project.id)
    return found


def purge_projects(*arguments: str) -> str:
    out = io.StringIO()
    call_command("purge_projects", *arguments, stdout=out)
    return out.getvalue()


class TestPurgeProjects:
    def test_it_purges_only_projects_orphaned_long_enough(self, seeded):
        gone, kept = seeded["gone"], seeded["kept"]
        GitLabProject.objects.filter(id=gone.id).update(
            orphaned_at=timezone.now() - timedelta(days=10)
        )
        kept_before = purge.inventory(kept.workspace)

        too_recent = purge_projects("--orphaned-for", "30d")
        out = purge_projects("--orphaned-for", "7d")

        assert too_recent.strip() == "Deleted 0 orphaned projects: 0 rows, 0 artifact files (0 B)."
        assert f"Deleted {gone.workspace} ({gone.path}, orphaned " in out
        assert "2 experiments, 1 params, 1 runs" in out and "1 workspaces" in out
        assert purge.inventory(gone.workspace).empty
        assert purge.inventory(kept.workspace) == kept_before
        assert not GitLabProject.objects.filter(id=gone.id).exists()

    def test_it_changes_nothing_in_a_dry_run(self, seeded):
        gone = seeded["gone"]
        GitLabProject.objects.filter(id=gone.id).update(orphaned_at=timezone.now())
        ProjectUsage.objects.create(project=gone, artifact_bytes=5)
        before = purge.inventory(gone.workspace)

        out = purge_projects("--orphaned-for", "0s", "--dry-run")

        assert f"Would delete {gone.workspace}" in out
        assert "1 artifact files (5 B)" in out
        assert purge.inventory(gone.workspace) == before
        assert GitLabProject.objects.filter(id=gone.id).exists()

    @pytest.mark.parametrize("value", ["30", "thirty days", ""])
    def test_it_names_the_fix_for_a_bad_age(self, value):
        with pytest.raises(CommandError, match="--orphaned-for: .* is not an age like 30d"):
            purge_projects("--orphaned-for", value)

    def test_it_requires_the_age(self):
        with pytest.raises(CommandError, match="--orphaned-for"):
            purge_projects()
