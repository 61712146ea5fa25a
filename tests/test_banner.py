"""The bar on MLflow's page, in-process: a read-only role is not offered MLflow's controls
that create, change or delete; a Developer keeps them."""

from __future__ import annotations

import pytest

from mlflow_bridge.edge import browser
from tests.sessions import page_as_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def ui_page(client, gitlab, settings):
    settings.GITLAB_URL = gitlab.url

    def page_for(level: int) -> str:
        return page_as_member(client, gitlab, level, "tracking/", "bar", HTTP_ACCEPT="text/html")

    return page_for


def test_it_hides_mlflows_write_controls_from_a_reporter(ui_page):
    page = ui_page(20)

    assert "read-only" in page
    promote = "codegen_mlflow_app_src_model-registry_components_promotemodelbutton.tsx_165"
    for control in ("mlflow.experiment_list_view.bulk_delete_button", promote):
        assert f'[data-component-id="{control}"]' in page


def test_it_keeps_them_for_a_developer(ui_page):
    page = ui_page(30)

    assert not any(f'"{control}"]' in page for control in browser.WRITE_CONTROLS)
