"""The GitLab calls behind browser login: refreshing an OAuth token, listing a user's projects."""

import pytest
import requests
import responses

from projects import gitlab

BASE = "https://gitlab.example.com"
LIST = f"{BASE}/api/v4/projects"


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    settings.GITLAB_OAUTH_CLIENT_ID = "app-id"
    settings.GITLAB_OAUTH_CLIENT_SECRET = "app-secret"


def listed(project_id: int, level: int | None) -> dict:
    access = {"access_level": level, "notification_level": 3} if level else None
    return {"id": project_id, "path_with_namespace": f"ml/p{project_id}",
            "name": f"p{project_id}", "topics": ["t"],
            "permissions": {"project_access": access, "group_access": None}}  # fmt: skip


class TestRefreshOAuthToken:
    @responses.activate
    def test_it_trades_the_refresh_token_for_a_new_pair(self):
        responses.post(f"{BASE}/oauth/token", json={
            "access_token": "new-access", "token_type": "Bearer", "expires_in": 7200,
            "refresh_token": "new-refresh", "scope": "read_api",
            "created_at": 1607635748})  # fmt: skip

        token = gitlab.refresh_oauth_token("old-refresh")

        assert token == gitlab.OAuthToken("new-access", "new-refresh", 7200, 1607635748)
        sent = dict(p.split("=") for p in responses.calls[0].request.body.split("&"))
        assert sent == {"grant_type": "refresh_token", "refresh_token": "old-refresh",
                        "client_id": "app-id", "client_secret": "app-secret"}  # fmt: skip

    @responses.activate
    @pytest.mark.parametrize("status", [400, 401])
    def test_it_raises_token_rejected_when_gitlab_refuses_the_refresh_token(self, status):
        responses.post(f"{BASE}/oauth/token", status=status,
                       json={"error": "invalid_grant", "error_description": "revoked"})  # fmt: skip

        with pytest.raises(gitlab.TokenRejected):
            gitlab.refresh_oauth_token("used-already")

    @responses.activate
    @pytest.mark.parametrize(
        "answer",
        [{"status": 503}, {"status": 429}, {"body": requests.ConnectionError("refused")},
         {"status": 200, "json": {"token_type": "Bearer"}}],
        ids=["5xx", "rate-limited", "unreachable", "no-token-in-answer"],
    )  # fmt: skip
    def test_it_raises_unavailable_when_gitlab_cannot_answer(self, answer):
        responses.post(f"{BASE}/oauth/token", **answer)

        with pytest.raises(gitlab.GitLabUnavailable):
            gitlab.refresh_oauth_token("refresh")


class TestMemberProjects:
    @responses.activate
    def test_it_follows_keyset_pages_to_the_end(self):
        responses.get(LIST, json=[listed(1, 30), listed(2, 20)],
                      headers={"Link": f'<{LIST}?id_after=2&page2=1>; rel="next"'},
                      match=[responses.matchers.query_param_matcher(
                          {"membership": "true", "min_access_level": "10", "order_by": "id",
                           "sort": "asc", "pagination": "keyset", "per_page": "100"})])  # fmt: skip
        responses.get(LIST, json=[listed(3, 10)],
                      match=[responses.matchers.query_param_matcher(
                          {"id_after": "2", "page2": "1"})])  # fmt: skip

        projects = gitlab.GitLabClient("t", timeout=5).member_projects(user_id=7)

        assert [(p.id, p.access_level, p.topics) for p in projects] == [
            (1, 30, ["t"]), (2, 20, ["t"]), (3, 10, ["t"])]  # fmt: skip

    @responses.activate
    def test_it_asks_members_all_for_levels_gitlab_hides_in_the_list(self):
        responses.get(LIST, json=[listed(5, None)])  # access through a shared group
        responses.get(f"{BASE}/api/v4/projects/5/members/all/7", json={"access_level": 30})

        (project,) = gitlab.GitLabClient("t", timeout=5).member_projects(user_id=7)

        assert project.access_level == 30

    @responses.activate
    def test_it_raises_token_rejected_for_a_token_gitlab_does_not_know(self):
        responses.get(LIST, status=401, json={"message": "401 Unauthorized"})

        with pytest.raises(gitlab.TokenRejected):
            gitlab.GitLabClient("t", timeout=5).member_projects(user_id=7)
