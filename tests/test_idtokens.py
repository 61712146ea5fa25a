"""GitLab CI id_tokens, in-process: a job's JWT, verified offline against the keys GitLab
publishes, acts as its user in its own project only, with its role, and never asks GitLab's API.

Cindy is a Developer of idt<n>/team/churn and of idt<n>/team/other; her jobs run in churn.
Rory is a Reporter there. Keys are made here (tests/idtokens.py) and published by the double.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from rest_framework.test import APIRequestFactory

from mlflow_bridge.edge.authentication import GitLabIdTokenAuthentication
from mlflow_bridge.edge.errors import Unauthenticated
from projects import idtokens
from projects.models import GitLabProject, Membership
from tests.api import Api
from tests.gitlab_double import GitLabDouble, Project, User
from tests.idtokens import AUDIENCE, Signer
from tests.inprocess import Tracking
from tests.live import LiveServer, start_live_server, stop
from tests.sessions import logged_in_client

SEARCH = {"max_results": 10}
KEYS = "/oauth/discovery/keys"
_groups = itertools.count()
factory = APIRequestFactory()

pytestmark = pytest.mark.django_db


@dataclass
class Jobs:
    project: Project
    other: Project
    cindy: User
    rory: User
    signer: Signer


@pytest.fixture
def ci(gitlab, settings) -> Jobs:
    settings.GITLAB_URL = settings.GITLAB_ID_TOKEN_ISSUER = gitlab.url
    settings.GITLAB_ID_TOKEN_AUDIENCE = AUDIENCE
    settings.GITLAB_ID_TOKEN_KEYS_COOL_OFF = 60
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "failed_authentications_per_address": "1/min",
        },
    }
    cache.clear()
    idtokens.forget_keys()
    top = f"idt{next(_groups)}"
    project, other = (
        gitlab.add_project(f"{top}/team/churn"),
        gitlab.add_project(f"{top}/team/other"),
    )
    cindy, rory = gitlab.add_user("cindy"), gitlab.add_user("rory")
    project.direct[cindy.id] = other.direct[cindy.id] = 30
    project.direct[rory.id] = 20
    return Jobs(project, other, cindy, rory, Signer(gitlab).publish())


def fetches(gitlab: GitLabDouble) -> int:
    return gitlab.count(KEYS)


def segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestGitLabIdTokenAuthentication:
    def test_it_authenticates_a_job_as_its_user(self, ci):
        token = ci.signer.id_token(ci.project, ci.cindy, job_id=4242)
        request = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")

        user, credential = GitLabIdTokenAuthentication().authenticate(request)

        assert user.username == "cindy"
        assert credential.id_token.job_id == 4242
        assert credential.known.project.path == ci.project.path

    def test_it_refuses_an_expired_id_token(self, ci):
        token = ci.signer.id_token(ci.project, ci.cindy, exp=int(time.time()) - 600)
        request = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")

        with pytest.raises(Unauthenticated, match="expired"):
            GitLabIdTokenAuthentication().authenticate(request)

    @pytest.mark.parametrize(
        "headers",
        [{}, {"HTTP_AUTHORIZATION": "Bearer glpat-abc.01.def"}, {"HTTP_JOB_TOKEN": "glcbt-1"}],
        ids=["no-token", "gitlab-token", "job-token"],
    )
    def test_it_is_not_its_kind_without_a_jwt(self, ci, gitlab, headers):
        before = len(gitlab.calls)

        assert GitLabIdTokenAuthentication().authenticate(factory.get("/", **headers)) is None
        assert len(gitlab.calls) == before

    def test_it_refuses_every_id_token_while_off(self, ci, settings):
        settings.GITLAB_ID_TOKEN_AUDIENCE = ""
        token = ci.signer.id_token(ci.project, ci.cindy)

        with pytest.raises(Unauthenticated, match="GITLAB_ID_TOKEN_AUDIENCE"):
            GitLabIdTokenAuthentication().authenticate(
                factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
            )


class TestAccess:
    def test_it_logs_a_run_in_its_project_without_asking_gitlabs_api(self, client, gitlab, ci):
        api_calls, key_fetches = gitlab.count(), fetches(gitlab)
        token = ci.signer.id_token(ci.project, ci.cindy)
        tracking = Tracking(client, ci.project.path, token)

        experiment_id, run_id = tracking.new_run(f"ci-{uuid.uuid4().hex[:8]}")
        for step in range(20):
            tracking.post("runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1.0,
                                              "timestamp": 0, "step": step})  # fmt: skip
        status, run = tracking.get("runs/get", run_id=run_id)

        assert status == 200
        assert (gitlab.count(), fetches(gitlab) - key_fetches) == (api_calls, 1)
        assert run["run"]["info"]["user_id"] == "cindy"

    def test_it_tags_runs_with_the_job(self, client, ci):
        claims = ci.signer.claims(ci.project, ci.cindy, job_id=5151, pipeline_id="99")
        tracking = Tracking(client, ci.project.path, ci.signer.sign(claims))

        _, run_id = tracking.new_run(f"tagged-{uuid.uuid4().hex[:8]}")

        tags = {
            t["key"]: t["value"]
            for t in tracking.get("runs/get", run_id=run_id)[1]["run"]["data"]["tags"]
        }
        assert tags["gitlab.job_id"] == "5151" and tags["gitlab.pipeline_id"] == "99"
        assert tags["gitlab.job_url"].endswith(f"/{ci.project.path}/-/jobs/5151")
        assert tags["mlflow.user"] == "cindy"

    def test_it_answers_404_on_another_project_of_its_user(self, client, ci):
        token = ci.signer.id_token(ci.project, ci.cindy)

        status, answer = Tracking(client, ci.other.path, token).post("experiments/search", SEARCH)

        assert status == 404 and answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_it_lets_a_reporters_job_read_but_not_write(self, client, ci):
        tracking = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.rory, 20))

        read = tracking.post("experiments/search", SEARCH)
        written = tracking.post("experiments/create", {"name": uuid.uuid4().hex})

        assert read[0] == 200
        assert written[0] == 403 and "you are Reporter" in written[1]["message"]

    def test_it_never_gives_more_than_a_fresh_membership(self, client, ci):
        token = ci.signer.id_token(ci.project, ci.cindy, 30)
        Tracking(client, ci.project.path, token).post("experiments/search", SEARCH)
        Membership.objects.create(
            user_id=ci.cindy.id, project=GitLabProject.objects.get(id=ci.project.id),
            access_level=20, expires_at=timezone.now() + timedelta(seconds=60),
        )  # fmt: skip

        status, _ = Tracking(client, ci.project.path, token).post(
            "experiments/create", {"name": uuid.uuid4().hex}
        )

        assert status == 403


def tampered(signer: Signer, token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{segment({**claims, 'user_access_level': 'owner'})}.{signature}"


def unsigned(signer: Signer, token: str) -> str:
    _, payload, _ = token.split(".")
    return f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': signer.kid})}.{payload}."


def hmac_with_public_key(signer: Signer, token: str) -> str:
    """HS256 with GitLab's public key as the secret: the classic algorithm confusion."""
    from cryptography.hazmat.primitives import serialization

    public = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, payload, _ = token.split(".")
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': signer.kid})}.{payload}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


NOW = int(time.time())
REFUSALS = [
    pytest.param({"aud": "https://elsewhere.example"}, None, "another audience", id="wrong-aud"),
    pytest.param({"exp": NOW - 600, "iat": NOW - 4000, "nbf": NOW - 4000}, None, "expired",
                 id="expired"),
    pytest.param({"nbf": NOW + 3600, "iat": NOW + 3600}, None, "not valid yet",
                 id="not-yet-valid"),
    pytest.param({"iss": "https://evil.example"}, None, "not issued by", id="wrong-iss"),
    pytest.param({"project_id": None}, None, "lacks the 'project_id'", id="missing-claim"),
    pytest.param({}, tampered, "signature does not verify", id="tampered-payload"),
    pytest.param({}, unsigned, "signed with RS256", id="alg-none"),
    pytest.param({}, hmac_with_public_key, "signed with RS256", id="hs256-public-key"),
]  # fmt: skip


class TestKeys:
    def test_it_shares_the_key_set_a_worker_fetched_with_the_others(self, client, gitlab, ci):
        tracking = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy))
        assert tracking.post("experiments/search", SEARCH)[0] == 200
        fetched, discovered = fetches(gitlab), gitlab.count("/.well-known/")

        idtokens.forget_keys()  # another worker: its own memory, the same Django cache
        status, _ = tracking.post("experiments/search", SEARCH)

        assert status == 200
        assert (fetches(gitlab), gitlab.count("/.well-known/")) == (fetched, discovered)

    def test_it_takes_a_rotated_key_another_worker_fetched(self, client, gitlab, ci, settings):
        settings.GITLAB_ID_TOKEN_KEYS_COOL_OFF = 0
        first = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy))
        assert first.post("experiments/search", SEARCH)[0] == 200
        held = idtokens._keys()
        rotated = Signer(gitlab).publish()
        idtokens.forget_keys()  # another worker meets the new key first and fetches it
        second = Tracking(client, ci.project.path, rotated.id_token(ci.project, ci.cindy))
        assert second.post("experiments/search", SEARCH)[0] == 200
        fetched = fetches(gitlab)

        assert held.get_signing_key(rotated.kid).key_id == rotated.kid
        assert fetches(gitlab) == fetched


class TestGitLabDown:
    def test_it_asks_for_the_discovery_document_once_per_cool_off(self, client, gitlab, ci):
        tracking = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy))
        gitlab.down = True
        try:
            first, _ = tracking.post("experiments/search", SEARCH)
            asked = gitlab.count("/.well-known/")  # once, with gitlab.send's retries
            again = [tracking.post("experiments/search", SEARCH)[0] for _ in range(3)]
        finally:
            gitlab.down = False

        assert {first, *again} <= {503, 424}
        assert gitlab.count("/.well-known/") == asked

    def test_it_fetches_the_key_set_once_per_cool_off_while_gitlab_fails(self, client, gitlab, ci):
        tracking = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy))
        gitlab.keys_down = True
        try:
            first, _ = tracking.post("experiments/search", SEARCH)
            fetched = fetches(gitlab)
            again = [tracking.post("experiments/search", SEARCH)[0] for _ in range(3)]
        finally:
            gitlab.keys_down = False

        assert {first, *again} <= {503, 424}
        assert fetches(gitlab) == fetched


class TestRefusals:
    @pytest.mark.parametrize(("changes", "forge", "reason"), REFUSALS)
    def test_it_refuses_with_401_and_counts_the_failure(self, client, ci, changes, forge, reason):
        token = ci.signer.sign(ci.signer.claims(ci.project, ci.cindy, **changes))
        token = forge(ci.signer, token) if forge else token
        tracking = Tracking(client, ci.project.path, token)

        status, answer = tracking.post("experiments/search", SEARCH)
        again, _ = tracking.post("experiments/search", SEARCH)

        assert status == 401 and answer["error_code"] == "UNAUTHENTICATED"
        assert reason in answer["message"]
        assert again == 429  # the failed-authentication throttle (1/min here) counted it

    def test_it_refuses_a_key_gitlab_does_not_publish_fetching_keys_once(self, client, gitlab, ci):
        Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy)).post(
            "experiments/search", SEARCH
        )
        before = fetches(gitlab)
        stranger = Signer(gitlab)  # never published

        answers = [
            Tracking(client, ci.project.path, stranger.id_token(ci.project, ci.cindy)).post(
                "experiments/search", SEARCH
            )
            for _ in range(5)
        ]

        assert answers[0][0] == 401 and "does not publish" in answers[0][1]["message"]
        assert {status for status, _ in answers[1:]} == {429}
        assert fetches(gitlab) - before <= 1

    def test_it_accepts_a_key_gitlab_newly_publishes(self, client, gitlab, ci, settings):
        settings.GITLAB_ID_TOKEN_KEYS_COOL_OFF = 0  # the cool-off since the last fetch is over
        first = Tracking(client, ci.project.path, ci.signer.id_token(ci.project, ci.cindy))
        assert first.post("experiments/search", SEARCH)[0] == 200
        rotated = Signer(gitlab).publish()

        status, _ = Tracking(client, ci.project.path, rotated.id_token(ci.project, ci.cindy)).post(
            "experiments/search", SEARCH
        )

        assert status == 200


class TestWithTheStockClient:
    """A live server (two workers sharing a cache, as with CACHE_URL) and the stock client,
    whose MLFLOW_TRACKING_TOKEN is the job's id_token."""

    @pytest.fixture(scope="class")
    def live(self, tmp_path_factory, gitlab) -> tuple[LiveServer, Jobs]:
        top = f"idt-live{next(_groups)}"
        project, other = gitlab.add_project(f"{top}/churn"), gitlab.add_project(f"{top}/other")
        cindy, rory = gitlab.add_user("cindy"), gitlab.add_user("rory")
        project.direct[cindy.id] = other.direct[cindy.id] = 30
        project.direct[rory.id] = 20
        jobs = Jobs(project, other, cindy, rory, Signer(gitlab).publish())
        tmp = tmp_path_factory.mktemp("id-tokens")
        server, process = start_live_server(
            tmp, gitlab.url, workers=2, GITLAB_ID_TOKEN_AUDIENCE=AUDIENCE,
            CACHE_URL=f"filecache://{tmp / 'cache'}",
        )  # fmt: skip
        yield server, jobs
        stop(process)

    def test_it_logs_a_jobs_run_with_no_gitlab_api_call_and_one_key_fetch(
        self, live, gitlab, monkeypatch
    ):
        server, ci = live
        api_calls, key_fetches = gitlab.count(), fetches(gitlab)
        claims = ci.signer.claims(ci.project, ci.cindy, job_id=8080, pipeline_id="808")
        monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES", raising=False)  # a CI job's client
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ci.signer.sign(claims))
        client = MlflowClient(tracking_uri=server.tracking_uri(ci.project.path))

        run = client.create_run(client.create_experiment("ci"), tags={"team": "churn"})
        client.log_param(run.info.run_id, "alpha", "0.5")
        for step in range(10):
            client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        client.log_text(run.info.run_id, "trained in CI", "notes.txt")
        client.set_terminated(run.info.run_id)
        logged = client.get_run(run.info.run_id)

        assert gitlab.count() == api_calls
        assert fetches(gitlab) - key_fetches <= 1
        assert logged.info.user_id == "cindy" and logged.data.tags["mlflow.user"] == "cindy"
        assert {k: v for k, v in logged.data.tags.items() if k.startswith("gitlab.")} == {
            "gitlab.job_url": f"{gitlab.url}/{ci.project.path}/-/jobs/8080",
            "gitlab.job_id": "8080",
            "gitlab.pipeline_id": "808",
        }
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["notes.txt"]

    def test_it_answers_404_on_another_project(self, live):
        server, ci = live
        token = ci.signer.id_token(ci.project, ci.cindy)

        answer = Api(server.tracking_uri(ci.other.path), token).post("experiments/search", SEARCH)

        assert answer.status_code == 404

    def test_it_lets_a_reporters_job_read_and_not_write(self, live, monkeypatch):
        server, ci = live
        monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES", raising=False)  # a CI job's client
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ci.signer.id_token(ci.project, ci.rory, 20))
        client = MlflowClient(tracking_uri=server.tracking_uri(ci.project.path))

        client.search_experiments()
        with pytest.raises(MlflowException, match="you are Reporter"):
            client.create_experiment("not-allowed")


class TestConnectPage:
    def page(self, client, gitlab, ci) -> str:
        token = gitlab.oauth.issue(ci.cindy)
        browser = logged_in_client(client, ci.cindy.id, ci.cindy.username, token)
        response = browser.get(f"/mlflow/{ci.project.path}/connect/")
        assert response.status_code == 200
        return response.content.decode()

    def test_it_shows_the_id_tokens_snippet_first(self, client, gitlab, ci, settings):
        settings.PROTECTED_MODEL_ALIASES = ["production"]

        page = self.page(client, gitlab, ci)

        snippet = re.search(r'<pre id="snippet-ci-id-token"><code>(.*?)</code>', page, re.S)
        assert f"aud: {AUDIENCE}" in snippet.group(1)
        assert page.index("snippet-ci-id-token") < page.index('id="snippet-ci"')
        assert page.index('id="snippet-ci"') < page.index("project access")
        assert "<code>production</code>" in page  # the protected aliases it may move

    def test_it_shows_no_id_tokens_snippet_while_they_are_off(self, client, gitlab, ci, settings):
        settings.GITLAB_ID_TOKEN_AUDIENCE = ""

        page = self.page(client, gitlab, ci)

        assert "id_tokens:" not in page
        assert "MLFLOW_TRACKING_TOKEN: $CI_JOB_TOKEN" in page
