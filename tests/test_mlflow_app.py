"""mlflow_bridge/embedded/mlflow_app.py: the embedded MLflow app does no needless work per call.

Dave is a Developer of the project and searches its runs.
"""

from __future__ import annotations

import builtins
import itertools
import uuid

import pytest

from tests.inprocess import Tracking

pytestmark = pytest.mark.django_db
_names = itertools.count()


@pytest.fixture
def tracking(client, gitlab, settings) -> Tracking:
    settings.GITLAB_URL = gitlab.url
    project = gitlab.add_project(f"app{uuid.uuid4().hex[:8]}/team/churn")
    dave = gitlab.add_user(f"dave-app{next(_names)}")
    project.direct[dave.id] = 30
    return Tracking(client, project.path, dave.token)


class TestBasicAuthApp:
    def test_it_makes_no_failing_import_per_search_runs(self, tracking, monkeypatch):
        experiment_id, _ = tracking.new_run("searched")
        search = {"experiment_ids": [experiment_id]}
        assert tracking.post("runs/search", search)[0] == 200  # what is imported once, is
        failed: list[str] = []
        real_import = builtins.__import__

        def recording_import(name, *args, **kwargs):
            try:
                return real_import(name, *args, **kwargs)
            except ImportError:
                failed.append(name)
                raise

        monkeypatch.setattr(builtins, "__import__", recording_import)
        status, found = tracking.post("runs/search", search)

        assert status == 200
        assert len(found["runs"]) == 1
        assert failed == [], failed
