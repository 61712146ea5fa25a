"""One authentication class per kind of credential, in-process: each answers yes (its kind,
valid), no (its kind, refused: 401) or not mine (None), and every header any of them reads is
kept from MLflow.

The cast: Dave (a personal token) and his pipeline's job 900 in ml/team/proj (42), whose
CI_JOB_TOKEN GitLab knows while it runs; anything else GitLab refuses.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import responses
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from mlflow_bridge.edge import dispatch
from mlflow_bridge.edge.authentication import (
    CIJobTokenAuthentication,
    GitLabSessionAuthentication,
    GitLabTokenAuthentication,
)
from mlflow_bridge.edge.errors import Unauthenticated

BASE = "https://gitlab.example.com"
DAVE, JOB = "glpat-dave", "glcbt-900-secret"
URL = "/mlflow/ml/team/proj/tracking/api/2.0/mlflow/experiments/search"
JOB_BODY = {"id": 900, "status": "running", "pipeline": {"id": 90, "project_id": 42},
            "user": {"id": 7, "username": "dave"},
            "web_url": f"{BASE}/ml/team/proj/-/jobs/900"}  # fmt: skip

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()


def as_gitlab(request) -> tuple[int, dict, str]:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    token = token or request.headers.get("JOB-TOKEN", "")
    if request.path_url.endswith("/job") and token == JOB:
        return 200, {}, json.dumps(JOB_BODY)
    if request.path_url.endswith("/user") and token == DAVE:
        return 200, {}, json.dumps({"id": 7, "username": "dave"})
    return 401, {}, json.dumps({"message": "401 Unauthorized"})


@pytest.fixture(autouse=True)
def gitlab_api(settings):
    settings.GITLAB_URL = BASE
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for path in ("user", "job"):
            mock.add_callback(responses.GET, f"{BASE}/api/v4/{path}", callback=as_gitlab)
        yield mock


def request_with(**headers: str):
    request = factory.get(URL, **headers)
    request.user = SimpleNamespace(is_authenticated=False)  # no session
    return request


class TestTheList:
    def test_it_keeps_every_header_an_authentication_class_reads_from_mlflow(self):
        classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
        environ = {dispatch.environ_key(h): "x" for cls in classes for h in cls.headers}

        passed_on = dispatch.mlflow_environ(
            {**environ, "REQUEST_METHOD": "GET", "wsgi.input": None},
            script_name="/mlflow/p/tracking", path_info="/", query_string="",
            workspace="p-1", body=None, headers={},
        )  # fmt: skip

        assert all(cls.headers for cls in classes), "each class names the headers it reads"
        assert not environ.keys() & passed_on.keys()

    def test_it_tries_the_credential_kinds_in_one_order(self):
        names = [cls.__name__ for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]

        assert names.index("CIJobTokenAuthentication") < names.index("GitLabTokenAuthentication")
        # A token header wins over a session; the service's own session over SharingHub's.
        assert names[-2:] == ["GitLabSessionAuthentication", "SharingHubSessionAuthentication"]


class TestCIJobTokenAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"HTTP_JOB_TOKEN": JOB}, id="job-token-header"),
            pytest.param({"HTTP_AUTHORIZATION": f"Bearer {JOB}"}, id="glcbt-bearer"),
            pytest.param({"HTTP_PRIVATE_TOKEN": JOB}, id="glcbt-private-token"),
        ],
    )
    def test_it_authenticates_a_running_job_as_its_user(self, headers):
        user, credential = CIJobTokenAuthentication().authenticate(request_with(**headers))

        assert user.username == "dave" and credential.job.id == 900

    def test_it_refuses_a_job_token_gitlab_does_not_know(self):
        with pytest.raises(Unauthenticated):
            CIJobTokenAuthentication().authenticate(request_with(HTTP_JOB_TOKEN="glcbt-gone"))

    @pytest.mark.parametrize(
        "headers",
        [{}, {"HTTP_AUTHORIZATION": f"Bearer {DAVE}"}, {"HTTP_PRIVATE_TOKEN": DAVE}],
        ids=["no-token", "personal-bearer", "personal-private-token"],
    )
    def test_it_is_not_its_kind_without_a_job_token(self, headers, gitlab_api):
        assert CIJobTokenAuthentication().authenticate(request_with(**headers)) is None
        assert len(gitlab_api.calls) == 0


class TestGitLabTokenAuthentication:
    def test_it_authenticates_a_personal_token(self):
        user, credential = GitLabTokenAuthentication().authenticate(
            request_with(HTTP_AUTHORIZATION=f"Bearer {DAVE}")
        )

        assert user.username == "dave" and credential.job is None

    def test_it_refuses_a_token_gitlab_does_not_know(self):
        with pytest.raises(Unauthenticated):
            GitLabTokenAuthentication().authenticate(request_with(HTTP_PRIVATE_TOKEN="glpat-x"))

    @pytest.mark.parametrize(
        "headers",
        [{}, {"HTTP_JOB_TOKEN": JOB}, {"HTTP_AUTHORIZATION": f"Bearer {JOB}"}],
        ids=["no-token", "job-token-header", "glcbt-bearer"],
    )
    def test_it_is_not_its_kind_without_a_token_or_with_a_jobs(self, headers, gitlab_api):
        assert GitLabTokenAuthentication().authenticate(request_with(**headers)) is None
        assert len(gitlab_api.calls) == 0


class TestGitLabSessionAuthentication:
    def test_it_is_not_its_kind_without_a_login(self):
        assert GitLabSessionAuthentication().authenticate(request_with()) is None
