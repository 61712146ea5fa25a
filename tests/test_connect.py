"""The connect page in-process: snippets a shell accepts as pasted, and for a read-only role
a snippet that reads instead of one that would be refused."""

from __future__ import annotations

import html
import re
import subprocess

import pytest

from tests.sessions import page_as_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def connect_page(client, gitlab, settings):
    settings.GITLAB_URL = gitlab.url

    def page_for(level: int) -> str:
        return page_as_member(client, gitlab, level, "connect/", "connect")

    return page_for


def snippet(page: str, name: str) -> str:
    found = re.search(rf'<pre id="snippet-{name}"><code>(.*?)</code>', page, re.S)
    return html.unescape(found.group(1))


def test_its_environment_block_is_valid_shell_as_pasted(connect_page):
    block = snippet(connect_page(30), "env")

    checked = subprocess.run(["sh", "-n", "-c", block], capture_output=True, text=True)

    assert checked.returncode == 0, checked.stderr
    assert "export MLFLOW_TRACKING_TOKEN=" in block


def test_it_gives_a_developer_a_training_snippet(connect_page):
    python = snippet(connect_page(30), "python")

    assert "mlflow.start_run()" in python and "log_metric" in python


def test_it_gives_a_reporter_a_reading_snippet(connect_page):
    page = connect_page(20)
    python = snippet(page, "python")

    assert "mlflow.search_runs(" in python and "models:/" in python
    assert "start_run" not in python and "log_" not in python
    assert "start_run" not in snippet(page, "ci") and "read-only" in page
    compile(python, "snippet", "exec")
