"""GitLab outages: cached answers keep working for GITLAB_OUTAGE_GRACE, then 503; nothing is lost.

Olga is a Developer of out<n>/team/churn who used it before GitLab went down; Ursula is a
Developer of the same project who never did.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from mlflow_bridge.edge.errors import LONG_OUTAGE_STATUS
from projects import gitlab_health
from projects.models import Membership, TokenFingerprint
from tests import warm_processes
from tests.gitlab_double import GitLabDouble, Project, User
from tests.inprocess import Tracking

GRACE = 15 * 60
_projects = itertools.count()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def outage_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.MEMBERSHIP_CACHE_TTL = 60
    settings.GITLAB_OUTAGE_GRACE = GRACE
    cache.clear()


@pytest.fixture
def gitlab_down(gitlab: GitLabDouble):
    """Call it to take GitLab down; it comes back at the end of the test whatever happens."""

    def down() -> None:
        gitlab.down = True

    yield down
    gitlab.down = False


@dataclass
class Scene:
    project: Project
    olga: User
    ursula: User
    experiment_id: str


@pytest.fixture
def scene(client, gitlab) -> Scene:
    project = gitlab.add_project(f"out{next(_projects)}/team/churn")
    olga, ursula = gitlab.add_user("olga"), gitlab.add_user("ursula")
    project.direct[olga.id] = project.direct[ursula.id] = 30
    status, body = Tracking(client, project.path, olga.token).post(
        "experiments/create", {"name": f"before-{uuid.uuid4().hex[:8]}"}
    )
    assert status == 200
    return Scene(project, olga, ursula, body["experiment_id"])


def age_cache(user: User, age: timedelta) -> None:
    """Make the user's cached answers expired, as fetched `age` ago."""
    fetched = timezone.now() - age
    expired = timezone.now() - timedelta(seconds=1)
    Membership.objects.filter(user_id=user.id).update(fetched_at=fetched, expires_at=expired)
    TokenFingerprint.objects.filter(user_id=user.id).update(fetched_at=fetched, expires_at=expired)


class TestDuringAnOutage:
    def test_it_keeps_cached_members_reading_and_writing_within_the_grace(
        self, client, scene, gitlab_down, caplog
    ):
        age_cache(scene.olga, timedelta(minutes=10))
        gitlab_down()
        olga = Tracking(client, scene.project.path, scene.olga.token)

        with caplog.at_level(logging.WARNING, logger="projects.access"):
            read = olga.get("experiments/get", experiment_id=scene.experiment_id)
            created = olga.post("runs/create", {"experiment_id": scene.experiment_id})

        assert read[0] == 200
        assert created[0] == 200
        assert "GITLAB_OUTAGE_GRACE" in caplog.text
        assert scene.olga.token not in caplog.text

    def test_it_logs_each_answer_served_from_the_grace_where_the_readme_says(
        self, client, scene, gitlab_down, caplog
    ):
        age_cache(scene.olga, timedelta(minutes=10))
        gitlab_down()

        with caplog.at_level(logging.WARNING):
            Tracking(client, scene.project.path, scene.olga.token).get(
                "experiments/get", experiment_id=scene.experiment_id
            )

        graced = {r.name for r in caplog.records if "GITLAB_OUTAGE_GRACE" in r.getMessage()}
        assert graced == {"projects.access", "projects.records"}  # the token, the membership

    def test_it_answers_503_with_a_message_to_users_nothing_is_cached_for(
        self, client, scene, gitlab_down
    ):
        gitlab_down()

        status, body = Tracking(client, scene.project.path, scene.ursula.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 503
        assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "retry" in body["message"]

    def test_it_answers_503_beyond_the_grace(self, client, scene, gitlab_down):
        age_cache(scene.olga, timedelta(seconds=GRACE + 60))
        gitlab_down()

        status, _ = Tracking(client, scene.project.path, scene.olga.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 503

    def test_it_answers_503_when_only_the_membership_is_too_old(self, client, scene, gitlab_down):
        age_cache(scene.olga, timedelta(minutes=1))
        Membership.objects.filter(user_id=scene.olga.id).update(
            fetched_at=timezone.now() - timedelta(seconds=GRACE + 60)
        )
        gitlab_down()

        status, _ = Tracking(client, scene.project.path, scene.olga.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 503

    def test_it_does_not_trust_a_stale_no_access_answer(self, client, scene, gitlab_down):
        Membership.objects.filter(user_id=scene.olga.id).update(access_level=0)
        age_cache(scene.olga, timedelta(minutes=1))
        gitlab_down()

        status, _ = Tracking(client, scene.project.path, scene.olga.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 503

    def test_it_keeps_fresh_answers_without_any_gitlab_call(self, client, gitlab, scene):
        gitlab.down = True
        try:
            status, _ = Tracking(client, scene.project.path, scene.olga.token).get(
                "experiments/get", experiment_id=scene.experiment_id
            )
        finally:
            gitlab.down = False

        assert status == 200


class TestAfterAnOutage:
    def test_it_loses_nothing_and_asks_gitlab_again(self, client, gitlab, scene, gitlab_down):
        olga = Tracking(client, scene.project.path, scene.olga.token)
        age_cache(scene.olga, timedelta(minutes=5))
        gitlab_down()
        _, created = olga.post("runs/create", {"experiment_id": scene.experiment_id})
        run_id = created["run"]["info"]["run_id"]
        logged = olga.post("runs/log-metric", {"run_id": run_id, "key": "loss", "value": 0.25,
                                               "timestamp": 1, "step": 0})  # fmt: skip
        assert logged[0] == 200
        gitlab.down = False
        calls = len(gitlab.calls)

        status, run = olga.get("runs/get", run_id=run_id)
        ursula = Tracking(client, scene.project.path, scene.ursula.token)

        assert status == 200
        assert run["run"]["data"]["metrics"][0]["value"] == 0.25
        assert len(gitlab.calls) > calls  # expired answers are asked again
        assert Membership.objects.get(user_id=scene.olga.id).is_fresh
        assert ursula.get("runs/get", run_id=run_id)[0] == 200


def gitlab_down_since(seconds_ago: float) -> None:
    """As if GitLab had stopped answering that long ago (the clock of gitlab_health)."""
    cache.set(gitlab_health.DOWN_SINCE_KEY, time.time() - seconds_ago, timeout=None)


class TestALongOutage:
    """Short outages stay retryable (503); a long one is told at once (424, not retried)."""

    def test_it_answers_503_while_gitlab_has_failed_only_briefly(
        self, client, scene, gitlab_down, settings
    ):
        settings.GITLAB_OUTAGE_RETRYABLE = 30
        gitlab_down()

        status, body = Tracking(client, scene.project.path, scene.ursula.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 503
        assert gitlab_health.down_for() is not None

    def test_it_answers_424_with_the_reason_once_gitlab_has_failed_for_long(
        self, client, scene, gitlab_down, settings
    ):
        settings.GITLAB_OUTAGE_RETRYABLE = 30
        gitlab_down()
        gitlab_down_since(120)

        status, body = Tracking(client, scene.project.path, scene.ursula.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == LONG_OUTAGE_STATUS
        assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "GitLab has not answered for 1" in body["message"]
        assert "GITLAB_URL" in body["message"]

    def test_it_is_a_status_the_mlflow_client_does_not_retry(self):
        from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES

        assert LONG_OUTAGE_STATUS not in _TRANSIENT_FAILURE_RESPONSE_CODES
        assert 503 in _TRANSIENT_FAILURE_RESPONSE_CODES

    def test_it_ends_the_outage_at_gitlabs_first_answer(self, client, scene):
        gitlab_down_since(120)

        status, _ = Tracking(client, scene.project.path, scene.ursula.token).get(
            "experiments/get", experiment_id=scene.experiment_id
        )

        assert status == 200
        assert gitlab_health.down_for() is None


SET_EXPERIMENT = "import mlflow; mlflow.set_experiment('x')"


class TestAWrongGitLabUrl:
    def test_it_says_so_at_start_in_readyz_and_to_the_client_at_once(
        self, server_without_gitlab, cast
    ):
        """The issue's case: GITLAB_URL names nothing that answers. Nothing is cached."""
        server = server_without_gitlab
        readyz = requests.get(f"{server.url}/readyz", timeout=30).json()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update({"MLFLOW_TRACKING_URI": server.tracking_uri(cast.project.path),
                    "MLFLOW_TRACKING_TOKEN": cast.dave.token})  # fmt: skip
        done = warm_processes.run_python(["-c", SET_EXPERIMENT], env, timeout=120)

        assert "WARNING: GitLab at http://127.0.0.1:9 unreachable" in server.log.read_text()
        assert readyz["gitlab"] == "unreachable (ConnectionError)"
        assert done.returncode != 0
        assert "GitLab has not answered" in done.stderr
        assert "too many 503" not in done.stderr
        assert cast.dave.token not in server.log.read_text()
        assert server.env["GITLAB_SERVICE_TOKEN"] not in server.log.read_text()
