"""A tour of every page a person uses, in Chromium, as a Developer, a Reporter and an outsider.

The portal, the connect page, MLflow's experiments, a run's charts and artifacts, models, a
trace in its drawer, prompts, and the admin's membership list. On every MLflow page nothing
of MLflow's UI lies under SharingHub's bar; on every page no request to the service fails
except the deliberate refusals each test names. Screenshots land in test-output/tour/
(gitignored).

The tour runs on the shared live server, in whose database it creates the admin's staff user.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests import warm_processes
from tests.e2e.test_browser import (
    DELETE_ANYWAY,
    TIMEOUT_MS,
    log_in_with_gitlab,
)

# Chromium's behaviour; the requests behind these pages are specified on both databases
# in-process (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "tour"
ADMIN_PASSWORD = "tour-admin-password"
WINDOW_SIZES = [(1400, 900), (1024, 700), (1920, 1080)]

TOUR_SCRIPT = """
import mlflow
from sklearn.linear_model import LogisticRegression

mlflow.set_experiment("tour")
with mlflow.start_run(run_name="tour-run") as run:
    mlflow.log_param("alpha", 0.5)
    for step in range(20):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_text("Logged on the tour.", "notes.txt")
    model = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    # Requirements named: MLflow would infer them in a Python process of its own, seconds of
    # CPU, for pages that show a model, not how its requirements were found (tests/e2e/train.py).
    mlflow.sklearn.log_model(model, name="model", registered_model_name="tour-model",
                             pip_requirements=["scikit-learn"])


@mlflow.trace
def double(x: int) -> int:
    return 2 * x


double(21)
mlflow.flush_trace_async_logging()
mlflow.genai.register_prompt("tour-prompt", template="Summarise {{text}} in one line.")
print(run.info.experiment_id, run.info.run_id, mlflow.get_last_active_trace_id())
"""

# Every element of MLflow's page at the bar's place, found with the bar made invisible.
UNDER_THE_BAR = """() => {
  const bar = document.getElementById("sharinghub-banner");
  const height = bar.getBoundingClientRect().height;
  bar.style.visibility = "hidden";
  const found = new Set();
  for (let x = 1; x < window.innerWidth; x += 8) {
    for (let y = 1; y < height; y += 4) {
      const element = document.elementFromPoint(x, y);
      if (element && element !== document.documentElement) {
        found.add(element.tagName + "." + element.className);
      }
    }
  }
  bar.style.visibility = "";
  return [...found];
}"""

# Where MLflow's page ends once scrolled to its end (then scrolled back); with a drawer or
# dialog open, where that ends (the page behind it may be locked, as in a bare MLflow).
SCROLLED_TO_THE_END = """() => {
  const dialog = [...document.querySelectorAll("[role=dialog]")].find((d) => d.offsetParent);
  if (dialog) { return dialog.getBoundingClientRect().bottom; }
  document.body.scrollTop = document.body.scrollHeight;
  const bottom = document.getElementById("root").getBoundingClientRect().bottom;
  document.body.scrollTop = 0;
  return bottom;
}"""


@pytest.fixture(scope="module")
def server(gunicorn_server):
    """The shared live server, with a staff user `tour-admin` in its database."""
    gunicorn_server.manage("createsuperuser", "--noinput", "--username", "tour-admin",
                           "--email", "admin@example.com",
                           DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD)  # fmt: skip
    return gunicorn_server


@pytest.fixture(scope="module")
def tour(gitlab, cast):
    """ml/team/tour: Dave is a Developer, Rita a Reporter, Charlie nothing."""
    project = gitlab.add_project("ml/team/tour")
    project.direct[cast.dave.id] = 30
    project.direct[cast.rita.id] = 20
    return project


def logged_by_script(server, project, token: str, script: str = TOUR_SCRIPT, **env: str) -> dict:
    """The ids of what `script` (the tour's, by default) logs in `project` with the stock
    client and `token`, run with `env` added to a clean environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environ.update({"MLFLOW_TRACKING_URI": server.tracking_uri(project.path),
                    "MLFLOW_TRACKING_TOKEN": token, **env})  # fmt: skip
    done = warm_processes.run_python(["-c", script], environ, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    experiment_id, run_id, trace_id = done.stdout.strip().splitlines()[-1].split()
    return {"experiment_id": experiment_id, "run_id": run_id, "trace_id": trace_id}


@pytest.fixture(scope="module")
def tour_data(server, cast, tour) -> dict:
    """What the stock client logs as Dave, on a machine where it believes it is root."""
    return logged_by_script(server, tour, cast.dave.token, LOGNAME="root", USER="root")


class Visitor:
    """One browser context, and every request to the service that failed in it."""

    def __init__(self, browser, server, name: str):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.server = server
        self.name = name
        self.failed: list[str] = []
        self.page.on("response", self._record)

    def _record(self, response) -> None:
        if response.url.startswith(self.server.url) and response.status >= 400:
            path = response.url.removeprefix(self.server.url).split("?")[0]
            self.failed.append(f"{response.status} {response.request.method} {path}")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{name}.png"))

    def nothing_under_the_bar(self, name: str) -> None:
        for width, height in WINDOW_SIZES:
            self.page.set_viewport_size({"width": width, "height": height})
            if (width, height) != WINDOW_SIZES[0]:
                self.shot(f"{name.replace(' ', '-')}-{width}x{height}")
            assert self.page.evaluate(UNDER_THE_BAR) == [], f"{name} at {width}x{height}"
            # ... and all of MLflow's page can be seen: it fits below the bar, or scrolls there.
            bottom = self.page.evaluate(SCROLLED_TO_THE_END)
            assert bottom <= height, f"{name} at {width}x{height} ends at {bottom}"
            # ... and fills the window: no blank band below it (a drawer once shrank it).
            filled = self.page.evaluate("document.body.getBoundingClientRect().bottom")
            assert filled >= height - 1, f"{name} at {width}x{height} stops at {filled}"
        self.page.set_viewport_size({"width": 1400, "height": 900})

    def ui(self, tour, route: str = "") -> str:
        return f"{self.server.url}/mlflow/{tour.path}/tracking/{route}"


@pytest.fixture
def visitor(browser, server, request):
    made: list[Visitor] = []

    def make(name: str) -> Visitor:
        made.append(Visitor(browser, server, name))
        return made[-1]

    yield make
    for one in made:
        one.context.close()


# MLflow's UI probes for MLflow's auth plugin on every page; like a bare `mlflow server`
# without it, this server answers 404 (GitLab decides access here, not the plugin).
AUTH_PLUGIN_PROBE = r"404 GET /mlflow/.*/tracking/ajax-api/2\.0/mlflow/users/current"


def refusals(failed: list[str], allowed: list[str]) -> list[str]:
    """The failed requests that are not among the deliberate refusals `allowed` (regexes)."""
    allowed = [AUTH_PLUGIN_PROBE, *allowed]
    return [line for line in failed if not any(re.fullmatch(a, line) for a in allowed)]


class TestDeveloper:
    def test_it_tours_every_page_without_a_failed_request_or_anything_under_the_bar(
        self, visitor, server, gitlab, cast, tour, tour_data
    ):
        dave = visitor("developer")
        page = dave.page
        page.goto(f"{server.url}/mlflow/")
        log_in_with_gitlab(page, gitlab, cast.dave)
        row = page.locator(f'tr[data-path="{tour.path}"]')
        expect(row).to_contain_text("Developer")
        dave.shot("portal")

        row.get_by_role("link", name="Connect").click()
        expect(page.locator("#snippet-python")).to_contain_text('set_experiment("tour")')
        dave.shot("connect")

        page.goto(dave.ui(tour))
        expect(page.get_by_role("link", name="tour", exact=True)).to_be_visible()
        expect(page.get_by_text("Welcome to MLflow Assistant")).to_have_count(0)
        expect(page.get_by_text(f"p-{tour.id}", exact=True)).to_be_hidden()
        for refused in ("AI Gateway", "MCP registry"):
            expect(page.get_by_role("link", name=re.compile(refused))).to_have_count(0)
        dave.nothing_under_the_bar("experiments")
        dave.shot("experiments")

        experiment, run = tour_data["experiment_id"], tour_data["run_id"]
        page.goto(dave.ui(tour, f"#/experiments/{experiment}/runs/{run}"))
        expect(page.get_by_role("heading", name="tour-run")).to_be_visible()
        # The script ran as "root" and said so: the run is signed by its GitLab user.
        expect(page.get_by_role("link", name="dave", exact=True).first).to_be_visible()
        expect(page.get_by_text("root", exact=True)).to_have_count(0)
        dave.shot("run-overview")
        page.get_by_role("tab", name="Model metrics").click()
        expect(page.locator(".js-plotly-plot .scatterlayer .trace").first).to_be_visible()
        dave.nothing_under_the_bar("run charts")
        dave.shot("run-charts")
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("notes.txt", exact=True).first.click()
        expect(page.get_by_text("Logged on the tour.")).to_be_visible()
        dave.shot("run-artifacts")

        page.goto(dave.ui(tour, "#/models"))
        expect(page.get_by_role("link", name="tour-model")).to_be_visible()
        dave.nothing_under_the_bar("models")
        dave.shot("models")
        page.keyboard.press("Escape")  # MLflow's own "new model registry UI" announcement
        page.get_by_role("link", name="tour-model").click()
        expect(page.get_by_role("link", name="Version 1")).to_be_visible()
        dave.nothing_under_the_bar("model")
        dave.shot("model")

        page.goto(dave.ui(tour, f"#/experiments/{experiment}/traces"))
        page.get_by_text('{"x": 21}').first.click()
        drawer = page.get_by_role("dialog")
        expect(drawer.get_by_role("button", name=tour_data["trace_id"][3:11])).to_be_visible()
        expect(drawer.get_by_role("button", name="Close trace panel")).to_be_visible()
        dave.nothing_under_the_bar("trace drawer")
        dave.shot("trace-drawer")
        page.keyboard.press("Escape")

        page.goto(dave.ui(tour, "#/prompts"))
        expect(page.get_by_role("link", name="tour-prompt")).to_be_visible()
        dave.nothing_under_the_bar("prompts")
        dave.shot("prompts")

        page.goto(dave.ui(tour, "#/"))
        expect(page.get_by_role("heading", name=re.compile("Welcome to MLflow"))).to_be_visible()
        expect(page.get_by_role("button", name=re.compile("demo", re.I))).to_have_count(0)
        expect(page.get_by_text("Create new workspace")).to_have_count(0)
        expect(page.get_by_text("New to MLflow?")).to_be_hidden()
        expect(page.get_by_role("link", name=re.compile("AI Gateway"))).to_have_count(0)
        dave.shot("home")

        page.goto(dave.ui(tour, "#/settings/general"))
        expect(page.get_by_role("heading", name="Theme preference")).to_be_visible()
        expect(page.get_by_text("Enable telemetry")).to_be_hidden()
        dave.shot("settings")

        assert refusals(dave.failed, []) == []


class TestReporter:
    def test_it_explains_read_only_before_a_click_and_keeps_the_refusal_readable(
        self, visitor, server, gitlab, cast, tour, tour_data
    ):
        rita = visitor("reporter")
        page = rita.page
        page.goto(rita.ui(tour))
        log_in_with_gitlab(page, gitlab, cast.rita)
        banner = page.locator("#sharinghub-banner")
        expect(banner.locator(".sh-badge")).to_have_text("read-only")
        expect(banner.locator(".sh-readonly")).to_be_visible()
        expect(banner.locator(".sh-readonly")).to_contain_text(
            "only Developer or higher can create, change or delete"
        )
        rita.nothing_under_the_bar("experiments")
        rita.shot("experiments")

        row = page.get_by_role("row").filter(has=page.get_by_role("link", name="tour"))
        row.get_by_role("checkbox").click()
        expect(page.get_by_role("button", name="Delete", exact=True)).to_be_hidden()
        page.evaluate(DELETE_ANYWAY, tour_data["experiment_id"])

        notice = page.locator("#sharinghub-notice")
        expect(notice).to_contain_text(f"Developer or higher can write to {tour.path}")
        expect(notice).to_contain_text("you are Reporter")
        rita.shot("refused-delete")
        notice.get_by_role("button", name="Dismiss").click()
        expect(notice).to_be_hidden()

        page.goto(rita.ui(tour, f"#/experiments/{tour_data['experiment_id']}/traces"))
        page.get_by_text('{"x": 21}').first.click()
        drawer = page.get_by_role("dialog")
        expect(drawer.get_by_role("button", name="Close trace panel")).to_be_visible()
        rita.nothing_under_the_bar("trace drawer")
        rita.shot("trace-drawer")

        assert refusals(rita.failed, [r"403 POST .*/ajax-api/2\.0/mlflow/experiments/delete"]) == []


class TestOutsider:
    def test_it_sees_the_same_not_found_page_for_the_ui_and_the_connect_page(
        self, visitor, server, gitlab, cast, tour
    ):
        charlie = visitor("outsider")
        page = charlie.page
        page.goto(f"{server.url}/mlflow/")
        log_in_with_gitlab(page, gitlab, cast.charlie)
        expect(page.locator(f'tr[data-path="{tour.path}"]')).to_have_count(0)
        charlie.shot("portal")

        page.goto(charlie.ui(tour))
        expect(page.get_by_role("heading", name="Project not found")).to_be_visible()
        charlie.shot("tracking")
        page.goto(f"{server.url}/mlflow/{tour.path}/connect/")
        expect(page.get_by_role("heading", name="Project not found")).to_be_visible()
        charlie.shot("connect")

        not_found = rf"404 GET /mlflow/{re.escape(tour.path)}/(tracking|connect)/"
        assert refusals(charlie.failed, [not_found]) == []


class TestAdmin:
    def test_it_lists_memberships_read_only_with_its_styles(
        self, visitor, server, cast, tour, tour_data
    ):
        admin = visitor("admin")
        page = admin.page
        stylesheets: list[int] = []
        page.on(
            "response", lambda r: stylesheets.append(r.status) if r.url.endswith(".css") else None
        )
        page.goto(f"{server.url}/admin/projects/membership/")
        page.get_by_label("Username").fill("tour-admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()

        expect(page.get_by_role("heading", name="Select membership to view")).to_be_visible()
        expect(page.locator("#result_list")).to_contain_text("dave")
        expect(page.get_by_role("link", name=re.compile("Add membership"))).to_have_count(0)
        assert stylesheets and set(stylesheets) == {200}
        # The admin's stylesheet applies: its header has the admin's colours, not the default.
        assert page.evaluate(
            "getComputedStyle(document.getElementById('header')).backgroundColor"
        ) not in ("rgba(0, 0, 0, 0)", "transparent")
        admin.shot("memberships")

        assert refusals(admin.failed, []) == []
