"""Who reads and who writes a project's MLflow, live, as GitLab's project_policy.rb says
(docs/security.md#visibility, projects/visibility.py): visibility (private, internal, public) ×
each feature's level (disabled, private, enabled) × the caller (anonymous, signed-in non-member,
Guest, Reporter, Developer), through the stock `mlflow` client and through the calls MLflow's
UI makes (ajax-api, with a browser session); a change in GitLab shows once
MEMBERSHIP_CACHE_TTL has passed.

Each visibility gets three projects whose (model experiments, model registry) levels are
(enabled, disabled), (private, private), (disabled, enabled): every level of each feature, each
beside another level of the other feature (a feature is judged on its own). One test per
project asserts the whole table of its answers at once, so a failure shows every difference.

Expected answers: a reader's read is 200; any other read is 401 to an anonymous caller and 404
(as a missing project) to anyone else. A write is 200 to a Developer who reads the feature;
else 401 to an anonymous caller, 403 to a reader, 404 to anyone else.
"""

from __future__ import annotations

import itertools
import time

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.e2e.conftest import SHORT_TTL
from tests.gitlab_double import Project
from tests.sessions import log_in

CALLERS = ("anonymous", "non-member", "guest", "reporter", "developer")
LEVELS = {"guest": 10, "reporter": 20, "developer": 30}  # their role in every project here
PAIRS = (("enabled", "disabled"), ("private", "private"), ("disabled", "enabled"))
MATRIX = [
    pytest.param(visibility, experiments, registry, id=f"{visibility}-{experiments}-{registry}")
    for visibility in ("private", "internal", "public")
    for experiments, registry in PAIRS
]
FEATURES = ("experiments", "registry")
_ids = itertools.count()


def readers(visibility: str, level: str) -> set[str]:
    """GitLab's table, spelled out: who reads a feature at `level` in a project of `visibility`."""
    if level == "disabled":
        return set()
    if visibility == "public" and level == "enabled":
        return set(CALLERS)
    return {"guest", "reporter", "developer"}


def expected(caller: str, reads: bool, action: str) -> int:
    if action == "read" and reads or action == "write" and reads and caller == "developer":
        return 200
    if caller == "anonymous":
        return 401
    return 403 if reads else 404


@pytest.fixture(scope="module")
def people(gitlab, cast) -> dict[str, object]:
    return {"non-member": cast.charlie, "guest": cast.gina, "reporter": cast.rita,
            "developer": cast.dave}  # fmt: skip


@pytest.fixture(scope="module")
def browsers(sharing_server, gitlab, people) -> dict[str, requests.Session]:
    """Each caller's browser session, as MLflow's UI sends its calls (JSON, the page's Origin)."""
    sessions = {"anonymous": requests.Session()}
    for caller, user in people.items():
        sessions[caller] = log_in(sharing_server.url, gitlab, user, next_url="/healthz")
    for session in sessions.values():
        session.headers.update({"Accept": "application/json", "Origin": sharing_server.url})
    return sessions


def new_project(gitlab, people, visibility: str, experiments: str, registry: str) -> Project:
    project = gitlab.add_project(f"vm{next(_ids)}/{visibility}/e-{experiments}-r-{registry}",
                                 visibility=visibility)  # fmt: skip
    project.model_experiments_access_level = experiments
    project.model_registry_access_level = registry
    for caller, level in LEVELS.items():
        project.direct[people[caller].id] = level
    return project


class StockClient:
    """The stock client of one caller: MLFLOW_TRACKING_TOKEN set, or not at all (anonymous)."""

    def __init__(self, uri: str, token: str | None, monkeypatch):
        self.uri, self.token, self.monkeypatch = uri, token, monkeypatch

    def _call(self, act) -> int:
        if self.token is None:
            self.monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", self.token)
        try:
            act(MlflowClient(tracking_uri=self.uri, registry_uri=self.uri))
        except MlflowException as refused:
            return refused.get_http_status_code()
        return 200

    def read(self, feature: str) -> int:
        if feature == "experiments":
            return self._call(lambda client: client.search_experiments(max_results=5))
        return self._call(lambda client: client.search_registered_models(max_results=5))

    def write(self, feature: str, name: str) -> int:
        if feature == "experiments":
            return self._call(lambda client: client.create_experiment(name))
        return self._call(lambda client: client.create_registered_model(name))


class TheUI:
    """MLflow's UI's own calls, with one caller's browser session."""

    def __init__(self, uri: str, session: requests.Session):
        self.uri, self.session = uri + "ajax-api/2.0/mlflow/", session

    def read(self, feature: str) -> int:
        route = "experiments/search" if feature == "experiments" else "registered-models/search"
        return self.session.get(self.uri + route, params={"max_results": 5}, timeout=30).status_code

    def write(self, feature: str, name: str) -> int:
        route = "experiments/create" if feature == "experiments" else "registered-models/create"
        return self.session.post(self.uri + route, json={"name": name}, timeout=30).status_code


@pytest.fixture
def stock_client(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refusal is answered at once
    monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES", raising=False)  # a script's client
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return lambda uri, token: StockClient(uri, token, monkeypatch)


def token_of(people, caller: str) -> str | None:
    return None if caller == "anonymous" else people[caller].token


class TestTheMatrix:
    @pytest.mark.parametrize(("visibility", "experiments", "registry"), MATRIX)
    def test_it_answers_every_caller_as_gitlab_does_through_the_client_and_the_ui(
        self, sharing_server, gitlab, people, browsers, stock_client, visibility, experiments,
        registry,
    ):  # fmt: skip
        project = new_project(gitlab, people, visibility, experiments, registry)
        uri = sharing_server.tracking_uri(project.path)
        levels = {"experiments": experiments, "registry": registry}
        wanted, got = {}, {}

        for caller in CALLERS:
            kinds = {"api": stock_client(uri, token_of(people, caller)),
                     "ui": TheUI(uri, browsers[caller])}  # fmt: skip
            for (kind, client), feature in itertools.product(kinds.items(), FEATURES):
                reads = caller in readers(visibility, levels[feature])
                for action in ("read", "write"):
                    key = f"{kind} {caller:<10} {action:<5} {feature}"
                    wanted[key] = expected(caller, reads, action)
                    got[key] = (client.read(feature) if action == "read"
                                else client.write(feature, f"{kind}-{caller}"))  # fmt: skip

        assert got == wanted
        assert written_by_anyone(sharing_server, uri, people, levels) == {
            "experiments": {"Default", "api-developer", "ui-developer"}
            if experiments != "disabled" else None,
            "registry": {"api-developer", "ui-developer"} if registry != "disabled" else None,
        }  # fmt: skip


def written_by_anyone(server, uri: str, people, levels: dict[str, str]) -> dict:
    """What the project holds, as its Developer reads it (None: the feature is off)."""
    dave = requests.Session()
    dave.headers["Authorization"] = f"Bearer {people['developer'].token}"
    routes = {"experiments": ("experiments/search", "experiments"),
              "registry": ("registered-models/search", "registered_models")}  # fmt: skip
    found = {}
    for feature, (route, field) in routes.items():
        response = dave.get(f"{uri}api/2.0/mlflow/{route}", params={"max_results": 100}, timeout=30)
        if levels[feature] == "disabled":
            assert response.status_code == 404
            found[feature] = None
        else:
            assert response.status_code == 200, response.text[:300]
            found[feature] = {entry["name"] for entry in response.json().get(field, [])}
    return found


class TestChangesInGitLab:
    def test_it_follows_a_feature_narrowed_and_a_project_made_private_once_the_ttl_passed(
        self, sharing_server, gitlab, people, browsers, stock_client
    ):
        project = new_project(gitlab, people, "public", "enabled", "enabled")
        uri = sharing_server.tracking_uri(project.path)
        charlie, anonymous = stock_client(uri, people["non-member"].token), stock_client(uri, None)
        rita, anonymous_ui = (
            stock_client(uri, people["reporter"].token),
            TheUI(uri, browsers["anonymous"]),
        )

        def answers() -> dict[str, int]:
            return {"non-member experiments": charlie.read("experiments"),
                    "non-member registry": charlie.read("registry"),
                    "anonymous experiments": anonymous.read("experiments"),
                    "anonymous ui experiments": anonymous_ui.read("experiments"),
                    "reporter experiments": rita.read("experiments")}  # fmt: skip

        assert answers() == dict.fromkeys(answers(), 200)

        project.model_experiments_access_level = "private"
        assert settles(answers, {"non-member experiments": 404, "non-member registry": 200,
                                 "anonymous experiments": 401, "anonymous ui experiments": 401,
                                 "reporter experiments": 200})  # fmt: skip

        project.visibility = "private"
        assert settles(answers, {"non-member experiments": 404, "non-member registry": 404,
                                 "anonymous experiments": 401, "anonymous ui experiments": 401,
                                 "reporter experiments": 200})  # fmt: skip


# Polls, each after a quarter of the TTL: bounded by a number of attempts (many TTLs, for a
# loaded machine), not by a clock.
POLLS = 80


def settles(answers, wanted: dict[str, int]) -> bool:
    """Whether the answers become `wanted` within POLLS polls (the cached ones expire after
    MEMBERSHIP_CACHE_TTL); else the last answers, in the assertion's diff."""
    for _ in range(POLLS):
        now = answers()
        if now == wanted:
            return True
        time.sleep(SHORT_TTL / 4)
    assert now == wanted, f"still not as GitLab says after {POLLS} polls"
    return True
