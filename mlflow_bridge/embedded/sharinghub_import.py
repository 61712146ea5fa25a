"""Move an mlflow-sharinghub database (one namespace, names suffixed ` (<project id>)`) into
per-project workspaces.

The plugin kept every project in one MLflow server: experiment `baseline (42)` with the tag
`project=<GitLab path>`, registered model `churn (42)`. Here project 42 is workspace `p-42`,
holding `baseline` and `churn`.

How rows move: experiments are created through MLflow's store in the project's workspace (so
they get a new id and the new artifact location `mlflow-artifacts:/workspaces/p-42/<id>`);
every other row is copied with MLflow's own SQLAlchemy models, keeping its keys: run ids, metric
histories, model version numbers, aliases and tags stay exactly as they were, so `runs:/<id>`
sources and `models:/<name>/<version>` references keep working. Artifacts are copied from the
old artifact root to the new layout before a run's rows are written, so an interrupted import
resumes where it stopped. The source is only read. Run again, it adds only what is missing.

Not moved (and reported): datasets and run inputs, MLflow 3 logged models and traces, which the
plugin's MLflow 2 servers did not have.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field

from django.conf import settings
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from mlflow_bridge.embedded import mlflow_app

SUFFIX = re.compile(r"^(?P<name>.+) \((?P<id>[0-9]+)\)$")
PROJECT_TAG = "project"
IMPORTED_FROM_TAG = "sharinghub.imported_from"
PROXIED = "mlflow-artifacts:/"


class ImportRefused(Exception):
    """The source cannot be imported as it is; the message says how to fix it."""


@dataclass
class ExperimentMove:
    source_id: int
    source_name: str
    project_id: int
    path: str
    name: str
    runs: int

    @property
    def workspace(self) -> str:
        return f"p-{self.project_id}"


@dataclass
class ModelMove:
    source_name: str
    project_id: int
    name: str
    versions: int
    prompt: bool

    @property
    def workspace(self) -> str:
        return f"p-{self.project_id}"


@dataclass
class Plan:
    experiments: list[ExperimentMove] = field(default_factory=list)
    models: list[ModelMove] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    not_moved: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [
            f"experiment {m.source_id} {m.source_name!r} -> {m.workspace} ({m.path or '?'}) "
            f"{m.name!r}: {m.runs} run(s)"
            for m in self.experiments
        ]
        lines += [
            f"{'prompt' if m.prompt else 'registered model'} {m.source_name!r} -> {m.workspace} "
            f"{m.name!r}: {m.versions} version(s)"
            for m in self.models
        ]
        lines += [f"not mapped: {what}" for what in self.unmapped]
        lines += [f"not moved: {what}" for what in self.not_moved]
        return lines


def _models():
    from mlflow.store.model_registry.dbmodels import models as registry
    from mlflow.store.tracking.dbmodels import models as tracking

    return tracking, registry


def _copy(row, **overrides):
    """A new ORM object with `row`'s column values, some replaced."""
    values = {c.key: getattr(row, c.key) for c in type(row).__mapper__.column_attrs}
    return type(row)(**{**values, **overrides})


class SharingHubImport:
    def __init__(self, backend_store_uri: str, artifacts_root: str):
        self.source = create_engine(backend_store_uri)
        self.artifacts_root = artifacts_root.rstrip("/")

    # --- Planning ------------------------------------------------------------------------------
    def check_schema(self) -> None:
        mlflow_app.flask_app()
        from mlflow.server.handlers import _get_tracking_store

        target = _get_tracking_store().engine
        with self.source.connect() as source, target.connect() as ours:
            try:
                theirs = source.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception as exc:  # noqa: BLE001 - any failure means "not an MLflow db".
                raise ImportRefused(f"The source is not an MLflow database ({exc}).") from exc
            head = ours.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if theirs != head:
            raise ImportRefused(
                f"The source database's schema is at {theirs}, this MLflow's at {head}. Bring it "
                "forward first, on a copy if you like: `mlflow db upgrade <backend store uri>`."
            )

    def plan(self) -> Plan:
        tracking, registry = _models()
        plan = Plan()
        with Session(self.source) as session:
            paths = self._plan_experiments(session, tracking, plan)
            ids_by_path = {path: project_id for project_id, path in paths.items()}
            self._plan_models(session, registry, ids_by_path, plan)
        return plan

    def _plan_experiments(self, session: Session, tracking, plan: Plan) -> dict[int, str]:
        """Each experiment's move into its project; the project paths its tags name, by id."""
        paths: dict[int, str] = {}
        for experiment in session.query(tracking.SqlExperiment).order_by(
            tracking.SqlExperiment.experiment_id
        ):
            tags = {t.key: t.value for t in session.query(tracking.SqlExperimentTag).filter_by(
                experiment_id=experiment.experiment_id)}  # fmt: skip
            match = SUFFIX.match(experiment.name)
            if match is None:
                plan.unmapped.append(
                    f"experiment {experiment.experiment_id} {experiment.name!r}: "
                    "no ' (<project id>)' suffix"
                )
                continue
            project_id, path = int(match["id"]), tags.get(PROJECT_TAG, "")
            if path:
                paths[project_id] = path
            runs = session.query(tracking.SqlRun).filter_by(
                experiment_id=experiment.experiment_id).count()  # fmt: skip
            plan.experiments.append(ExperimentMove(
                experiment.experiment_id, experiment.name, project_id, path,
                match["name"], runs))  # fmt: skip
            self._note_not_moved(session, experiment, plan)
        return paths

    def _plan_models(
        self, session: Session, registry, ids_by_path: dict[str, int], plan: Plan
    ) -> None:
        """Each registered model's (or prompt's) move, by its suffix or its project tag."""
        for model in session.query(registry.SqlRegisteredModel).order_by(
            registry.SqlRegisteredModel.name
        ):
            tags = {t.key: t.value for t in session.query(registry.SqlRegisteredModelTag)
                    .filter_by(name=model.name, workspace=model.workspace)}  # fmt: skip
            prompt = tags.get("mlflow.prompt.is_prompt") == "true"
            kind = "prompt" if prompt else "registered model"
            match = SUFFIX.match(model.name)
            if match is not None:
                project_id, name = int(match["id"]), match["name"]
            elif tags.get(PROJECT_TAG) in ids_by_path:
                project_id, name = ids_by_path[tags[PROJECT_TAG]], model.name
            else:
                plan.unmapped.append(
                    f"{kind} {model.name!r}: no ' (<project id>)' suffix, and no "
                    f"'{PROJECT_TAG}' tag naming a project of an imported experiment"
                )
                continue
            versions = session.query(registry.SqlModelVersion).filter_by(
                name=model.name, workspace=model.workspace).count()  # fmt: skip
            plan.models.append(ModelMove(model.name, project_id, name, versions, prompt))

    def _note_not_moved(self, session: Session, experiment, plan: Plan) -> None:
        for table in ("datasets", "logged_models", "trace_info"):
            count = session.execute(
                text(f"SELECT count(*) FROM {table} WHERE experiment_id = :id"),
                {"id": experiment.experiment_id},
            ).scalar()
            if count:
                plan.not_moved.append(f"{count} {table} row(s) of experiment {experiment.name!r}")

    # --- Moving ----------------------------------------------------------------------------------
    def run(self, plan: Plan) -> list[str]:
        from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

        tracking_store, registry_store = _get_tracking_store(), _get_model_registry_store()
        report, locations = [], {}
        for move in plan.experiments:
            mlflow_app.ensure_workspace(move.workspace, description=move.path)
            new_id, copied, present = self._move_experiment(tracking_store, move, locations)
            report.append(
                f"{move.workspace} experiment {move.name!r} (id {new_id}): "
                f"{copied} run(s) copied, {present} already there"
            )
        for move in plan.models:
            mlflow_app.ensure_workspace(move.workspace, description="")
            copied, present = self._move_model(registry_store, move, locations)
            report.append(
                f"{move.workspace} {'prompt' if move.prompt else 'registered model'} "
                f"{move.name!r}: {copied} version(s) copied, {present} already there"
            )
        return report

    def _target_experiment(self, store, move: ExperimentMove, source_row):
        """The experiment this source experiment became, created on the first import."""
        from mlflow.entities import ExperimentTag
        from mlflow.utils.workspace_context import ServerWorkspaceContext

        tracking, _ = _models()
        marker = f"{source_row.experiment_id}"
        with ServerWorkspaceContext(move.workspace):
            existing = store.get_experiment_by_name(move.name)
            if existing is None:
                with Session(self.source) as session:
                    rows = session.query(tracking.SqlExperimentTag).filter_by(
                        experiment_id=source_row.experiment_id
                    )
                    tags = [ExperimentTag(t.key, t.value) for t in rows]
                tags.append(ExperimentTag(IMPORTED_FROM_TAG, marker))
                new_id = store.create_experiment(move.name, tags=tags)
                with store.ManagedSessionMaker(read_only=False) as session:
                    session.query(tracking.SqlExperiment).filter_by(experiment_id=int(new_id)).update(
                        {"creation_time": source_row.creation_time,
                         "lifecycle_stage": source_row.lifecycle_stage})  # fmt: skip
                return store.get_experiment(new_id)
        if existing.tags.get(IMPORTED_FROM_TAG) != marker:
            raise ImportRefused(
                f"{move.workspace} already has an experiment {move.name!r} that was not imported "
                f"from experiment {marker}: rename one of them and import again."
            )
        return existing

    def _move_experiment(
        self, store, move: ExperimentMove, locations: dict
    ) -> tuple[str, int, int]:
        tracking, _ = _models()
        with Session(self.source) as source:
            source_row = source.get(tracking.SqlExperiment, move.source_id)
            target = self._target_experiment(store, move, source_row)
            locations[source_row.artifact_location.rstrip("/")] = target.artifact_location
            runs = source.query(tracking.SqlRun).filter_by(experiment_id=move.source_id).all()
            with store.ManagedSessionMaker() as ours:
                present = {run_id for (run_id,) in ours.query(tracking.SqlRun.run_uuid).filter(
                    tracking.SqlRun.run_uuid.in_([r.run_uuid for r in runs]))}  # fmt: skip
            missing = [run for run in runs if run.run_uuid not in present]
            if missing:
                self._copy_artifacts(source_row.artifact_location, target.artifact_location)
            for run in missing:
                with store.ManagedSessionMaker(read_only=False) as ours:
                    moved_uri = self._moved(run.artifact_uri, locations)
                    ours.add(
                        _copy(run, experiment_id=int(target.experiment_id), artifact_uri=moved_uri)
                    )
                    ours.flush()
                    for model in (tracking.SqlMetric, tracking.SqlLatestMetric,
                                  tracking.SqlParam, tracking.SqlTag):  # fmt: skip
                        ours.add_all(_copy(row) for row in source.query(model).filter_by(
                            run_uuid=run.run_uuid))  # fmt: skip
        return target.experiment_id, len(missing), len(present)

    def _move_model(self, store, move: ModelMove, locations: dict) -> tuple[int, int]:
        _, registry = _models()
        where = {"name": move.source_name}
        ours_where = {"name": move.name, "workspace": move.workspace}
        with Session(self.source) as source, store.ManagedSessionMaker(read_only=False) as ours:
            model = source.query(registry.SqlRegisteredModel).filter_by(**where).one()
            if ours.query(registry.SqlRegisteredModel).filter_by(**ours_where).first() is None:
                ours.add(_copy(model, **ours_where))
                ours.flush()
            copied = present = 0
            for version in source.query(registry.SqlModelVersion).filter_by(**where):
                key = {**ours_where, "version": version.version}
                moved = {
                    "source": self._moved(version.source, locations),
                    "storage_location": self._moved(version.storage_location, locations),
                }
                existing = ours.query(registry.SqlModelVersion).filter_by(**key).first()
                if existing is not None:
                    if (existing.run_id, existing.source) != (version.run_id, moved["source"]):
                        raise ImportRefused(
                            f"{move.workspace} already has version {version.version} of "
                            f"{move.name!r}, not imported from {move.source_name!r}: rename "
                            "that registered model and import again."
                        )
                    present += 1
                    continue
                ours.add(_copy(version, **key, **moved))
                copied += 1
            ours.flush()
            for table in (registry.SqlRegisteredModelTag, registry.SqlModelVersionTag,
                          registry.SqlRegisteredModelAlias):  # fmt: skip
                for row in source.query(table).filter_by(**where):
                    ours.merge(_copy(row, **ours_where))
        return copied, present

    # --- Artifacts -----------------------------------------------------------------------------
    def _moved(self, uri: str | None, locations: dict[str, str]) -> str | None:
        """`uri` under its experiment's new artifact location (other URIs are unchanged)."""
        if not uri:
            return uri
        for old, new in locations.items():
            if uri == old or uri.startswith(old + "/"):
                return new + uri[len(old) :]
        return uri

    def _physical(self, location: str) -> str:
        """Where an artifact location's files are: proxied locations live under the root."""
        if location.startswith(PROXIED):
            return f"{self.artifacts_root}/{location[len(PROXIED) :].lstrip('/')}"
        return location

    def _copy_artifacts(self, old_location: str, new_location: str) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        source = get_artifact_repository(self._physical(old_location))
        destination = settings.MLFLOW_ARTIFACTS_DESTINATION.rstrip("/")
        target = get_artifact_repository(
            f"{destination}/{new_location[len(PROXIED) :].lstrip('/')}"
        )
        if not source.list_artifacts():
            return
        with tempfile.TemporaryDirectory() as scratch:
            target.log_artifacts(source.download_artifacts("", scratch))
