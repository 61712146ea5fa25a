"""`import_sharinghub`: an mlflow-sharinghub database moves into the projects' workspaces.

The old database is built by a bare `mlflow server` (tests/deployment/old_sharinghub.py) with
two projects: ml/team/churn (Olivia's) and ml/other/churn (Otto's), each with `baseline (<id>)`,
two runs with artifacts, `churn-model (<id>)` with two versions, tags and an alias, and a prompt;
plus an experiment `orphan` that names no project.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.live import ROOT, LiveServer, free_port, start_live_server, stop

OLD_SHARINGHUB = Path(__file__).with_name("old_sharinghub.py")


@pytest.fixture(scope="module")
def old(request, tmp_path_factory, cast) -> dict:
    """A copy of the old database and artifacts. The original is built once per script, spec
    and MLflow version and kept in pytest's cache (.pytest_cache): a bare `mlflow server`
    migrating a database from nothing costs seconds of CPU, the same in both halves of
    `make test`. It is built aside and renamed into place: there whole, or not at all."""
    spec = {"projects": [{"id": p.id, "path": p.path} for p in (cast.project, cast.other_project)]}
    key = hashlib.sha256(
        f"{OLD_SHARINGHUB.read_text()}{json.dumps(spec)}{mlflow.__version__}".encode()
    ).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # none with -p no:cacheprovider
    kept = Path(cache.mkdir("old-sharinghub")) if cache else tmp_path_factory.mktemp("old")
    if not (kept / key).exists():
        scratch = Path(tempfile.mkdtemp(dir=kept))
        build_old_sharinghub(scratch, spec)
        try:
            scratch.rename(kept / key)
        except OSError:  # another session's build got there first
            shutil.rmtree(scratch)
    where = tmp_path_factory.mktemp("old-sharinghub")
    shutil.copytree(kept / key, where, dirs_exist_ok=True)
    return {"uri": f"sqlite:///{where / 'mlflow.db'}", "db": where / "mlflow.db",
            "artifacts": str(where / "artifacts"),
            **json.loads((where / "made.json").read_text())}  # fmt: skip


def build_old_sharinghub(into: Path, spec: dict) -> None:
    """tests/deployment/old_sharinghub.py's database and artifacts in `into`, and what it made
    (made.json)."""
    uri, artifacts = f"sqlite:///{into / 'mlflow.db'}", str(into / "artifacts")
    built = subprocess.run(
        [sys.executable, str(OLD_SHARINGHUB), uri, artifacts, json.dumps(spec), str(free_port())],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (into / "made.json").write_text(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def target(tmp_path_factory, gitlab) -> LiveServer:
    server, process = start_live_server(tmp_path_factory.mktemp("import"), gitlab.url)
    yield server
    stop(process)


def import_sharinghub(target: LiveServer, old, *extra) -> str:
    return target.manage("import_sharinghub", "--backend-store-uri", old["uri"],
                         "--artifacts", old["artifacts"], *extra)  # fmt: skip


def source_counts(old) -> dict[str, int]:
    with sqlite3.connect(old["db"]) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("experiments", "runs", "metrics", "model_versions")}  # fmt: skip


@pytest.fixture
def as_user(monkeypatch):
    def switch(uri: str, token: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return MlflowClient(uri, uri)

    yield switch
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


class TestImport:
    def test_it_prints_the_plan_and_writes_nothing_in_a_dry_run(self, target, old, cast, as_user):
        out = import_sharinghub(target, old, "--dry-run")

        a = cast.project
        assert f"'baseline ({a.id})' -> p-{a.id} ({a.path}) 'baseline': 2 run(s)" in out
        assert f"registered model 'churn-model ({a.id})' -> p-{a.id} 'churn-model'" in out
        assert f"prompt 'greeting-{a.id}' -> p-{a.id}" in out
        assert "not mapped: experiment 1 'orphan'" in out
        client = as_user(target.tracking_uri(a.path), cast.olivia.token)
        assert client.get_experiment_by_name("baseline") is None

    def test_it_moves_everything_the_stock_client_reads_through_the_new_uris(
        self, target, old, cast, as_user, tmp_path
    ):
        before = source_counts(old)

        import_sharinghub(target, old)

        for project, owner in [(cast.project, cast.olivia), (cast.other_project, cast.otto)]:
            client = as_user(target.tracking_uri(project.path), owner.token)
            experiment = client.get_experiment_by_name("baseline")
            suffixed = client.get_experiment_by_name(f"baseline ({project.id})")
            assert suffixed.experiment_id == experiment.experiment_id
            runs = client.search_runs([experiment.experiment_id])
            assert sorted(r.info.run_id for r in runs) == sorted(old["runs"][project.path])
            for run in runs:
                i = int(run.data.params["alpha"])
                assert run.data.tags["team"] == "ml"
                history = client.get_metric_history(run.info.run_id, "loss")
                by_step = sorted((m.step, m.value) for m in history)
                assert by_step == [(s, 1.0 / (s + 1 + i)) for s in range(3)]
                weights = client.download_artifacts(run.info.run_id, "model/weights.txt",
                                                    str(tmp_path / run.info.run_id))  # fmt: skip
                assert Path(weights).read_text() == f"weights of {project.path} run {i}"
            model = client.get_registered_model("churn-model")
            assert model.tags == {"owner": project.path}
            assert model.aliases == {"champion": "2"}
            versions = client.search_model_versions("name = 'churn-model'")
            assert sorted(int(v.version) for v in versions) == [1, 2]
            assert all(v.tags == {"validated": "yes"} for v in versions)
            champion = client.get_model_version_by_alias("churn-model", "champion")
            assert champion.run_id == old["runs"][project.path][1]
            prompt = mlflow.genai.load_prompt(f"prompts:/greeting-{project.id}/1")
            assert prompt.template == "Hello {{name}} from " + project.path
        assert source_counts(old) == before
        assert any(Path(old["artifacts"]).rglob("weights.txt"))

    def test_it_adds_nothing_when_run_again(self, target, old, cast, as_user):
        out = import_sharinghub(target, old)

        assert "0 run(s) copied, 2 already there" in out
        assert "0 version(s) copied, 2 already there" in out
        client = as_user(target.tracking_uri(cast.project.path), cast.olivia.token)
        experiments = client.search_experiments(filter_string="name = 'baseline'")
        assert len(experiments) == 1
        assert len(client.search_runs([experiments[0].experiment_id])) == 2
