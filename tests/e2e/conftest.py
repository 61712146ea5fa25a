"""A live server the visibility matrix (test_visibility_matrix.py) and the protected alias in
the browser (test_protected_alias_ui.py) share: each server started costs seconds."""

from __future__ import annotations

import pytest

from tests.live import LiveServer, start_live_server, stop

# Short enough that a change in GitLab shows within a test's bounded wait.
SHORT_TTL = 2


@pytest.fixture(scope="session")
def sharing_server(tmp_path_factory, gitlab) -> LiveServer:
    """Anonymous reads (an administrator's GITLAB_SERVICE_TOKEN), browser logins through the
    double's OAuth provider, `production` a protected alias, GitLab's answers kept SHORT_TTL
    seconds. Every request comes from 127.0.0.1: the per-address throttles, whose limits are
    not tested here, are raised out of the way."""
    root = gitlab.add_user("sharing-root", admin=True)
    server, process = start_live_server(
        tmp_path_factory.mktemp("sharing"), gitlab.url, workers=1,
        GITLAB_SERVICE_TOKEN=root.token, PROTECTED_MODEL_ALIASES="production",
        MEMBERSHIP_CACHE_TTL=str(SHORT_TTL), MEMBERSHIP_NEGATIVE_CACHE_TTL=str(SHORT_TTL),
        MEMBERSHIP_MEMO_TTL="1", THROTTLE_ANONYMOUS_PER_ADDRESS="100000/min",
        THROTTLE_GITLAB_LOOKUPS_PER_ADDRESS="100000/min", THROTTLE_GITLAB_LOOKUPS="100000/min",
        THROTTLE_FAILED_AUTHENTICATIONS_PER_ADDRESS="100000/min", **gitlab.oauth.settings,
    )  # fmt: skip
    yield server
    stop(process)
