"""Shared fixtures: the GitLab double, the cast (tests/cast.py), the service in-process
(tests/inprocess.py) and one live gunicorn server (tests/live.py).

Behaviour tests run in-process through `site` (Django's request handler behind `requests`);
only what needs a real server (streaming, chunked bodies, gunicorn's own refusals, workers,
replicas, S3, the stock client, the browser) uses `gunicorn_server` or a server of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings

from tests.api import Api, seed_project
from tests.cast import Cast, make_cast
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Site, site_settings
from tests.live import (  # noqa: F401 - also imported from here by older test files
    ROOT,
    LiveServer,
    free_port,
    gunicorn_workers,
    start_live_server,
    stop,
    wait_until,
)

_free_port = free_port  # the name older test files import

# In-process tests' DATA_DIR and databases: tests/testenv.py, loaded before the settings.


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


# Threads in which the stock client finishes a call after it returned (mlflow/tracking/
# client.py: a new prompt's link to its experiment), by the start of their names. Other
# threads a test leaves (executors of MLflow's async logging, say) live on by design.
STOCK_CLIENT_THREADS = ("link_prompt_to_experiment_thread",)


@pytest.fixture(autouse=True)
def finished_client_threads() -> Iterator[None]:
    """Each test ends with the stock client's calls it started: they must not reach a live
    server during the next test (tests/test_gitlab_calls.py counts GitLab's calls)."""
    running = set(threading.enumerate())
    yield
    join_client_threads_started_since(running)


def join_client_threads_started_since(running: set[threading.Thread]) -> None:
    for thread in set(threading.enumerate()) - running:
        if thread.name.startswith(STOCK_CLIENT_THREADS):
            thread.join(timeout=60)


@pytest.fixture(scope="session")
def gitlab() -> GitLabDouble:
    double = GitLabDouble().start()
    yield double
    double.stop()


@pytest.fixture(scope="session")
def cast(gitlab) -> Cast:
    return make_cast(gitlab)


# --- pytest-xdist --------------------------------------------------------------------------
# Test files that share a server of the session, by the server: `make test` (--dist loadfile)
# runs them on one xdist worker, which starts it once, instead of once per worker.
FILES_SHARING_A_SERVER = {
    "server_without_gitlab": ("tests/test_outage.py", "tests/faults/test_misconfiguration.py"),
    "sharing_server": ("tests/e2e/test_visibility_matrix.py",
                       "tests/e2e/test_protected_alias_ui.py"),
}  # fmt: skip
_SERVER_OF_FILE = {file: server for server, files in FILES_SHARING_A_SERVER.items()
                   for file in files}  # fmt: skip


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: none without it (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class ByFileOrSharedServer(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return _SERVER_OF_FILE.get(file, file)

    if config.getoption("dist") == "loadfile":
        return ByFileOrSharedServer(config, log)
    return None


# --- in-process ----------------------------------------------------------------------------
@pytest.fixture
def site(db, settings, gitlab, monkeypatch) -> Iterator[Site]:
    """The service in-process at http://testserver, set up as `gunicorn_server` is (GitLab: the
    double, its OAuth application): a live test's requests reach it unchanged. Each test's
    database changes are rolled back; MLflow's store is kept."""
    for name, value in site_settings(gitlab).items():
        setattr(settings, name, value)
    cache.clear()
    site = Site()
    site.serve_every_session(monkeypatch)
    running = set(threading.enumerate())
    yield site
    # The stock client's own threads (finished_client_threads) must reach this site while it
    # serves, not http://testserver over the network once the test is over, retried for
    # minutes in a thread the process waits for.
    join_client_threads_started_since(running)


@pytest.fixture(scope="session")
def site_seeds(django_db_setup, django_db_blocker, gitlab, cast) -> dict[str, dict]:
    """Projects A (ml/team/churn, by Olivia) and B (ml/other/churn, by Otto) seeded in-process
    once with the same names (tests/api.py). MLflow's store keeps them for the session; the
    Django rows the seeding wrote (caches of GitLab's answers) are rolled back."""
    site = Site()
    with django_db_blocker.unblock(), override_settings(**site_settings(gitlab)):
        with transaction.atomic():
            a = seed_project(site.api(cast.project.path, cast.olivia.token))
            b = seed_project(site.api(cast.other_project.path, cast.otto.token))
            transaction.set_rollback(True)
        cache.clear()
    return {"a": a, "b": b}


@pytest.fixture
def site_project_a(site, cast, site_seeds) -> tuple[Api, dict]:
    """Project A in-process, as Olivia, with its seeded ids."""
    return site.api(cast.project.path, cast.olivia.token), site_seeds["a"]


@pytest.fixture
def site_project_b(site, cast, site_seeds) -> tuple[Api, dict]:
    """Project B in-process, as Otto, with its seeded ids (the same names as project A's)."""
    return site.api(cast.other_project.path, cast.otto.token), site_seeds["b"]


# --- live ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gunicorn_server(tmp_path_factory, gitlab) -> LiveServer:
    """The live server the live tests share (each server started costs seconds): browsers log
    in through the double's OAuth provider (tests/sessions.py); CI jobs get their user's role
    through a service account; 2 workers, one of which tests/faults/test_worker_killed.py kills."""
    service = gitlab.add_user("mlflow-service", admin=True)
    server, process = start_live_server(
        tmp_path_factory.mktemp("live"), gitlab.url, workers=2, GITLAB_SERVICE_TOKEN=service.token,
        **gitlab.oauth.settings,
    )  # fmt: skip
    yield server
    stop(process)


@pytest.fixture(scope="session")
def project_a(gunicorn_server, cast) -> tuple[Api, dict]:
    """Project ml/team/churn on the live server, seeded by its owner Olivia (tests/api.py)."""
    api = Api(gunicorn_server.tracking_uri(cast.project.path), cast.olivia.token)
    return api, seed_project(api)


@pytest.fixture(scope="session")
def project_b(gunicorn_server, cast, project_a) -> tuple[Api, dict]:
    """Project ml/other/churn on the live server, seeded by Otto with project A's names."""
    api = Api(gunicorn_server.tracking_uri(cast.other_project.path), cast.otto.token)
    return api, seed_project(api)


@pytest.fixture(scope="session")
def server_without_gitlab(tmp_path_factory) -> LiveServer:
    """A live server whose GITLAB_URL names nothing that answers, and which says at once that
    GitLab is out (GITLAB_OUTAGE_RETRYABLE=0): tests/test_outage.py and
    tests/faults/test_misconfiguration.py share it. Started by `serve`, which prints its
    configuration (a service token among it, never to be shown)."""
    server, process = start_live_server(
        tmp_path_factory.mktemp("no-gitlab"), "http://127.0.0.1:9", serve=True,
        GITLAB_OUTAGE_RETRYABLE="0", GITLAB_TIMEOUT="1",
        GITLAB_SERVICE_TOKEN="glpat-service-token-never-shown",
    )  # fmt: skip
    yield server
    stop(process)
