"""What the end-to-end tests share: Debian's Chromium, one per test module, screenshots going
to the module's SHOTS folder, and `page`, a fresh 1400x900 context's page; and a live server
the visibility matrix (test_visibility_matrix.py) and the protected alias in the browser
(test_protected_alias_ui.py) share: each server started costs seconds."""

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


@pytest.fixture(scope="module")
def browser(request):
    from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, sync_api

    request.module.SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from tests.e2e.test_browser import TIMEOUT_MS

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()
