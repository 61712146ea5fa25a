"""Pages people only look at fail nowhere: in Chromium, as a Developer and as a Reporter, every
MLflow page (experiments, runs table and charts, a run, models, a model version, traces and the
drawer, prompts, evaluation runs, judges, settings) loads without a failed request, without an
error toast, and without offering what this server refuses; at 390 px the bar still reaches
Log out. Screenshots (1440 and 390 px) land in SCREENS (default test-output/quiet/).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.e2e.test_browser import TIMEOUT_MS, log_in_with_gitlab
from tests.e2e.test_tour import TOUR_SCRIPT, logged_by_script, refusals
from tests.sessions import log_in

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

SHOTS = Path(
    os.environ.get("SCREENS", Path(__file__).resolve().parents[2] / "test-output" / "quiet")
)
WIDE, PHONE = 1440, 390
# A page has settled once no request has been in flight for this long (Looker.settle).
QUIET_SECONDS = 0.5
SETTLE_LIMIT_SECONDS = 10

# What MLflow's UI offers that this server refuses: none of it may be visible.
REFUSED_OFFERS = [
    re.compile(r"MLflow assistant", re.I),
    re.compile(r"Prompt Engineering"),
    re.compile(r"New LLM judge", re.I),
    re.compile(r"Evaluate traces"),
    re.compile(r"demo data", re.I),
    re.compile(r"telemetry", re.I),
]
# An error MLflow's UI shows in a toast or an inline alert.
ERROR_TEXT = re.compile(r"PERMISSION_DENIED|not available on this SharingHub|INTERNAL_ERROR")
CREATOR_DAVE = re.compile(r"Creator\W*dave")


@pytest.fixture(scope="module")
def quiet(gitlab, cast):
    """ml/team/quiet: Dave is a Developer, Rita a Reporter."""
    project = gitlab.add_project("ml/team/quiet")
    project.direct[cast.dave.id] = 30
    project.direct[cast.rita.id] = 20
    return project


@pytest.fixture(scope="module")
def quiet_data(gunicorn_server, cast, quiet) -> dict:
    script = TOUR_SCRIPT.replace("tour", "quiet")
    return logged_by_script(gunicorn_server, quiet, cast.dave.token, script)


def pages(data: dict) -> list[tuple[str, str]]:
    """(name, route after #) of every page a person opens just to look."""
    experiment, run = data["experiment_id"], data["run_id"]
    return [
        ("experiments", "/experiments"),
        ("runs", f"/experiments/{experiment}/runs"),
        ("charts", f"/experiments/{experiment}/runs?compareRunsMode=CHART"),
        ("run", f"/experiments/{experiment}/runs/{run}"),
        ("models", "/models"),
        ("model-version", "/models/quiet-model/versions/1"),
        ("traces", f"/experiments/{experiment}/traces"),
        ("prompts", "/prompts"),
        ("prompt", "/prompts/quiet-prompt"),
        ("evaluation-runs", f"/experiments/{experiment}/evaluation-runs"),
        ("judges", f"/experiments/{experiment}/judges"),
        ("datasets", f"/experiments/{experiment}/datasets"),
        ("settings", "/settings/general"),
        ("home", "/"),
    ]


class Looker:
    """One browser context that records every request to the service that failed."""

    def __init__(self, browser, server, name: str, width: int):
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.server, self.name, self.width = server, name, width
        self.failed: list[str] = []
        self.page.on("response", self._record)
        self.in_flight, self.last_request = 0, time.monotonic()
        self.page.on("request", lambda _: self._count(+1))
        self.page.on("requestfinished", lambda _: self._count(-1))
        self.page.on("requestfailed", lambda _: self._count(-1))

    def _count(self, change: int) -> None:
        self.in_flight += change
        self.last_request = time.monotonic()

    def _record(self, response) -> None:
        if response.url.startswith(self.server.url) and response.status >= 400:
            path = response.url.removeprefix(self.server.url)
            self.failed.append(f"{response.status} {response.request.method} {path}")

    def url(self, project, route: str) -> str:
        return f"{self.server.url}/mlflow/{project.path}/tracking/#{route}"

    def settle(self) -> None:
        """Until no request has been in flight for QUIET_SECONDS (networkidle's rule, which
        Playwright applies to a new document only: a route after # keeps the document), at
        most SETTLE_LIMIT_SECONDS; then a moment for a toast of the last answer to show."""
        deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
        while time.monotonic() < deadline and (
            self.in_flight > 0 or time.monotonic() - self.last_request < QUIET_SECONDS
        ):
            self.page.wait_for_timeout(100)
        self.page.wait_for_timeout(300)

    def look(self, project, name: str, route: str) -> list[str]:
        """Open the page, let it settle; what it shows that it should not."""
        self.last_request = time.monotonic()
        self.page.goto(self.url(project, route))
        self.settle()
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.width}-{name}.png"))
        shown = []
        if self.page.get_by_text(ERROR_TEXT).first.is_visible():
            shown.append(f"{name}: error shown")
        for offer in REFUSED_OFFERS:
            if self.page.get_by_text(offer).first.is_visible():
                shown.append(f"{name}: offers {offer.pattern}")
        return shown


# A Delete button MLflow would offer, shown again as if this server had missed it.
MISSED_CONTROL = (
    'html body [data-component-id="mlflow.experiment_list_view.bulk_delete_button"]'
    "{ display: inline-flex !important; }"
)


def refuse_once(looker, project) -> None:
    """A Reporter is offered no Delete; a refused delete anyway is said once, and stays."""
    page = looker.page
    page.goto(looker.url(project, "/experiments"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="quiet"))
    row.get_by_role("checkbox").click()
    delete = page.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_hidden()
    page.add_style_tag(content=MISSED_CONTROL)
    delete.click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    notice = page.locator("#sharinghub-notice")
    expect(notice).to_contain_text("you are Reporter")
    page.wait_for_timeout(1500)  # MLflow's own toast, had it stayed
    page.screenshot(path=str(SHOTS / f"{looker.name}-{looker.width}-refused-once.png"))
    said = page.get_by_text(re.compile("Developer or higher can write to"))
    assert [said.nth(i).is_visible() for i in range(said.count())].count(True) == 1
    looker.failed = [line for line in looker.failed if "/experiments/delete" not in line]


def reach_every_action(looker, project, read_only: bool) -> None:
    """At 320 and 390 px the bar's actions are one tap away, the read-only state in sight."""
    page = looker.page
    banner = page.locator("#sharinghub-banner")
    for width in (320, PHONE):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(looker.url(project, "/experiments"))
        expect(banner.locator(".sh-role")).to_be_visible()
        if read_only:
            expect(banner.locator(".sh-badge")).to_be_visible()
        banner.get_by_role("button", name="Menu").click()
        for name in ("Connect from code", "All projects"):
            expect(banner.get_by_role("link", name=name)).to_be_in_viewport(ratio=1)
        expect(banner.get_by_role("button", name="Log out")).to_be_in_viewport(ratio=1)
        page.screenshot(path=str(SHOTS / f"{looker.name}-{width}-menu.png"))
        banner.get_by_role("button", name="Menu").click()
        expect(banner.get_by_role("button", name="Log out")).to_be_hidden()


# At phone size the pages make the requests they make wide: on PostgreSQL, wide is enough.
@pytest.mark.parametrize("width", [WIDE, pytest.param(PHONE, marks=pytest.mark.any_database)])
@pytest.mark.parametrize("who,role", [("dave", "Developer"), ("rita", "Reporter")])
def test_it_shows_every_page_without_a_failure_or_a_refused_offer(
    browser, gunicorn_server, gitlab, cast, quiet, quiet_data, who, role, width
):
    looker = Looker(browser, gunicorn_server, role.lower(), width)
    try:
        page = looker.page
        page.goto(f"{gunicorn_server.url}/mlflow/{quiet.path}/tracking/")
        log_in_with_gitlab(page, gitlab, getattr(cast, who))
        expect(page.locator("#sharinghub-banner")).to_contain_text(role)

        shown = [line for name, route in pages(quiet_data)
                 for line in looker.look(quiet, name, route)]  # fmt: skip

        if who == "dave":  # "New run" offers only what this server runs
            page.goto(looker.url(quiet, pages(quiet_data)[1][1]))
            page.get_by_role("button", name="New run").click()
            expect(page.get_by_role("menuitem").first).to_be_visible()
            expect(page.get_by_text("using Prompt Engineering")).to_be_hidden()
            page.keyboard.press("Escape")
        for name, url in [("portal", "/mlflow/"), ("connect", f"/mlflow/{quiet.path}/connect/")]:
            page.goto(gunicorn_server.url + url)
            page.screenshot(path=str(SHOTS / f"{looker.name}-{width}-{name}.png"), full_page=True)
            # Laid out for the window: nothing wider than it (no sideways scrolling).
            assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        if width == WIDE:  # a version's creator is who registered it: Dave's script
            page.goto(looker.url(quiet, "/models/quiet-model/versions/1"))
            expect(page.get_by_text(CREATOR_DAVE).first).to_be_visible()
            page.goto(looker.url(quiet, "/models/quiet-model"))  # its "Created by" column
            expect(page.get_by_role("row").filter(has_text="dave").first).to_be_visible()
            page.screenshot(path=str(SHOTS / f"{looker.name}-{width}-model-created-by.png"))
        if who == "rita" and width == WIDE:
            refuse_once(looker, quiet)
        if width == PHONE:
            reach_every_action(looker, quiet, read_only=who == "rita")
        problems = refusals(looker.failed, []) + shown
        assert problems == [], "\n".join(problems)
    finally:
        looker.context.close()


def stored_bytes(server) -> bytes:
    """Everything the live server's Django database holds: its SQLite files as they are on
    disk, or on PostgreSQL every row of every table."""
    url = server.env.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        files = [path for path in server.data_dir.rglob("*.sqlite3*") if path.is_file()]
        assert files, server.data_dir
        return b"".join(path.read_bytes() for path in files)
    import psycopg2

    rows = []
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT * FROM "{table}"')
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows).encode()


def test_it_keeps_no_oauth_token_of_these_logins_in_the_database(
    gunicorn_server, gitlab, cast, quiet_data
):
    """After GitLab logins (each a token pair from the GitLab double: these two, and the
    browsers' above when run together), the live server's database holds none of the tokens,
    in clear, while the sessions still read projects with them."""
    for user in (cast.dave, cast.rita):
        session = log_in(gunicorn_server.url, gitlab, user)
        assert session.get(f"{gunicorn_server.url}/mlflow/", timeout=30).status_code == 200
    tokens = [token for grant in gitlab.oauth.grants
              for token in (grant.access_token, grant.refresh_token) if token]  # fmt: skip
    stored = stored_bytes(gunicorn_server)

    assert tokens and [token for token in tokens if token.encode() in stored] == []
    assert b"sealed:" in stored


def test_it_signs_a_browser_in_with_a_gitlab_token_and_refuses_a_read_user_one(
    browser, gunicorn_server, gitlab, cast, quiet
):
    context = browser.new_context(viewport={"width": PHONE, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{gunicorn_server.url}/mlflow/login/")
        narrow = gitlab.add_token(cast.rita, ("read_user",))
        page.get_by_label(re.compile("sign in with a GitLab access token", re.I)).fill(narrow)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".messages")).to_contain_text("lacks the read_api scope")

        page.get_by_label(re.compile("sign in with a GitLab access token", re.I)).fill(
            cast.rita.token
        )
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(f'tr[data-path="{quiet.path}"]')).to_contain_text("Reporter")
        page.screenshot(path=str(SHOTS / "reporter-390-token-sign-in.png"))
    finally:
        context.close()
