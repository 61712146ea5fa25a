"""Browser sessions without a browser: the GitLab login, followed the way a browser does."""

from __future__ import annotations

import itertools
import re
import time

import requests

from tests.gitlab_double import GitLabDouble, User


def login_form(page: str) -> dict[str, str]:
    """The hidden fields and action of the login page's "Log in with GitLab" form."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    action = re.search(r'<form id="login-form" method="post" action="([^"]+)"', page)
    assert action, page[:2000]
    return {"action": action.group(1), **fields}


def log_in(
    server_url: str, gitlab: GitLabDouble, user: User, next_url: str = ""
) -> requests.Session:
    """A session logged in as `user` through the login page and GitLab's OAuth dance.

    It stops at the page the login sends back to (not followed), so no page is loaded that
    could already use the new token.
    """
    session = requests.Session()
    session.headers["Accept"] = "text/html"
    query = {"next": next_url} if next_url else {}
    page = session.get(f"{server_url}/mlflow/login/", params=query, timeout=30)
    assert page.status_code == 200, page.text[:500]
    form = login_form(page.text)
    gitlab.oauth.login_as = user
    response = session.post(
        server_url + form.pop("action"),
        data=form,
        headers={"Origin": server_url, "Referer": page.url},
        allow_redirects=False,
        timeout=30,
    )
    # begin -> GitLab's authorize -> complete -> the page asked for.
    for _ in range(2):
        assert response.status_code == 302, (response.status_code, response.text[:500])
        response = session.get(response.headers["Location"], allow_redirects=False, timeout=30)
    assert response.status_code == 302, (response.status_code, response.text[:500])
    session.landed_on = response.headers["Location"]
    return session


def due_for_refresh(server, gitlab: GitLabDouble, user: User) -> requests.Session:
    """A session at `server` (live or in-process) whose GitLab token enters the refresh margin
    two seconds after login."""
    from projects.oauth import REFRESH_MARGIN

    gitlab.oauth.token_lifetime = int(REFRESH_MARGIN.total_seconds()) + 2
    try:
        session = log_in(server.url, gitlab, user, next_url="/healthz")
    finally:
        gitlab.oauth.token_lifetime = 7200
    session.headers["Accept"] = "application/json"
    time.sleep(3)
    return session


def logged_in_client(client, gitlab_id: int = 7, username: str = "dave", token: str = "oauth-dave"):
    """Django's test client logged in as a GitLab user whose OAuth token is fresh."""
    from django.contrib.auth import get_user_model
    from social_django.models import UserSocialAuth

    user = get_user_model().objects.create(username=username)
    UserSocialAuth.objects.create(user=user, provider="gitlab", uid=str(gitlab_id), extra_data={
        "access_token": token, "refresh_token": f"refresh-{token}", "expires_in": 7200,
        "auth_time": int(time.time()), "token_type": "Bearer"})  # fmt: skip
    client.force_login(user, backend="social_core.backends.gitlab.GitLabOAuth2")
    return client


_members = itertools.count()


def page_as_member(client, gitlab: GitLabDouble, level: int, page: str, prefix: str, **headers):
    """The HTML of a project's `page` ("tracking/", "connect/"), for a browser logged in as a new
    user `<prefix>-<n>` holding `level` in a new project `<prefix>/team/p<id>`."""
    user = gitlab.add_user(f"{prefix}-{next(_members)}")
    project = gitlab.add_project(f"{prefix}/team/p{user.id}")
    project.direct[user.id] = level
    browser = logged_in_client(client, user.id, user.username, gitlab.oauth.issue(user))
    response = browser.get(f"/mlflow/{project.path}/{page}", **headers)
    assert response.status_code == 200
    return response.content.decode()
