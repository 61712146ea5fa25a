"""The edge, class by class, in-process: authentication, permission and throttle classes, the
exception handler, and what the tracking view adds (or does not) to MLflow's answers.

The cast: Dave is a Developer of ml/team/proj (42), Rita a Reporter; Dave also holds a
read_user-only token (a "sign in with GitLab" app's); Charlie is no member.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
import responses
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework.test import APIRequestFactory

from mlflow_bridge.edge import errors, permissions, throttling
from mlflow_bridge.edge.authentication import GitLabSessionAuthentication, GitLabTokenAuthentication
from mlflow_bridge.edge.errors import BridgeError, Unauthenticated
from mlflow_bridge.edge.routes import ROUTES, route_for
from projects import access, gitlab
from projects.models import GitLabProject, GitLabUser, TokenFingerprint
from tests.sessions import logged_in_client

BASE = "https://gitlab.example.com"
DAVE, RITA, DAVE_READ_USER = "glpat-dave", "glpat-rita", "glpat-dave-read-user"
PATH, ENCODED_PATH = "ml/team/proj", "ml%2Fteam%2Fproj"
URL = f"/mlflow/{PATH}/tracking/api/2.0/mlflow/experiments/search?max_results=10"
INSUFFICIENT_SCOPE = {"error": "insufficient_scope", "scope": "api read_api"}

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()


USERS = {DAVE: (7, "dave"), RITA: (8, "rita"), DAVE_READ_USER: (7, "dave")}
LEVELS = {DAVE: 30, RITA: 20}


def as_gitlab(request) -> tuple[int, dict, str]:
    """GitLab's answer to GET /user or /projects/ml%2Fteam%2Fproj for the request's token."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in USERS:
        return 401, {}, json.dumps({"message": "401 Unauthorized"})
    user_id, username = USERS[token]
    if request.path_url.endswith("/user"):
        return 200, {}, json.dumps({"id": user_id, "username": username})
    if token not in LEVELS:
        return 403, {}, json.dumps(INSUFFICIENT_SCOPE)  # read_user alone
    return 200, {}, json.dumps({"id": 42, "path_with_namespace": PATH, "permissions": {
        "project_access": {"access_level": LEVELS[token]}}})  # fmt: skip


@pytest.fixture(autouse=True)
def gitlab_api(settings):
    """GitLab (responses) knows Dave's and Rita's tokens; anything else is 401."""
    settings.GITLAB_URL = BASE
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for path in ("user", f"projects/{ENCODED_PATH}", "job"):
            mock.add_callback(responses.GET, f"{BASE}/api/v4/{path}", callback=as_gitlab)
        yield mock


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def gitlab_calls(mock: responses.RequestsMock) -> int:
    return len(mock.calls)


class TestGitLabTokenAuthentication:
    def test_it_authenticates_a_bearer_token_as_its_gitlab_user(self):
        user, credential = GitLabTokenAuthentication().authenticate(
            factory.get(URL, **bearer(DAVE))
        )

        assert (user.id, user.username) == (7, "dave")
        assert credential.digest == TokenFingerprint.digest_of(DAVE)

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param(
                {
                    "HTTP_AUTHORIZATION": "Basic "
                    + base64.b64encode(f"anyone:{DAVE}".encode()).decode()
                },
                id="basic-password",
            ),  # fmt: skip
            pytest.param({"HTTP_PRIVATE_TOKEN": DAVE}, id="private-token-header"),
        ],
    )
    def test_it_finds_the_token_in_gitlabs_other_places(self, headers):
        user, _ = GitLabTokenAuthentication().authenticate(factory.get(URL, **headers))

        assert user.username == "dave"

    def test_it_is_not_its_scheme_without_a_token(self):
        assert GitLabTokenAuthentication().authenticate(factory.get(URL)) is None

    @pytest.mark.parametrize(
        "header",
        ["Bearer ", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"],
    )
    def test_it_refuses_malformed_credentials_without_asking_gitlab(self, header, gitlab_api):
        with pytest.raises(Unauthenticated):
            GitLabTokenAuthentication().authenticate(factory.get(URL, HTTP_AUTHORIZATION=header))
        assert gitlab_calls(gitlab_api) == 0

    def test_it_refuses_a_token_gitlab_does_not_know(self):
        with pytest.raises(Unauthenticated, match="does not accept this token"):
            GitLabTokenAuthentication().authenticate(factory.get(URL, **bearer("glpat-nobody")))

    def test_it_challenges_with_bearer_and_basic(self):
        challenge = GitLabTokenAuthentication().authenticate_header(factory.get(URL))

        assert challenge == 'Bearer realm="mlflow", Basic realm="mlflow"'


class TestGitLabSessionAuthentication:
    def test_it_authenticates_a_browser_logged_in_with_gitlab(self, client):
        logged_in_client(client, token=DAVE)
        request = factory.get(URL)
        request.user = get_user_model().objects.get(username="dave")

        user, credential = GitLabSessionAuthentication().authenticate(request)

        assert user.username == "dave" and credential.token == DAVE

    def test_it_is_not_its_scheme_for_a_browser_not_logged_in(self):
        request = factory.get(URL)
        request.user = SimpleNamespace(is_authenticated=False)

        assert GitLabSessionAuthentication().authenticate(request) is None

    def test_it_refuses_a_cross_site_write(self, client):
        logged_in_client(client, token=DAVE)
        request = factory.post(URL, {}, format="json", HTTP_ORIGIN="https://evil.example")
        request.user = get_user_model().objects.get(username="dave")

        with pytest.raises(BridgeError, match="Cross-site request refused"):
            GitLabSessionAuthentication().authenticate(request)


class TestCredentialScope:
    """A token proves its own right to use GitLab's API: never borrowed from its user."""

    def test_it_refuses_a_read_user_token_after_another_token_cached_the_membership(self, client):
        assert client.get(URL, **bearer(DAVE)).status_code == 200

        answer = client.get(URL, **bearer(DAVE_READ_USER))

        assert answer.status_code == 401
        assert answer.json() == {
            "error_code": "UNAUTHENTICATED",
            "message": "Your GitLab token lacks the read_api scope: create a token with read_api.",
        }
        assert answer["WWW-Authenticate"] == 'Bearer realm="mlflow", Basic realm="mlflow"'

    def test_it_remembers_the_refusal_without_asking_gitlab_again(self, client, gitlab_api):
        client.get(URL, **bearer(DAVE_READ_USER))
        calls = gitlab_calls(gitlab_api)

        assert client.get(URL, **bearer(DAVE_READ_USER)).status_code == 401
        assert gitlab_calls(gitlab_api) == calls
        assert TokenFingerprint.objects.get(digest=TokenFingerprint.digest_of(DAVE_READ_USER))

    def test_it_serves_a_proven_token_from_the_cache(self, client, gitlab_api):
        client.get(URL, **bearer(DAVE))
        calls = gitlab_calls(gitlab_api)

        assert client.get(URL, **bearer(DAVE)).status_code == 200
        assert gitlab_calls(gitlab_api) == calls

    def test_it_asks_gitlab_with_a_new_token_of_a_cached_member(self, client, gitlab_api):
        client.get(URL, **bearer(DAVE_READ_USER))
        credential = access.credential_for(DAVE)

        assert credential.reads_api is False  # not proven yet: asked with the token itself
        assert access.access_to(credential, PATH).can_write
        assert access.credential_for(DAVE).reads_api is True


def project_request(
    level: int | None,
    *,
    archived: bool = False,
    rule: str | None = None,
    method: str = "GET",
    topics: tuple[str, ...] = (),
) -> SimpleNamespace:
    """What permission classes look at: the caller's access and the route's row."""
    project = GitLabProject(id=42, path=PATH, archived=archived, topics=list(topics))
    project_access = None
    if level is not None:
        project_access = access.ProjectAccess(project, GitLabUser(id=7, username="dave"), level)
    route = route_for(rule, method) if rule else None
    return SimpleNamespace(project_access=project_access, route=route)


class TestPermissions:
    @pytest.mark.parametrize(
        ("permission", "yes", "no"),
        [
            pytest.param(permissions.IsVisibleProject, project_request(10),
                         project_request(5), id="member-guest-vs-minimal"),
            pytest.param(permissions.IsVisibleProject, project_request(50),
                         project_request(None), id="member-owner-vs-no-project"),
            pytest.param(permissions.CanWriteProject, project_request(30),
                         project_request(20), id="write-developer-vs-reporter"),
            pytest.param(permissions.IsProjectNotArchived, project_request(30),
                         project_request(30, archived=True), id="not-archived"),
            pytest.param(permissions.IsServedRoute,
                         project_request(30, rule="/2.0/mlflow/runs/search", method="POST"),
                         project_request(30, rule="/3.0/mlflow/gateway/secrets", method="GET"),
                         id="served-route-vs-gateway"),
        ],
    )  # fmt: skip
    def test_it_answers_yes_and_no(self, permission, yes, no):
        assert permission().has_permission(yes, None) is True
        assert permission().has_permission(no, None) is False

    def test_it_keeps_projects_without_the_mandatory_topics_hidden(self, settings):
        settings.GITLAB_MANDATORY_TOPICS = ["mlflow"]

        assert permissions.IsVisibleProject().has_permission(
            project_request(30, topics=("mlflow",)), None
        )
        assert not permissions.IsVisibleProject().has_permission(project_request(30), None)

    def test_it_hides_the_project_from_non_members_with_a_404_code(self):
        assert permissions.IsVisibleProject.code == "RESOURCE_DOES_NOT_EXIST"
        assert permissions.CanWriteProject.code == "PERMISSION_DENIED"

    def test_it_says_who_may_write(self):
        permission = permissions.CanWriteProject()
        permission.has_permission(project_request(20), None)

        assert (
            permission.message == "Developer or higher can write to ml/team/proj; you are Reporter."
        )

    def test_it_composes_write_permissions_for_every_writing_route(self):
        for route in ROUTES:
            composed = permissions.permissions_for(route)
            assert (
                composed[: len(permissions.PROJECT_PERMISSIONS)] == permissions.PROJECT_PERMISSIONS
            )
            assert (permissions.CanWriteProject in composed) == route.action.writes, route


class TestHiddenProjects:
    """What IsVisibleProject refuses answers byte for byte as a project that does not exist."""

    MISSING_URL = URL.replace(PATH, "ml/team/gone")

    @pytest.fixture(autouse=True)
    def missing_project(self, gitlab_api):
        gitlab_api.add(responses.GET, f"{BASE}/api/v4/projects/ml%2Fteam%2Fgone", status=404,
                       json={"message": "404 Project Not Found"})  # fmt: skip

    def assert_answers_as_missing(self, client, token: str) -> None:
        hidden = client.get(URL, **bearer(token))
        missing = client.get(self.MISSING_URL, **bearer(token))

        assert hidden.status_code == missing.status_code == 404
        assert hidden.content == missing.content
        assert hidden.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_it_hides_a_project_gitlab_deleted_from_a_cached_member(self, client):
        assert client.get(URL, **bearer(DAVE)).status_code == 200
        GitLabProject.objects.filter(id=42).update(orphaned_at=timezone.now())

        self.assert_answers_as_missing(client, DAVE)

    def test_it_hides_a_project_lacking_a_mandatory_topic(self, client, settings):
        settings.GITLAB_MANDATORY_TOPICS = ["mlflow"]

        self.assert_answers_as_missing(client, RITA)

    def test_it_asks_for_a_token_before_saying_whether_a_project_exists(self, client):
        existing = client.get(URL)
        missing = client.get(self.MISSING_URL)

        assert existing.status_code == missing.status_code == 401
        assert existing.content == missing.content


class TestThrottles:
    @pytest.fixture(autouse=True)
    def rates(self, settings):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                "gitlab_lookups_per_address": "3/min",
                "gitlab_lookups": "5/min",
                "failed_authentications_per_address": "2/min",
                "principal": None,
            },
        }

    def request_from(self, address: str):
        return factory.get(URL, REMOTE_ADDR=address)

    def test_it_allows_lookups_up_to_the_rate_per_address(self):
        for _ in range(3):
            throttling.check_lookup(self.request_from("10.0.0.1"))

        with pytest.raises(Throttled) as refused:
            throttling.check_lookup(self.request_from("10.0.0.1"))
        assert 0 < refused.value.wait <= 60
        throttling.check_lookup(self.request_from("10.0.0.2"))

    def test_it_bounds_lookups_of_all_addresses_together(self):
        for i in range(5):
            throttling.check_lookup(self.request_from(f"10.0.1.{i}"))

        with pytest.raises(Throttled):
            throttling.check_lookup(self.request_from("10.0.1.99"))

    def test_it_stops_lookups_of_an_address_that_failed_too_often(self):
        throttling.record_failure(self.request_from("10.0.2.1"))
        throttling.record_failure(self.request_from("10.0.2.1"))

        with pytest.raises(Throttled, match="failed authentications"):
            throttling.check_lookup(self.request_from("10.0.2.1"))
        with pytest.raises(Throttled):
            throttling.record_failure(self.request_from("10.0.2.1"))

    def test_it_peeks_at_failures_without_counting_the_peek(self):
        for _ in range(5):
            assert throttling.FailedAuthenticationsPerAddressThrottle().peek(
                self.request_from("10.0.2.2")
            )

        throttling.record_failure(self.request_from("10.0.2.2"))
        throttling.record_failure(self.request_from("10.0.2.2"))
        failures = throttling.FailedAuthenticationsPerAddressThrottle()

        assert not failures.peek(self.request_from("10.0.2.2"))
        assert 0 < failures.wait() <= 60

    def test_it_takes_the_address_from_x_forwarded_for_only_behind_declared_proxies(self, settings):
        spoofed = factory.get(URL, REMOTE_ADDR="10.0.3.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
        assert throttling.AddressThrottle().get_ident(spoofed) == "10.0.3.1"

        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        proxied = factory.get(URL, REMOTE_ADDR="10.0.3.1",
                              HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4")  # fmt: skip
        assert throttling.AddressThrottle().get_ident(proxied) == "1.2.3.4"

    @pytest.mark.parametrize(
        ("address", "network"),
        [
            ("10.0.0.7", "10.0.0.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("::ffff:10.0.0.7", "10.0.0.7"),
            ("not an address", "invalid"),
        ],
    )
    def test_it_counts_ipv6_clients_by_their_64_bit_prefix(self, address, network):
        assert throttling.client_network(address) == network

    def test_it_limits_a_principal_only_when_a_rate_is_set(self, settings):
        request = SimpleNamespace(user=GitLabUser(id=7, username="dave"))
        assert all(throttling.PrincipalRateThrottle().allow_request(request, None)
                   for _ in range(50))  # fmt: skip

        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["principal"] = "2/min"
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
        answers = [throttling.PrincipalRateThrottle().allow_request(request, None)
                   for _ in range(3)]  # fmt: skip
        assert answers == [True, True, False]

    def test_it_answers_429_in_mlflows_shape_with_retry_after(self, client):
        for _ in range(2):
            assert client.get(URL, **bearer("glpat-nobody")).status_code == 401

        answer = client.get(URL, **bearer("glpat-nobody-else"))

        assert answer.status_code == 429
        assert answer.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert 0 < int(answer["Retry-After"]) <= 60

    def test_it_never_throttles_the_renewal_of_a_known_valid_token(self, client, gitlab_api):
        assert client.get(URL, **bearer(DAVE)).status_code == 200
        for _ in range(3):
            client.get(URL, **bearer("glpat-nobody"))
        TokenFingerprint.objects.update(expires_at=timezone.now())  # every answer expired

        assert client.get(URL, **bearer(DAVE)).status_code == 200

    def test_it_counts_a_principal_before_looking_any_project_up(
        self, client, settings, gitlab_api
    ):
        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["principal"] = "2/min"
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
        assert client.get(URL, **bearer(DAVE)).status_code == 200
        calls = gitlab_calls(gitlab_api)

        answers = [
            client.get(f"/mlflow/ml/nope/p{i}/tracking/api/2.0/mlflow/experiments/search",
                       **bearer(DAVE)).status_code
            for i in range(5)
        ]  # fmt: skip

        assert answers[1:] == [429] * 4  # the first asked GitLab (unknown here: 503)
        assert gitlab_calls(gitlab_api) - calls <= 1

    def test_it_never_throttles_a_known_valid_token_for_others_failures(self, client):
        assert client.get(URL, **bearer(DAVE)).status_code == 200
        for _ in range(3):
            client.get(URL, **bearer("glpat-nobody"))

        assert client.get(URL, **bearer(DAVE)).status_code == 200


class TestExceptionHandler:
    @pytest.mark.parametrize(
        ("exception", "status", "code"),
        [
            pytest.param(Throttled(12), 429, "REQUEST_LIMIT_EXCEEDED", id="throttled"),
            pytest.param(Unauthenticated("no"), 401, "UNAUTHENTICATED", id="unauthenticated"),
            pytest.param(errors.not_found(), 404, "RESOURCE_DOES_NOT_EXIST", id="not-found"),
            pytest.param(errors.too_large(10), 413, "REQUEST_LIMIT_EXCEEDED", id="too-large"),
            pytest.param(
                gitlab.GitLabUnavailable("down"), 503, "TEMPORARILY_UNAVAILABLE", id="gitlab-down"
            ),  # fmt: skip
            pytest.param(
                gitlab.TokenScopeTooNarrow("scope"), 401, "UNAUTHENTICATED", id="scope"
            ),  # fmt: skip
        ],
    )
    def test_it_answers_in_mlflows_json_shape(self, exception, status, code):
        response = errors.exception_handler(exception, {})

        assert response.status_code == status
        assert set(json.loads(response.content)) == {"error_code", "message"}
        assert json.loads(response.content)["error_code"] == code

    def test_it_answers_a_lost_database_connection_with_a_retryable_503(self, client, monkeypatch):
        def database_gone(*args, **kwargs):
            raise OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(access, "credential_for", database_gone)

        answer = client.get(URL, **bearer(DAVE))

        assert answer.status_code == 503
        assert answer["Retry-After"] == "5"
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "server closed" not in answer.json()["message"]

    def test_it_answers_mlflows_store_losing_the_database_with_a_retryable_503(self):
        # MLflow's store wraps the driver's error (mlflow/store/db/utils.py), e.g. when the
        # edge asks for a workspace's default experiment as PostgreSQL shuts down.
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import OperationalError as DriverError

        try:
            try:
                raise DriverError("SELECT 1", {}, Exception("terminating connection"))
            except DriverError as lost:
                raise MlflowException(str(lost), "TEMPORARILY_UNAVAILABLE") from lost
        except MlflowException as wrapped:
            response = errors.exception_handler(wrapped, {})

        assert response is not None and response.status_code == 503
        assert response["Retry-After"] == "5"
        assert b"terminating" not in response.content

    def test_it_leaves_a_genuine_bug_to_django(self):
        assert errors.exception_handler(KeyError("bug"), {}) is None

    def test_it_answers_a_genuine_bug_in_mlflows_json_shape_without_its_text(
        self, client, monkeypatch
    ):
        def bug(*args, **kwargs):
            raise KeyError("secret internals")

        monkeypatch.setattr(access, "credential_for", bug)
        client.raise_request_exception = False

        answer = client.get(URL, **bearer(DAVE))

        assert answer.status_code == 500
        assert answer.json() == {
            "error_code": "INTERNAL_ERROR",
            "message": "Internal error; it has been logged.",
        }


class TestWhatTheViewAdds:
    def test_it_adds_no_allow_or_vary_header_to_mlflows_answer(self, client):
        answer = client.get(URL, **bearer(DAVE))

        assert answer.status_code == 200
        assert "Allow" not in answer
        assert "Accept" not in answer.get("Vary", "")

    @pytest.mark.parametrize("accept", ["text/html", "application/x-protobuf", "image/png", "*/*"])
    def test_it_serves_whatever_the_client_accepts(self, client, accept):
        assert client.get(URL, HTTP_ACCEPT=accept, **bearer(DAVE)).status_code == 200

    def test_it_answers_options_from_the_route_table(self, client):
        served = client.options(URL, **bearer(DAVE))
        refused = client.options(
            f"/mlflow/{PATH}/tracking/api/3.0/mlflow/workspaces/p-1", **bearer(DAVE)
        )

        assert served.status_code == 200
        assert refused.status_code == 403

    def test_it_answers_401_without_credentials(self, client):
        answer = client.get(URL)

        assert answer.status_code == 401
        assert answer.json()["error_code"] == "UNAUTHENTICATED"


class TestBodies:
    def test_it_reads_limits_and_checks_the_json_body_of_an_artifact_delete(self, client, settings):
        settings.MAX_JSON_BODY_SIZE = 100
        url = f"/mlflow/{PATH}/tracking/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/x"

        huge = client.generic("DELETE", url, b"{}" + b" " * 200, "application/json",
                              **bearer(DAVE))  # fmt: skip
        climbing = client.generic("DELETE", url, json.dumps({"path": "../../x"}),
                                  "application/json", **bearer(DAVE))  # fmt: skip

        assert huge.status_code == 413
        assert climbing.status_code == 400

    def test_it_wants_the_length_of_a_file_mlflow_reads_whole(self, client, settings):
        created = client.post(
            f"/mlflow/{PATH}/tracking/api/2.0/mlflow/runs/create",
            json.dumps({"experiment_id": "0"}), content_type="application/json", **bearer(DAVE),
        )  # fmt: skip
        run = json.loads(b"".join(created.streaming_content))["run"]["info"]["run_id"]
        settings.MAX_JSON_BODY_SIZE = 100
        url = f"/mlflow/{PATH}/tracking/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path=x"

        chunked = client.generic("POST", url, b"data", "application/octet-stream",
                                 HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="",
                                 **bearer(DAVE))  # fmt: skip
        too_long = client.generic("POST", url, b"d" * 200, "application/octet-stream",
                                  **bearer(DAVE))  # fmt: skip

        assert chunked.status_code == 411
        assert too_long.status_code == 413

    @pytest.mark.parametrize("step", ["create", "complete", "abort"])
    def test_it_checks_the_json_body_of_multipart_uploads(self, client, step):
        answer = client.post(
            f"/mlflow/{PATH}/tracking/api/2.0/mlflow-artifacts/mpu/{step}/1/run/artifacts",
            json.dumps({"path": "../../p-1/secret", "num_parts": 2, "upload_id": "u"}),
            content_type="application/json",
            **bearer(DAVE),
        )

        assert answer.status_code == 400
        assert "climbs out with '..'" in answer.json()["message"]

    def test_it_refuses_a_get_body_above_the_limit_before_reading_it(self, client, settings):
        settings.MAX_JSON_BODY_SIZE = 10

        answer = client.generic("GET", URL, b'{"max_results": 1000}', "application/json",
                                **bearer(DAVE))  # fmt: skip

        assert answer.status_code == 413
        assert answer.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_it_never_passes_a_token_header_on_to_mlflow():
    from mlflow_bridge.edge.authentication import TOKEN_HEADERS
    from mlflow_bridge.edge.dispatch import DROPPED_ENVIRON_KEYS

    for header in TOKEN_HEADERS:
        assert "HTTP_" + header.upper().replace("-", "_") in DROPPED_ENVIRON_KEYS
