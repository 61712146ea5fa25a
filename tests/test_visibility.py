"""Who reads and who writes a project's MLflow, as GitLab's project_policy.rb says: visibility
(private, internal, public) × the feature's level (disabled, private, enabled) × the caller
(anonymous, signed-in non-member, Guest, Reporter, Developer), in-process; GitLab answered by
`responses` (projects/visibility.py, mlflow_bridge/edge/permissions.CanReadFeature).

The cast: Gina is a Guest, Rita a Reporter, Dave a Developer of every project; Charlie is no
member; anonymous callers send no token; the service token is an administrator's.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from urllib.parse import unquote

import pytest
import responses
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from projects.models import GitLabProject, Membership
from tests.inprocess import Tracking

BASE = "https://gitlab.example.com"
SERVICE = "glpat-service"
USERS = {"glpat-gina": (11, "gina", 10), "glpat-rita": (12, "rita", 20),
         "glpat-dave": (13, "dave", 30), "glpat-charlie": (14, "charlie", 0),
         SERVICE: (1, "root", 0)}  # fmt: skip
TOKENS = {"anonymous": None, "non-member": "glpat-charlie", "guest": "glpat-gina",
          "reporter": "glpat-rita", "developer": "glpat-dave"}  # fmt: skip
VISIBILITIES = ("private", "internal", "public")
LEVELS = ("disabled", "private", "enabled")

# GitLab's table (shared/reference/gitlab-api.md), spelled out rather than recomputed.
EVERYONE = set(TOKENS)
MEMBERS = {"guest", "reporter", "developer"}
READERS = {
    ("public", "enabled"): EVERYONE,
    ("public", "private"): MEMBERS,
    ("public", "disabled"): set(),
    ("internal", "enabled"): MEMBERS,
    ("internal", "private"): MEMBERS,
    ("internal", "disabled"): set(),
    ("private", "enabled"): MEMBERS,
    ("private", "private"): MEMBERS,
    ("private", "disabled"): set(),
}
WRITERS = {key: {"developer"} & readers for key, readers in READERS.items()}

pytestmark = pytest.mark.django_db


class GitLab:
    """Projects by path: visibility and both feature levels; every cast member is a member."""

    def __init__(self):
        self.projects: dict[str, dict] = {}
        self.calls = 0

    def add(self, path: str, visibility: str, experiments: str, registry: str) -> str:
        self.projects[path] = {"id": 5000 + len(self.projects), "path_with_namespace": path,
                               "visibility": visibility,
                               "model_experiments_access_level": experiments,
                               "model_registry_access_level": registry}  # fmt: skip
        return path

    def answer(self, request) -> tuple[int, dict, str]:
        self.calls += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in USERS:
            return 401, {}, json.dumps({"message": "401 Unauthorized"})
        user_id, username, level = USERS[token]
        path = unquote(request.path_url.split("?")[0].removeprefix("/api/v4/"))
        if path == "user":
            return 200, {}, json.dumps({"id": user_id, "username": username,
                                        "is_admin": token == SERVICE})  # fmt: skip
        if "/members/all/" in path:
            return 404, {}, json.dumps({"message": "404 Not found"})
        project = self.projects.get(path.removeprefix("projects/"))
        if project is None or (project["visibility"] == "private" and not level
                               and token != SERVICE):  # fmt: skip
            return 404, {}, json.dumps({"message": "404 Project Not Found"})
        access = {"access_level": level, "notification_level": 3} if level else None
        return 200, {}, json.dumps({**project, "name": path.rsplit("/", 1)[-1],
                                    "permissions": {"project_access": access,
                                                    "group_access": None}})  # fmt: skip


@pytest.fixture
def gitlab(settings):
    settings.GITLAB_URL = BASE
    settings.GITLAB_SERVICE_TOKEN = SERVICE
    cache.clear()
    double = GitLab()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(f"{BASE}/api/v4/.*"), callback=double.answer)
        yield double


class Caller(Tracking):
    def __init__(self, client, path: str, token: str | None):
        super().__init__(client, path, token or "")
        if token is None:
            self.auth = {}

    def read(self, area: str) -> int:
        route = "experiments/search" if area == "experiments" else "registered-models/search"
        return self.get(route, max_results="5")[0]

    def write(self) -> int:
        return self.post("experiments/create", {"name": f"e-{uuid.uuid4().hex[:8]}"})[0]


def refusal(caller: str, reads: bool) -> int:
    """The status of a refusal: 401 to an anonymous caller, 403 to one who reads, else 404."""
    if caller == "anonymous":
        return 401
    return 403 if reads else 404


MATRIX = [
    pytest.param(visibility, level, caller, id=f"{visibility}-{level}-{caller}")
    for visibility in VISIBILITIES
    for level in LEVELS
    for caller in TOKENS
]


class TestTheMatrix:
    @pytest.mark.parametrize(("visibility", "level", "caller"), MATRIX)
    def test_it_lets_read_the_model_experiments_as_gitlab_does(
        self, client, gitlab, visibility, level, caller
    ):
        path = gitlab.add(f"ml/{visibility}/exp-{level}", visibility, level, "enabled")
        reads = caller in READERS[(visibility, level)]

        status = Caller(client, path, TOKENS[caller]).read("experiments")

        assert status == (200 if reads else refusal(caller, False))

    @pytest.mark.parametrize(("visibility", "level", "caller"), MATRIX)
    def test_it_lets_read_the_model_registry_as_gitlab_does(
        self, client, gitlab, visibility, level, caller
    ):
        path = gitlab.add(f"ml/{visibility}/reg-{level}", visibility, "enabled", level)
        reads = caller in READERS[(visibility, level)]

        status = Caller(client, path, TOKENS[caller]).read("registry")

        if reads or caller == "anonymous":
            assert status == (200 if reads else 401)
        else:
            # The project stays readable through its other feature: only this one is missing.
            assert status == 404

    @pytest.mark.parametrize(("visibility", "level", "caller"), MATRIX)
    def test_it_lets_only_developers_write(self, client, gitlab, visibility, level, caller):
        path = gitlab.add(f"ml/{visibility}/w-{level}", visibility, level, level)
        reads = caller in READERS[(visibility, level)]
        writes = caller in WRITERS[(visibility, level)]

        status = Caller(client, path, TOKENS[caller]).write()

        assert status == (200 if writes else refusal(caller, reads))


class TestFeatures:
    def test_it_answers_a_switched_off_feature_as_missing_and_keeps_the_other(self, client, gitlab):
        path = gitlab.add("ml/public/no-registry", "public", "enabled", "disabled")
        dave = Caller(client, path, "glpat-dave")

        assert dave.read("experiments") == 200
        assert dave.read("registry") == 404
        status, body = dave.post("registered-models/create", {"name": "m"})
        assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_it_gives_the_mlflow_ui_to_whoever_reads_a_feature(self, client, gitlab):
        path = gitlab.add("ml/public/only-registry", "public", "disabled", "enabled")

        response = client.get(f"/mlflow/{path}/tracking/", HTTP_ACCEPT="text/html")

        page = response.content.decode()
        assert response.status_code == 200
        assert "This project is public: you can browse it" in page
        assert f'<a href="/mlflow/login/?next=/mlflow/{path}/tracking/">Sign in</a>' in page


class TestAnonymousReads:
    def test_it_answers_an_anonymous_search_with_a_json_body(self, client, gitlab):
        path = gitlab.add("ml/public/searched", "public", "enabled", "enabled")
        Caller(client, path, "glpat-dave").post("experiments/create", {"name": "shown"})

        status, found = Caller(client, path, None).post("experiments/search", {"max_results": 5})

        assert status == 200
        assert "shown" in {experiment["name"] for experiment in found["experiments"]}


class TestSwitchesAndSettings:
    def test_it_asks_anonymous_callers_to_sign_in_without_a_service_token(
        self, client, gitlab, settings
    ):
        settings.GITLAB_SERVICE_TOKEN = ""
        path = gitlab.add("ml/public/open", "public", "enabled", "enabled")

        assert Caller(client, path, None).read("experiments") == 401
        assert Caller(client, path, "glpat-charlie").read("experiments") == 200

    def test_it_keeps_non_members_out_when_members_only(self, client, gitlab, settings):
        settings.MEMBERS_ONLY = True
        path = gitlab.add("ml/public/members", "public", "enabled", "enabled")

        assert Caller(client, path, None).read("experiments") == 401
        assert Caller(client, path, "glpat-charlie").read("experiments") == 404
        assert Caller(client, path, "glpat-gina").read("experiments") == 200

    def test_it_counts_anonymous_requests_per_address(self, client, gitlab, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "anonymous_per_address": "3/min"}}  # fmt: skip
        path = gitlab.add("ml/public/busy", "public", "enabled", "enabled")
        anonymous = Caller(client, path, None)

        statuses = [anonymous.read("experiments") for _ in range(4)]

        assert statuses == [200, 200, 200, 429]
        assert Caller(client, path, "glpat-dave").read("experiments") == 200


class TestChangesInGitLab:
    def test_it_follows_a_project_made_private_once_the_cache_expires(self, client, gitlab):
        path = gitlab.add("ml/public/closing", "public", "enabled", "enabled")
        assert Caller(client, path, "glpat-charlie").read("experiments") == 200
        assert Caller(client, path, None).read("experiments") == 200

        gitlab.projects[path]["visibility"] = "private"
        expire_cached_answers()

        assert Caller(client, path, "glpat-charlie").read("experiments") == 404
        assert Caller(client, path, None).read("experiments") == 401
        assert Caller(client, path, "glpat-rita").read("experiments") == 200

    def test_it_follows_a_feature_switched_to_members_only(self, client, gitlab):
        path = gitlab.add("ml/public/narrowing", "public", "enabled", "enabled")
        assert Caller(client, path, "glpat-charlie").read("experiments") == 200

        gitlab.projects[path]["model_experiments_access_level"] = "private"
        expire_cached_answers()

        assert Caller(client, path, "glpat-charlie").read("experiments") == 404
        assert Caller(client, path, "glpat-charlie").read("registry") == 200

    def test_it_follows_a_project_made_private_at_once_when_gitlabs_hook_says_so(
        self, client, gitlab, settings
    ):
        settings.GITLAB_WEBHOOK_SECRET = "hook-secret"
        path = gitlab.add("ml/public/hooked", "public", "enabled", "enabled")
        assert Caller(client, path, "glpat-charlie").read("experiments") == 200
        assert Caller(client, path, None).read("experiments") == 200
        gitlab.projects[path]["visibility"] = "private"

        hook = client.post("/hooks/gitlab/", {"event_name": "project_update",
                           "project_id": gitlab.projects[path]["id"],
                           "path_with_namespace": path, "project_visibility": "private"},
                           content_type="application/json",
                           HTTP_X_GITLAB_TOKEN="hook-secret")  # fmt: skip

        assert hook.status_code == 200
        assert Caller(client, path, "glpat-charlie").read("experiments") == 404
        assert Caller(client, path, None).read("experiments") == 401
        assert Caller(client, path, "glpat-rita").read("experiments") == 200


def expire_cached_answers() -> None:
    """MEMBERSHIP_CACHE_TTL has passed: every kept answer is stale."""
    past = timezone.now() - timedelta(days=1)
    Membership.objects.update(expires_at=past)
    GitLabProject.objects.update(last_seen=past)
    cache.clear()


class TestMembersHotPath:
    def test_it_costs_a_cached_member_no_gitlab_call_and_no_more_queries_in_a_public_project(
        self, client, gitlab
    ):
        public = gitlab.add("ml/public/hot", "public", "enabled", "enabled")
        private = gitlab.add("ml/private/hot", "private", "enabled", "enabled")
        counts = {}
        for path in (public, private):
            dave = Caller(client, path, "glpat-dave")
            assert dave.read("experiments") == 200  # caches the answers
            calls = gitlab.calls
            with CaptureQueriesContext(connection) as queries:
                assert dave.read("experiments") == 200
            assert gitlab.calls == calls
            counts[path] = len(queries)

        assert counts[public] == counts[private]
