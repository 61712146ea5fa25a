"""Shared fixtures: a GitLab double over HTTP, the cast of users, and a live gunicorn server.

The cast, in project ml/team/churn:
- Olivia owns it; Mark maintains it; Dave is a Developer; these three can do everything.
- Gina (Guest), Paula (Planner) and Rita (Reporter) can read everything and write nothing.
- Sam is a Developer only through a group the project is shared with (GitLab reports it
  only in members/all).
- Minnie has Minimal Access on the top-level group: the project does not exist for her.
- Charlie is no member at all, and Otto is a Developer of another project, ml/other/churn.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests import testenv
from tests.api import Api, seed_project
from tests.gitlab_double import GitLabDouble, Project, User

ROOT = Path(__file__).resolve().parent.parent
# In-process tests' DATA_DIR and databases: tests/testenv.py, loaded before the settings.


@dataclass
class Cast:
    project: Project
    other_project: Project
    olivia: User
    mark: User
    dave: User
    gina: User
    paula: User
    rita: User
    sam: User
    minnie: User
    charlie: User
    otto: User


def make_cast(
    gitlab: GitLabDouble, path: str = "ml/team/churn", other: str = "ml/other/churn"
) -> Cast:
    project = gitlab.add_project(path)
    other_project = gitlab.add_project(other)
    users = {
        name: gitlab.add_user(name) for name in Cast.__dataclass_fields__ if "project" not in name
    }
    for name, level in [("olivia", 50), ("dave", 30), ("gina", 10), ("paula", 15), ("rita", 20)]:
        project.direct[users[name].id] = level
    # Mark maintains the whole `ml/team` group: inherited membership shows as group_access.
    gitlab.group_members[(project.namespace, users["mark"].id)] = 40
    project.shared[users["sam"].id] = 30
    gitlab.group_members[("ml", users["minnie"].id)] = 5
    other_project.direct[users["otto"].id] = 30
    other_project.direct[users["olivia"].id] = 50
    return Cast(project=project, other_project=other_project, **users)


@pytest.fixture(autouse=True)
def closed_gitlab_breaker():
    """Each test starts with the in-process circuit breaker closed: earlier tests' timeouts
    must not make GitLab look slow to it (projects/gitlab.py)."""
    from projects import gitlab

    gitlab.breaker.record_answer()


@pytest.fixture(autouse=True)
def empty_memo():
    """Each test starts with an empty per-process memo: earlier tests' rows are rolled back."""
    from projects import memo

    memo.clear()


@pytest.fixture(scope="session")
def gitlab() -> GitLabDouble:
    double = GitLabDouble().start()
    yield double
    double.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, what: str, limit: float = 120) -> None:
    """Poll `condition` until it holds; fail (rather than hang) once `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting, after {limit}s, for {what}")
        time.sleep(0.05)


def gunicorn_workers(master: int) -> set[int]:
    """The process ids of a gunicorn master's workers (Linux: its children)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # the server's, for its manage.py commands

    def tracking_uri(self, path: str) -> str:
        return f"{self.url}/mlflow/{path}/tracking/"

    def manage(self, *arguments: str) -> str:
        """Run a management command against this server's databases and storage; its stdout."""
        done = subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, (arguments, done.stdout, done.stderr[-3000:])
        return done.stdout


def start_live_server(
    tmp: Path, gitlab_url: str, *, workers: int = 2, **extra_env: str
) -> tuple[LiveServer, subprocess.Popen]:
    """A gunicorn server of its own: its DATA_DIR under `tmp`, and with TEST_DATABASE=postgresql
    fresh databases (tests/testenv.py), unless `extra_env` names them."""
    port = _free_port()
    data_dir = tmp / "data"
    log = tmp / "server.log"
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "GITLAB_URL": gitlab_url,
        "MEMBERSHIP_CACHE_TTL": "60",
        "DJANGO_SETTINGS_MODULE": "sharinghub_mlflow.settings",
    }
    # Never the in-process tests' databases.
    for name in ("DATABASE_URL", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI"):
        env.pop(name, None)
    if not {"DATABASE_URL", "MLFLOW_BACKEND_STORE_URI"} & extra_env.keys():
        env.update(testenv.database_env())
    env.update(extra_env)
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, log, env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).ok:
                return server, process
        except requests.RequestException:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def gunicorn_server(tmp_path_factory, gitlab) -> LiveServer:
    # Browsers log in through the double's OAuth provider (tests/sessions.py).
    server, process = start_live_server(
        tmp_path_factory.mktemp("live"), gitlab.url, **gitlab.oauth.settings
    )
    yield server
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def cast(gitlab) -> Cast:
    return make_cast(gitlab)


@pytest.fixture(scope="session")
def project_a(gunicorn_server, cast) -> tuple[Api, dict]:
    """Project ml/team/churn, seeded by its owner Olivia (see tests/api.py)."""
    api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
    return api, seed_project(api)


@pytest.fixture(scope="session")
def project_b(gunicorn_server, cast, project_a) -> tuple[Api, dict]:
    """Project ml/other/churn, seeded by Otto with the very same names as project A."""
    api = Api(gunicorn_server.tracking_uri(cast.other_project.path), cast.otto.token)
    return api, seed_project(api)
