"""A wrong setting is reported by `manage.py serve` before it accepts requests, naming the
setting to fix: it refuses to start without its databases or a writable artifact destination
(it could not serve anything), and warns about a GitLab it cannot reach (GitLab may come up
later, and members with a recent membership can work meanwhile)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, free_port

SECRET = "pw-never-shown"


def serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "MLFLOW_BACKEND_STORE_URI")}  # fmt: skip
    env.update(DATA_DIR=str(tmp_path / "data"), GITLAB_URL="http://127.0.0.1:9",
               DJANGO_SETTINGS_MODULE="sharinghub_mlflow.settings", **settings)  # fmt: skip
    return subprocess.run(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def nothing_listens() -> str:
    return f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/sharinghub"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("DATABASE_URL", nothing_listens, id="django-database"),
        pytest.param("MLFLOW_BACKEND_STORE_URI", nothing_listens, id="mlflow-database"),
        pytest.param("MLFLOW_ARTIFACTS_DESTINATION", None, id="artifact-destination"),
    ],
)
def test_it_refuses_to_start_naming_the_setting_to_fix(tmp_path, setting, value):
    if value is None:  # below a file: no directory can be made there, not even by root
        (tmp_path / "a-file").write_text("")
        value = lambda: str(tmp_path / "a-file" / "artifacts")  # noqa: E731

    done = serve(tmp_path, **{setting: value()})

    assert done.returncode != 0
    assert f"Cannot serve:\n  {setting}" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert "Serving on" not in done.stdout


def test_it_starts_with_an_unreachable_gitlab_and_says_which_setting(server_without_gitlab):
    alive = requests.get(f"{server_without_gitlab.url}/healthz", timeout=10)

    assert alive.status_code == 200
    log = server_without_gitlab.log.read_text()
    assert "WARNING: GitLab at http://127.0.0.1:9 unreachable" in log
    assert "check GITLAB_URL" in log
