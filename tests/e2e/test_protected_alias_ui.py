"""A protected alias in Chromium: a Developer who tries to set `production`
(PROTECTED_MODEL_ALIASES) through the alias editor of MLflow's UI sees the refusal, naming the
alias and who may set it, once, where it happens (the bar's notice over the editor; MLflow's own
toast of it goes: templates/banner.html), and nothing changed.

Screenshots land in /work/screens/fix-20/ when that directory's parent exists, else in
test-output/protected-alias/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.api import Api
from tests.e2e.test_browser import log_in_with_gitlab

# Chromium's behaviour; the requests behind these pages are specified on both databases
# in-process (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = (Path("/work/screens/fix-20") if Path("/work/screens").is_dir()
         else ROOT / "test-output" / "protected-alias")  # fmt: skip
REFUSAL = re.compile(
    r"Protected model alias 'production' \(PROTECTED_MODEL_ALIASES\): only Maintainers and "
    r"Owners may.*you are Developer\. Nothing was changed\."
)
# The version page's "Add" button beside "Aliases" (MLflow 3.17's component id).
ALIAS_EDITOR = (
    "codegen_mlflow_app_src_model-registry_components_aliases_modelversionviewaliaseditor.tsx_29"
)


@pytest.fixture(scope="module")
def registry(sharing_server, gitlab, cast):
    """ml/promote/churn: Dave, a Developer, registered model `churn` and its version 1."""
    project = gitlab.add_project("ml/promote/churn")
    project.direct[cast.dave.id] = 30
    api = Api(sharing_server.tracking_uri(project.path), cast.dave.token)
    experiment = api.ok("POST", "api/2.0/mlflow/experiments/create", json={"name": "train"})
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json=experiment)["run"]["info"]["run_id"]
    api.ok("POST", "api/2.0/mlflow/registered-models/create", json={"name": "churn"})
    api.ok("POST", "api/2.0/mlflow/model-versions/create",
           json={"name": "churn", "source": f"runs:/{run}/model", "run_id": run})  # fmt: skip
    return project, api


def test_it_shows_a_developer_the_refusal_to_set_a_protected_alias_once_in_the_editor(
    page, sharing_server, gitlab, cast, registry
):
    project, api = registry
    page.goto(sharing_server.tracking_uri(project.path))
    log_in_with_gitlab(page, gitlab, cast.dave)
    expect(page.locator("#sharinghub-banner")).to_contain_text("Developer")
    page.goto(sharing_server.tracking_uri(project.path) + "#/models/churn/versions/1")

    page.locator(f'[data-component-id="{ALIAS_EDITOR}"]').click()
    editor = page.get_by_role("dialog")
    editor.get_by_role("combobox").fill("production")
    page.keyboard.press("Enter")
    page.screenshot(path=str(SHOTS / "alias-editor-production.png"))
    with page.expect_response(re.compile(r"ajax-api/2\.0/mlflow/registered-models/alias")) as sent:
        editor.get_by_role("button", name="Save aliases").click()

    assert sent.value.status == 403
    notice = page.locator("#sharinghub-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(REFUSAL)
    expect(editor).to_be_visible()  # over the editor, where the refusal happened
    # Once: MLflow's toast of the same message is hidden while the notice shows it.
    expect(page.get_by_text(REFUSAL).filter(visible=True)).to_have_count(1)
    page.screenshot(path=str(SHOTS / "alias-production-refused.png"))
    version = api.ok("GET", "api/2.0/mlflow/model-versions/get",
                     params={"name": "churn", "version": "1"})["model_version"]  # fmt: skip
    assert version.get("aliases", []) == []
