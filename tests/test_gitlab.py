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
