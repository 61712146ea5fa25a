"""A person in Chromium against the live server: GitLab login, the portal, MLflow's UI under a
project (a script's run, its chart and artifact), read-only roles, the 404 page, logout.

Debian's chromium (/usr/bin/chromium, installed by .ci/run), driven by playwright. Screenshots
land in test-output/browser/ (gitignored).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from tests import warm_processes
from tests.api import Api
from tests.sessions import log_in

# Chromium's behaviour; the requests behind these pages are specified on both databases
# in-process (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium: .ci/run installs it with apt-get.")
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def forecast(gitlab, cast):
    """ml/team/forecast: Dave is a Developer, Rita a Reporter, Charlie nothing."""
    project = gitlab.add_project("ml/team/forecast")
    project.direct[cast.dave.id] = 30
    project.direct[cast.rita.id] = 20
    return project


@pytest.fixture(scope="module")
def script_run(gunicorn_server, gitlab, cast, forecast) -> dict:
    """The connect page's Python snippet, run as is with Dave's token: the experiment "forecast"
    with one run (a `loss` curve and notes.txt)."""
    session = log_in(gunicorn_server.url, gitlab, cast.dave)
    connect = session.get(f"{gunicorn_server.url}/mlflow/{forecast.path}/connect/", timeout=30)
    snippet = re.search(r'<pre id="snippet-python"><code>(.*?)</code>', connect.text, re.S)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_TOKEN"] = cast.dave.token
    done = warm_processes.run_python(["-c", html.unescape(snippet.group(1))], env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    api = Api(gunicorn_server.tracking_uri(forecast.path), cast.dave.token)
    experiment = api.ok("GET", "api/2.0/mlflow/experiments/get-by-name",
                        params={"experiment_name": "forecast"})["experiment"]  # fmt: skip
    runs = api.ok("POST", "api/2.0/mlflow/runs/search",
                  json={"experiment_ids": [experiment["experiment_id"]]})["runs"]  # fmt: skip
    return {"experiment_id": experiment["experiment_id"], "run_id": runs[0]["info"]["run_id"],
            "run_name": runs[0]["info"]["run_name"]}  # fmt: skip


def log_in_with_gitlab(page, gitlab, user) -> None:
    """On the login page: click the button; GitLab (the double) approves as `user`."""
    gitlab.oauth.login_as = user
    page.get_by_role("button", name="Log in with GitLab").click()


# MLflow's UI deleting an experiment, as its Delete button would.
DELETE_ANYWAY = """(id) => fetch("ajax-api/2.0/mlflow/experiments/delete", {method: "POST",
  headers: {"Content-Type": "application/json"}, body: JSON.stringify({experiment_id: id})})"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


class TestDeveloper:
    def test_it_logs_in_finds_a_scripts_run_with_its_chart_and_artifact_and_logs_out(
        self, page, gunicorn_server, gitlab, cast, forecast, script_run
    ):
        page.goto(f"{gunicorn_server.url}/mlflow/")
        expect(page).to_have_url(re.compile(r"/mlflow/login/\?next=/mlflow/$"))
        shot(page, "login")
        log_in_with_gitlab(page, gitlab, cast.dave)

        row = page.locator(f'tr[data-path="{forecast.path}"]')
        expect(row).to_contain_text("Developer")
        # experiments (the script's; the empty Default is not data), runs, models
        expect(row).to_contain_text(re.compile(r"\b1\s+1\s+0\b"))
        shot(page, "portal")

        row.get_by_role("link", name="Connect").click()
        expect(page.locator("#snippet-python")).to_contain_text('set_experiment("forecast")')
        shot(page, "connect")

        page.go_back()
        page.locator(f'tr[data-path="{forecast.path}"] a.project-link').click()
        banner = page.locator("#sharinghub-banner")
        expect(banner).to_contain_text(forecast.path)
        expect(banner).to_contain_text("Developer")
        expect(banner.locator(".sh-badge")).to_have_count(0)
        expect(page.get_by_role("link", name="forecast", exact=True)).to_be_visible()
        shot(page, "project-ui")

        page.get_by_text("Model training", exact=True).click()
        page.get_by_role("link", name="forecast", exact=True).click()
        page.get_by_role("link", name=script_run["run_name"]).click()
        page.get_by_role("tab", name="Model metrics").click()
        expect(page.get_by_text("loss", exact=True).first).to_be_visible()
        expect(page.locator(".js-plotly-plot .scatterlayer .trace").first).to_be_visible()
        shot(page, "run-metrics")
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("notes.txt", exact=True).first.click()
        expect(page.get_by_text("Logged from the SharingHub snippet.")).to_be_visible()
        shot(page, "run-artifact")

        banner.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/mlflow/login/$"))
        expect(page.locator(".messages")).to_contain_text("You are logged out")
        page.goto(f"{gunicorn_server.url}/mlflow/{forecast.path}/tracking/")
        expect(page).to_have_url(re.compile(r"/mlflow/login/\?next="))

    def test_it_keeps_the_ui_on_the_projects_workspace_whatever_a_stale_value_says(
        self, page, gunicorn_server, gitlab, cast, forecast, script_run
    ):
        page.add_init_script("window.localStorage.setItem('mlflow.activeWorkspace', 'p-999999')")
        page.goto(f"{gunicorn_server.url}/mlflow/{forecast.path}/tracking/"
                  "#/experiments?workspace=p-999999")  # fmt: skip
        log_in_with_gitlab(page, gitlab, cast.dave)

        expect(page.get_by_role("link", name="forecast", exact=True)).to_be_visible()
        expect(page).to_have_url(re.compile(rf"workspace=p-{forecast.id}\b"))
        assert page.evaluate("localStorage.getItem('mlflow.activeWorkspace')") == (
            f"p-{forecast.id}"
        )
        expect(page.get_by_role("link", name="seeded", exact=True)).to_have_count(0)


class TestOthers:
    def test_it_shows_a_reporter_the_read_only_badge_and_refuses_a_delete(
        self, page, gunicorn_server, gitlab, cast, forecast, script_run
    ):
        page.goto(f"{gunicorn_server.url}/mlflow/{forecast.path}/tracking/")
        log_in_with_gitlab(page, gitlab, cast.rita)
        banner = page.locator("#sharinghub-banner")
        expect(banner).to_contain_text("Reporter")
        expect(banner.locator(".sh-badge")).to_have_text("read-only")

        row = page.get_by_role("row").filter(has=page.get_by_role("link", name="forecast"))
        row.get_by_role("checkbox").click()
        # Not offered to a Reporter; a delete sent anyway (a control MLflow adds later) is refused.
        expect(page.get_by_role("button", name="Delete", exact=True)).to_be_hidden()
        page.evaluate(DELETE_ANYWAY, script_run["experiment_id"])

        expect(page.get_by_text(re.compile("Developer or higher can write to .*you are Reporter"))
               .first).to_be_visible()  # fmt: skip
        shot(page, "reporter-refused-delete")
        experiment = Api(gunicorn_server.tracking_uri(forecast.path), cast.dave.token).ok(
            "GET", "api/2.0/mlflow/experiments/get",
            params={"experiment_id": script_run["experiment_id"]},
        )  # fmt: skip
        assert experiment["experiment"]["lifecycle_stage"] == "active"

    def test_it_shows_a_non_member_the_404_page(
        self, page, gunicorn_server, gitlab, cast, forecast
    ):
        page.goto(f"{gunicorn_server.url}/mlflow/{forecast.path}/tracking/")
        log_in_with_gitlab(page, gitlab, cast.charlie)

        expect(page.get_by_role("heading", name="Project not found")).to_be_visible()
        shot(page, "not-found")
        missing = page.request.get(f"{gunicorn_server.url}/mlflow/ml/team/nothing/tracking/",
                                   headers={"Accept": "text/html"})  # fmt: skip
        assert missing.status == 404 and "Project not found" in missing.text()

    def test_it_brings_a_logged_out_visitor_back_to_the_run_asked_for(
        self, page, gunicorn_server, gitlab, cast, forecast, script_run
    ):
        run_page = (f"/mlflow/{forecast.path}/tracking/#/experiments/"
                    f"{script_run['experiment_id']}/runs/{script_run['run_id']}")  # fmt: skip
        page.goto(gunicorn_server.url + run_page)
        expect(page.get_by_role("button", name="Log in with GitLab")).to_be_visible()

        log_in_with_gitlab(page, gitlab, cast.rita)

        expect(page).to_have_url(re.compile(re.escape(script_run["run_id"])))
        expect(page.get_by_role("heading", name=script_run["run_name"])).to_be_visible()
        shot(page, "back-to-the-run")
