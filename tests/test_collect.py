"""`gc`: soft-deleted runs of one project lose their artifacts and rows; nothing else does.

Gil owns <g>/team/mine and <g>/team/theirs.
"""

from __future__ import annotations

import io
import itertools
import os
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking

_groups = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gc_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url


def run_dir(project_id: int, experiment_id: str, run_id: str) -> Path:
    root = Path(django_settings.MLFLOW_ARTIFACTS_DESTINATION)
    return root / "workspaces" / f"p-{project_id}" / experiment_id / run_id


@pytest.fixture
def deleted_runs(client, gitlab: GitLabDouble) -> dict:
    """In each project, a deleted run with an artifact."""
    top = f"gc{next(_groups)}"
    gil = gitlab.add_user(f"gil-{top}")
    found = {}
    for name in ("mine", "theirs"):
        project = gitlab.add_project(f"{top}/team/{name}")
        project.direct[gil.id] = 50
        tracking = Tracking(client, project.path, gil.token)
        experiment_id, run_id = tracking.new_run("gc")
        tracking.artifact("PUT", f"{experiment_id}/{run_id}/artifacts/w.bin", b"w" * 2000)
        tracking.post("runs/delete", {"run_id": run_id})
        found[name] = (project, tracking, run_dir(project.id, experiment_id, run_id), run_id)
    return found


def gc(*arguments: str) -> str:
    out = io.StringIO()
    call_command("gc", *arguments, stdout=out)
    return out.getvalue()


class TestGc:
    def test_it_collects_one_project_by_id(self, deleted_runs):
        project, tracking, directory, run_id = deleted_runs["mine"]
        _, theirs_tracking, theirs_directory, theirs_run = deleted_runs["theirs"]

        out = gc("--project", str(project.id))

        assert out.strip().endswith("Freed 1 runs and 2.0 kB of artifacts.")
        assert not directory.exists()
        assert tracking.get("runs/get", run_id=run_id)[0] == 404
        assert theirs_directory.exists()
        assert theirs_tracking.get("runs/get", run_id=theirs_run)[0] == 200

    def test_it_lists_without_deleting_in_a_dry_run(self, deleted_runs):
        project, tracking, directory, run_id = deleted_runs["mine"]

        out = gc("--project", project.path, "--dry-run")

        assert f"Would free p-{project.id}: runs {run_id};" in out
        assert directory.exists()
        assert tracking.get("runs/get", run_id=run_id)[0] == 200

    def test_it_visits_every_project_separately_without_project(self, deleted_runs):
        out = gc()

        for project, _, directory, run_id in deleted_runs.values():
            assert f"Freed p-{project.id}: runs {run_id};" in out
            assert not directory.exists()

    def test_it_removes_uploads_abandoned_for_a_day_and_keeps_those_still_written(
        self, deleted_runs
    ):
        project, tracking, directory, run_id = deleted_runs["mine"]
        experiment_id, live_run = tracking.new_run("uploads")
        artifacts = run_dir(project.id, experiment_id, live_run) / "artifacts"
        artifacts.mkdir(parents=True)
        abandoned = artifacts / ".artifact.uploading.model.bin.x1"
        in_progress = artifacts / ".artifact.uploading.model.bin.x2"
        abandoned.write_bytes(b"a" * 3000)
        in_progress.write_bytes(b"b" * 10)
        two_days_ago = time.time() - 2 * 86400
        os.utime(abandoned, (two_days_ago, two_days_ago))

        dry = gc("--project", project.path, "--dry-run")
        assert abandoned.exists() and "abandoned uploads 1;" in dry

        out = gc("--project", project.path)

        assert "abandoned uploads 1; 2 artifact files (5.0 kB)" in out
        assert not abandoned.exists()
        assert in_progress.exists()
        assert tracking.get("runs/get", run_id=live_run)[0] == 200

    def test_it_names_the_fix_for_an_unknown_project(self):
        with pytest.raises(CommandError, match="give the path or id GitLab shows"):
            gc("--project", "no/such/project")

    def test_it_names_the_fix_for_a_bad_age(self):
        with pytest.raises(CommandError, match="--older-than: .* is not an age like 30d"):
            gc("--older-than", "a month")

    def test_its_help_says_the_age_format(self):
        from mlflow_bridge.management.commands.gc import Command

        help_text = Command().create_parser("manage.py", "gc").format_help()

        assert "30d" in help_text and "1d12h" in help_text

    def test_it_leaves_no_stale_owner_when_sqlite_reuses_a_collected_experiment_id(
        self, client, gitlab
    ):
        top = f"gc{next(_groups)}"
        gil = gitlab.add_user(f"gil-{top}")
        trackings = []
        for name in ("first", "second"):
            project = gitlab.add_project(f"{top}/team/{name}")
            project.direct[gil.id] = 50
            trackings.append((project, Tracking(client, project.path, gil.token)))
        (first, first_tracking), (_, second_tracking) = trackings
        experiment_id, _ = first_tracking.new_run("reused")  # the highest id, owner remembered
        first_tracking.post("experiments/delete", {"experiment_id": experiment_id})
        gc("--project", first.path)

        new_id, run_id = second_tracking.new_run("reused")

        assert second_tracking.get("experiments/get", experiment_id=new_id)[0] == 200
        assert second_tracking.get("runs/get", run_id=run_id)[0] == 200
        assert first_tracking.get("experiments/get", experiment_id=new_id)[0] == 404
