"""The browser tests' Chromium: Debian's, one per test module, screenshots going to the module's
SHOTS folder; and `page`, a fresh 1400x900 context's page."""

from __future__ import annotations

import pytest


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
