"""Protected model aliases, in-process: with PROTECTED_MODEL_ALIASES=production,prod-*, only
Maintainers and Owners, or CI id_token jobs on a protected ref run by a Developer or higher,
may set, move or delete such an alias, delete what holds it, or move a version to Production.

In pr<n>/team/churn Mark is a Maintainer, Dave a Developer, Rita a Reporter. Mark registered
model `m` with versions 1 and 2 and pointed `production` at version 1.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from projects import idtokens
from tests.api import Api, seed_project
from tests.gitlab_double import Project, User
from tests.idtokens import AUDIENCE, Signer
from tests.inprocess import Tracking
from tests.live import LiveServer, start_live_server, stop

_groups = itertools.count()
pytestmark = pytest.mark.django_db


@dataclass
class Registry:
    project: Project
    mark: User
    dave: User
    rita: User
    signer: Signer
    model: str

    def as_(self, client, token: str) -> Tracking:
        return Tracking(client, self.project.path, token)

    def job(self, client, user: User, level: int, protected: bool) -> Tracking:
        ref = "true" if protected else "false"
        token = self.signer.id_token(self.project, user, level, ref_protected=ref)
        return self.as_(client, token)


@pytest.fixture
def registry(client, gitlab, settings) -> Registry:
    settings.GITLAB_URL = settings.GITLAB_ID_TOKEN_ISSUER = gitlab.url
    settings.GITLAB_ID_TOKEN_AUDIENCE = AUDIENCE
    settings.PROTECTED_MODEL_ALIASES = ["production", "prod-*"]
    cache.clear()
    idtokens.forget_keys()
    project = gitlab.add_project(f"pr{next(_groups)}/team/churn")
    mark, dave, rita = gitlab.add_user("mark"), gitlab.add_user("dave"), gitlab.add_user("rita")
    project.direct.update({mark.id: 40, dave.id: 30, rita.id: 20})
    maintainer = Tracking(client, project.path, mark.token)
    _, run_id = maintainer.new_run(f"e-{uuid.uuid4().hex[:8]}")
    created = maintainer.post("registered-models/create", {"name": f"m-{uuid.uuid4().hex[:8]}"})
    name = created[1]["registered_model"]["name"]
    for _ in range(2):
        maintainer.post(
            "model-versions/create",
            {"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id},
        )
    status, _ = maintainer.post("registered-models/alias",
                                {"name": name, "alias": "production", "version": "1"})  # fmt: skip
    assert status == 200
    return Registry(project, mark, dave, rita, Signer(gitlab).publish(), name)


def production_version(registry: Registry, tracking: Tracking) -> str | None:
    status, found = tracking.get("registered-models/alias", name=registry.model, alias="production")
    return found["model_version"]["version"] if status == 200 else None


PROMOTIONS = [
    pytest.param("POST", "registered-models/alias", {"alias": "prod-eu", "version": "2"},
                 id="set-a-protected-glob"),
    pytest.param("POST", "registered-models/alias", {"alias": "production", "version": "2"},
                 id="move"),
    pytest.param("POST", "registered-models/alias", {"alias": "PRODUCTION", "version": "2"},
                 id="move-in-capitals"),
    pytest.param("DELETE", "registered-models/alias", {"alias": "production"}, id="delete"),
    pytest.param("DELETE", "model-versions/delete", {"version": "1"}, id="delete-its-version"),
    pytest.param("DELETE", "registered-models/delete", {}, id="delete-its-model"),
    pytest.param("POST", "model-versions/transition-stage",
                 {"version": "2", "stage": "production", "archive_existing_versions": False},
                 id="stage-production"),
]  # fmt: skip


class TestWhoMayPromote:
    @pytest.mark.parametrize(("method", "route", "body"), PROMOTIONS)
    def test_it_refuses_a_developers_token_and_changes_nothing(
        self, client, registry, method, route, body
    ):
        dave = registry.as_(client, registry.dave.token)

        status, answer = dave.call(method, route, {"name": registry.model, **body})

        assert status == 403 and answer["error_code"] == "PERMISSION_DENIED"
        assert "only Maintainers and Owners may" in answer["message"]
        assert "you are Developer" in answer["message"]
        assert production_version(registry, dave) == "1"

    @pytest.mark.parametrize(("method", "route", "body"), PROMOTIONS)
    def test_it_refuses_a_developers_job_on_an_unprotected_ref(
        self, client, registry, method, route, body
    ):
        job = registry.job(client, registry.dave, 30, protected=False)

        status, _ = job.call(method, route, {"name": registry.model, **body})

        assert status == 403
        assert production_version(registry, job) == "1"

    @pytest.mark.parametrize(("method", "route", "body"), PROMOTIONS)
    def test_it_lets_a_developers_job_on_a_protected_ref(
        self, client, registry, method, route, body
    ):
        job = registry.job(client, registry.dave, 30, protected=True)

        status, answer = job.call(method, route, {"name": registry.model, **body})

        assert status == 200, answer

    @pytest.mark.parametrize(("method", "route", "body"), PROMOTIONS)
    def test_it_lets_a_maintainer(self, client, registry, method, route, body):
        mark = registry.as_(client, registry.mark.token)

        status, answer = mark.call(method, route, {"name": registry.model, **body})

        assert status == 200, answer

    def test_it_refuses_a_reporters_job_even_on_a_protected_ref(self, client, registry):
        job = registry.job(client, registry.rita, 20, protected=True)

        status, _ = job.post(
            "registered-models/alias",
            {"name": registry.model, "alias": "production", "version": "2"},
        )

        assert status == 403

    def test_it_names_the_alias_and_who_may_set_it(self, client, registry):
        dave = registry.as_(client, registry.dave.token)

        _, answer = dave.post(
            "registered-models/alias",
            {"name": registry.model, "alias": "production", "version": "2"},
        )

        assert "'production'" in answer["message"]
        assert "protected branch or tag" in answer["message"]


class TestWhatIsNotProtected:
    def test_it_lets_a_developer_set_an_unprotected_alias(self, client, registry):
        dave = registry.as_(client, registry.dave.token)

        status, _ = dave.post(
            "registered-models/alias", {"name": registry.model, "alias": "staging", "version": "2"}
        )

        assert status == 200

    def test_it_lets_a_developer_delete_a_version_holding_no_protected_alias(
        self, client, registry
    ):
        dave = registry.as_(client, registry.dave.token)

        status, _ = dave.call("DELETE", "model-versions/delete",
                              {"name": registry.model, "version": "2"})  # fmt: skip

        assert status == 200

    def test_it_lets_a_developer_move_a_version_to_staging(self, client, registry):
        dave = registry.as_(client, registry.dave.token)

        status, _ = dave.post("model-versions/transition-stage",
                              {"name": registry.model, "version": "2", "stage": "Staging",
                               "archive_existing_versions": False})  # fmt: skip

        assert status == 200

    def test_it_lets_anyone_who_writes_read_aliases(self, client, registry):
        rita = registry.as_(client, registry.rita.token)

        assert production_version(registry, rita) == "1"

    def test_it_protects_nothing_when_off(self, client, registry, settings):
        settings.PROTECTED_MODEL_ALIASES = []
        dave = registry.as_(client, registry.dave.token)

        moved, _ = dave.post(
            "registered-models/alias",
            {"name": registry.model, "alias": "production", "version": "2"},
        )
        staged, _ = dave.post("model-versions/transition-stage",
                              {"name": registry.model, "version": "2", "stage": "Production",
                               "archive_existing_versions": False})  # fmt: skip

        assert (moved, staged) == (200, 200)


class TestTheUiAliasEditor:
    def test_it_refuses_the_uis_own_alias_call_alike(self, client, registry):
        """The UI calls ajax-api/: the same rows of the route table."""
        ui = registry.as_(client, registry.dave.token)
        url = ui.prefix + "ajax-api/2.0/mlflow/registered-models/alias"

        answer = client.post(url, {"name": registry.model, "alias": "production", "version": "2"},
                             content_type="application/json", **ui.auth)  # fmt: skip

        assert answer.status_code == 403
        assert "'production'" in answer.json()["message"]


class TestWithTheStockClient:
    """A live server with protected aliases and id_tokens on, and MLflow's own client."""

    @pytest.fixture(scope="class")
    def live(self, tmp_path_factory, gitlab) -> tuple[LiveServer, Registry]:
        project = gitlab.add_project(f"pr-live{next(_groups)}/churn")
        mark, dave, rita = gitlab.add_user("mark"), gitlab.add_user("dave"), gitlab.add_user("rita")
        project.direct.update({mark.id: 40, dave.id: 30, rita.id: 20})
        server, process = start_live_server(
            tmp_path_factory.mktemp("promotion"), gitlab.url, workers=1,
            GITLAB_ID_TOKEN_AUDIENCE=AUDIENCE, PROTECTED_MODEL_ALIASES="production,prod-*",
        )  # fmt: skip
        api = Api(server.tracking_uri(project.path), mark.token)
        seeded = seed_project(api)
        api.ok("POST", "api/2.0/mlflow/model-versions/create", json={
            "name": seeded["model"], "source": f"runs:/{seeded['run_id']}/model",
            "run_id": seeded["run_id"]})  # fmt: skip
        api.ok("POST", "api/2.0/mlflow/registered-models/alias",
               json={"name": seeded["model"], "alias": "production", "version": "1"})  # fmt: skip
        yield server, Registry(project, mark, dave, rita, Signer(gitlab).publish(), seeded["model"])
        stop(process)

    def client_with(self, monkeypatch, server: LiveServer, registry: Registry, token: str):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        # A CI job's client, not the in-process server's: in-process tests before this one
        # turned MLflow's workspaces on in this process's environment (embedded/mlflow_app.py).
        monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES", raising=False)
        uri = server.tracking_uri(registry.project.path)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)  # as a job gets by default

    def test_it_refuses_a_developers_token_every_promotion(self, live, monkeypatch):
        server, registry = live
        dave = self.client_with(monkeypatch, server, registry, registry.dave.token)

        for promote in (
            lambda: dave.set_registered_model_alias(registry.model, "production", "2"),
            lambda: dave.delete_registered_model_alias(registry.model, "production"),
            lambda: dave.transition_model_version_stage(registry.model, "2", "Production"),
            lambda: dave.delete_model_version(registry.model, "1"),
        ):
            with pytest.raises(MlflowException, match="only Maintainers and Owners may") as refused:
                promote()
            assert refused.value.error_code == "PERMISSION_DENIED"
        assert dave.get_model_version_by_alias(registry.model, "production").version == "1"

    def test_it_lets_jobs_on_protected_refs_and_maintainers(self, live, monkeypatch):
        server, registry = live
        unprotected = registry.signer.id_token(registry.project, registry.dave, 30)
        protected = registry.signer.id_token(registry.project, registry.dave, 30,
                                             ref_protected="true")  # fmt: skip

        job = self.client_with(monkeypatch, server, registry, unprotected)
        with pytest.raises(MlflowException, match="'production'"):
            job.set_registered_model_alias(registry.model, "production", "2")
        job = self.client_with(monkeypatch, server, registry, protected)
        job.set_registered_model_alias(registry.model, "production", "2")
        moved = job.get_model_version_by_alias(registry.model, "production").version
        mark = self.client_with(monkeypatch, server, registry, registry.mark.token)
        mark.set_registered_model_alias(registry.model, "production", "1")

        assert moved == "2"
        assert mark.get_model_version_by_alias(registry.model, "production").version == "1"
