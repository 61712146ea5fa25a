"""The GitLab client: GitLab's answers become typed values or one exception family."""

import pytest
import requests
import responses

from projects import gitlab

BASE = "https://gitlab.example.com"


def client() -> gitlab.GitLabClient:
    return gitlab.GitLabClient("glpat-secret", base_url=BASE, timeout=5)


def project_body(project_access, group_access) -> dict:
    def level(value):
        return None if value is None else {"access_level": value, "notification_level": 3}

    return {"id": 42, "path_with_namespace": "ml/team/proj", "name": "proj",
            "visibility": "private", "web_url": f"{BASE}/ml/team/proj", "archived": False,
            "topics": ["sharinghub:aimodel"],
            "permissions": {"project_access": level(project_access),
                            "group_access": level(group_access)}}  # fmt: skip


class TestCurrentUser:
    @responses.activate
    def test_it_returns_the_tokens_user(self):
        responses.get(f"{BASE}/api/v4/user", json={"id": 123, "username": "alice", "bot": False})

        assert client().current_user() == gitlab.GitLabUser(123, "alice", False)
        assert responses.calls[0].request.headers["Authorization"] == "Bearer glpat-secret"

    @responses.activate
    @pytest.mark.parametrize(
        "body",
        [
            {"message": "401 Unauthorized"},
            {"error": "invalid_token", "error_description": "Token is expired."},
            {"error": "invalid_token", "error_description": "Token was revoked."},
        ],
    )
    def test_it_raises_token_rejected_on_401(self, body):
        responses.get(f"{BASE}/api/v4/user", json=body, status=401)

        with pytest.raises(gitlab.TokenRejected):
            client().current_user()

    @responses.activate
    def test_it_raises_scope_too_narrow_on_insufficient_scope(self):
        responses.get(f"{BASE}/api/v4/user", status=403,
                      json={"error": "insufficient_scope", "scope": "api read_api"})  # fmt: skip

        with pytest.raises(gitlab.TokenScopeTooNarrow):
            client().current_user()

    @responses.activate
    @pytest.mark.parametrize("status", [429, 500, 502, 503])
    def test_it_raises_unavailable_on_rate_limit_and_server_errors(self, status):
        responses.get(f"{BASE}/api/v4/user", json={"message": "x"}, status=status)

        with pytest.raises(gitlab.GitLabUnavailable):
            client().current_user()

    @responses.activate
    def test_it_raises_unavailable_when_gitlab_cannot_be_reached(self):
        responses.get(f"{BASE}/api/v4/user", body=requests.ConnectTimeout("timed out"))

        with pytest.raises(gitlab.GitLabUnavailable) as raised:
            client().current_user()
        assert "glpat-secret" not in str(raised.value)


class TestProject:
    @responses.activate
    @pytest.mark.parametrize(
        ("project_access", "group_access", "level"),
        [
            pytest.param(30, None, 30, id="direct member"),
            pytest.param(None, 40, 40, id="inherited from a group"),
            pytest.param(20, 40, 40, id="the higher of the two"),
            pytest.param(50, 10, 50, id="direct higher than group"),
        ],
    )
    def test_it_takes_the_higher_of_project_and_group_access(
        self, project_access, group_access, level
    ):
        responses.get(f"{BASE}/api/v4/projects/ml%2Fteam%2Fproj",
                      json=project_body(project_access, group_access))  # fmt: skip

        project = client().project("ml/team/proj", user_id=7)

        assert project.id == 42
        assert project.access_level == level
        assert len(responses.calls) == 1

    @responses.activate
    def test_it_asks_members_all_when_gitlab_reports_no_access(self):
        responses.get(f"{BASE}/api/v4/projects/ml%2Fteam%2Fproj", json=project_body(None, None))
        responses.get(f"{BASE}/api/v4/projects/42/members/all/7",
                      json={"id": 7, "username": "sam", "access_level": 30})  # fmt: skip

        assert client().project("ml/team/proj", user_id=7).access_level == 30

    @responses.activate
    def test_it_reports_no_access_when_members_all_does_not_know_the_user(self):
        responses.get(f"{BASE}/api/v4/projects/ml%2Fteam%2Fproj", json=project_body(None, None))
        responses.get(f"{BASE}/api/v4/projects/42/members/all/7", status=404,
                      json={"message": "404 Not found"})  # fmt: skip

        assert client().project("ml/team/proj", user_id=7).access_level == 0

    @responses.activate
    def test_it_returns_none_when_gitlab_answers_404(self):
        responses.get(f"{BASE}/api/v4/projects/ml%2Fteam%2Fproj", status=404,
                      json={"message": "404 Project Not Found"})  # fmt: skip

        assert client().project("ml/team/proj", user_id=7) is None

    @responses.activate
    def test_it_keeps_the_project_metadata(self):
        responses.get(f"{BASE}/api/v4/projects/42", json=project_body(30, None))

        project = client().project(42, user_id=7)

        assert project.path_with_namespace == "ml/team/proj"
        assert project.topics == ["sharinghub:aimodel"]
        assert project.web_url == f"{BASE}/ml/team/proj"


def gitlab_calls(outcome: str) -> float:
    from sharinghub_mlflow.observability import GITLAB_CALLS

    return GITLAB_CALLS.labels(outcome)._value.get()


class TestTheSendPath:
    """Every GitLab call goes through gitlab.send: one session per process, retries of GETs
    GitLab asks us to repeat, the call metric, and the circuit breaker."""

    def test_it_keeps_one_session_per_process(self):
        assert gitlab.session() is gitlab.session()

    @responses.activate
    def test_it_never_sends_one_callers_cookie_with_anothers_call(self):
        responses.get(f"{BASE}/api/v4/user", json={"id": 1, "username": "alice"},
                      headers={"Set-Cookie": "_gitlab_session=alices; Path=/"})  # fmt: skip

        client().current_user()
        gitlab.GitLabClient("glpat-other", base_url=BASE, timeout=5).current_user()

        assert "Cookie" not in responses.calls[1].request.headers

    @responses.activate
    @pytest.mark.parametrize("status", [429, 502, 503])
    def test_it_asks_again_after_a_passing_failure_waiting_as_told(self, status, monkeypatch):
        waits = []
        monkeypatch.setattr(gitlab.time, "sleep", waits.append)
        responses.get(f"{BASE}/api/v4/user", status=status, headers={"Retry-After": "1"})
        responses.get(f"{BASE}/api/v4/user", json={"id": 1, "username": "alice"})

        assert client().current_user().username == "alice"
        assert len(responses.calls) == 2
        assert waits == [1.0]

    @responses.activate
    def test_it_gives_up_after_two_retries(self, monkeypatch):
        monkeypatch.setattr(gitlab.time, "sleep", lambda seconds: None)
        responses.get(f"{BASE}/api/v4/user", status=503)

        with pytest.raises(gitlab.GitLabUnavailable):
            client().current_user()
        assert len(responses.calls) == 1 + gitlab.RETRIES

    @responses.activate
    def test_it_does_not_wait_longer_than_its_limit(self, monkeypatch):
        monkeypatch.setattr(gitlab.time, "sleep", pytest.fail)
        responses.get(f"{BASE}/api/v4/user", status=429, headers={"Retry-After": "3600"})

        with pytest.raises(gitlab.GitLabUnavailable):
            client().current_user()
        assert len(responses.calls) == 1

    @responses.activate
    def test_it_never_repeats_a_token_refresh_and_counts_it(self, settings):
        settings.GITLAB_URL = BASE
        responses.post(f"{BASE}/oauth/token", status=503)
        before = gitlab_calls("503")

        with pytest.raises(gitlab.GitLabUnavailable):
            gitlab.refresh_oauth_token("refresh")
        assert len(responses.calls) == 1
        assert gitlab_calls("503") == before + 1


class TestTheCircuitBreaker:
    @pytest.fixture
    def clock(self, monkeypatch):
        now = [1000.0]
        monkeypatch.setattr(gitlab.time, "monotonic", lambda: now[0])
        return now

    @responses.activate
    def test_it_stops_asking_a_gitlab_that_keeps_timing_out(self, settings, clock):
        settings.GITLAB_BREAKER_FAILURES = 3
        responses.get(f"{BASE}/api/v4/user", body=requests.ReadTimeout("slow"))
        for _ in range(3):
            with pytest.raises(gitlab.GitLabUnavailable):
                client().current_user()
        not_asked = gitlab_calls("not_asked")

        with pytest.raises(gitlab.GitLabUnavailable) as raised:
            client().current_user()
        assert len(responses.calls) == 3
        assert gitlab_calls("not_asked") == not_asked + 1
        assert "3 times in a row" in str(raised.value)

    @responses.activate
    def test_it_asks_again_after_the_cool_off_and_closes_on_an_answer(self, settings, clock):
        settings.GITLAB_BREAKER_FAILURES, settings.GITLAB_COOL_OFF = 2, 30
        responses.get(f"{BASE}/api/v4/user", body=requests.ConnectTimeout("down"))
        for _ in range(3):
            with pytest.raises(gitlab.GitLabUnavailable):
                client().current_user()
        responses.replace(responses.GET, f"{BASE}/api/v4/user", json={"id": 1, "username": "a"})
        clock[0] += 31

        assert client().current_user().username == "a"
        assert client().current_user().username == "a"
        assert len(responses.calls) == 2 + 2

    @responses.activate
    def test_it_does_not_count_a_fast_error_answer_as_slowness(self, settings, monkeypatch):
        monkeypatch.setattr(gitlab.time, "sleep", lambda seconds: None)
        settings.GITLAB_BREAKER_FAILURES = 1
        responses.get(f"{BASE}/api/v4/user", status=500)
        for _ in range(2):
            with pytest.raises(gitlab.GitLabUnavailable, match="answered 500"):
                client().current_user()
        assert len(responses.calls) == 2
