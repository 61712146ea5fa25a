"""Which workspace owns an id a request carries, so no request reaches across projects.

MLflow scopes what it looks up by the request's workspace, but still accepts some references
into other workspaces (a model version from another project's run, a logged model with
another project's source run, linking another project's trace). Every id a request carries,
in its query or anywhere in its JSON body (trace locations nest experiment ids), is checked
here before MLflow sees it.

An id never changes owner, so positive answers about runs, experiments and logged models
(ids the server draws, rows MLflow only marks deleted) are remembered for the process's life:
a training loop pays one indexed SELECT per run, then nothing. Traces (whose ids clients
choose) and evaluation datasets are deleted for good: they are looked up every time, so a
deleted one is a 404 here rather than a 500 from MLflow's handler. And SQLite gives a new
experiment the highest id plus one, so once `gc` or `purge_projects` hard-deleted the highest
experiment, its id comes back in another project: on SQLite, experiment ids are looked up
every time too (PostgreSQL's sequences never reuse one).

A field names at most MAX_IDS objects: each is looked up, and MLflow would put every one in
a single SQL statement (400,000 ids: "too many SQL variables").
"""

from __future__ import annotations

import posixpath
import threading
from collections import OrderedDict
from urllib.parse import unquote, urlsplit

from mlflow.prompt.constants import _PROMPT_SOURCE_PLACEHOLDERS, PROMPT_TEXT_TAG_KEY
from sqlalchemy import text

from mlflow_bridge.edge.errors import BridgeError

_OWNER_QUERIES = {
    "run": "SELECT e.workspace FROM runs r JOIN experiments e "
    "ON e.experiment_id = r.experiment_id WHERE r.run_uuid = :id",
    "experiment": "SELECT workspace FROM experiments WHERE experiment_id = :id",
    "logged model": "SELECT e.workspace FROM logged_models m JOIN experiments e "
    "ON e.experiment_id = m.experiment_id WHERE m.model_id = :id",
    "trace": "SELECT e.workspace FROM trace_info t JOIN experiments e "
    "ON e.experiment_id = t.experiment_id WHERE t.request_id = :id",
    "dataset": "SELECT workspace FROM evaluation_datasets WHERE dataset_id = :id",
}

# Request field -> kind of object it names. Lists name several.
REFERENCE_FIELDS = {
    "run_id": "run",
    "run_uuid": "run",
    "run_ids": "run",
    "source_run_id": "run",
    "experiment_id": "experiment",
    "experiment_ids": "experiment",
    "model_id": "logged model",
    "trace_id": "trace",
    "trace_ids": "trace",
    "request_id": "trace",
    "request_ids": "trace",
    "dataset_id": "dataset",
}

_REMEMBERED_KINDS = frozenset({"run", "experiment", "logged model"})
MAX_IDS = 1000
_MAX_REMEMBERED = 100_000
_owners: OrderedDict[tuple[str, str], str] = OrderedDict()
_lock = threading.Lock()


def owner_of(kind: str, object_id: str) -> str | None:
    """The workspace holding the object, or None when there is no such object."""
    key = (kind, object_id)
    # One lookup: another thread may evict the key between a test and a read.
    if (remembered := _owners.get(key)) is not None:
        return remembered
    if kind == "experiment" and not object_id.isdigit():
        return None
    from mlflow.server.handlers import _get_tracking_store

    parameter = int(object_id) if kind == "experiment" else object_id
    engine = _get_tracking_store().engine
    with engine.connect() as connection:
        owner = connection.execute(text(_OWNER_QUERIES[kind]), {"id": parameter}).scalar()
    reused = kind == "experiment" and engine.dialect.name == "sqlite"
    if owner is not None and kind in _REMEMBERED_KINDS and not reused:
        with _lock:
            _owners[key] = owner
            if len(_owners) > _MAX_REMEMBERED:
                _owners.popitem(last=False)
    return owner


def _not_found(kind: str, object_id: str) -> BridgeError:
    # The same answer whether the object is another project's or does not exist at all.
    return BridgeError(
        "RESOURCE_DOES_NOT_EXIST", f"No {kind} with id {object_id!r} in this project."
    )


def check_references(fields: dict[str, object], workspace: str) -> None:
    """Refuse a request naming an object of another workspace (or none at all)."""
    run_id, run_uuid = fields.get("run_id"), fields.get("run_uuid")
    if run_id and run_uuid and run_id != run_uuid:
        raise BridgeError(
            "INVALID_PARAMETER_VALUE", "run_id and run_uuid name different runs: send one."
        )
    for kind, object_id, may_be_new in _references(fields):
        owner = owner_of(kind, object_id)
        if owner != workspace and not (may_be_new and owner is None):
            raise _not_found(kind, object_id)
    if isinstance(source := fields.get("source"), str):
        check_model_source(source, workspace, is_prompt=_is_prompt_version(fields))


def _references(document: object, inside: str = ""):
    """(kind, id, may_be_new) of every reference field, at any depth of a JSON document.

    A trace being written carries its own id in `trace_info`: that id may be new.
    """
    if isinstance(document, list):
        for item in document:
            yield from _references(item, inside)
    elif isinstance(document, dict):
        for field, value in document.items():
            kind = REFERENCE_FIELDS.get(field)
            ids = value if isinstance(value, list) else [value]
            if kind is not None and len(ids) > MAX_IDS:
                raise BridgeError(
                    "INVALID_PARAMETER_VALUE",
                    f"'{field}' names {len(ids)} objects; at most {MAX_IDS} per request.",
                )
            if kind is not None and all(isinstance(i, str | int) for i in ids):
                ids = list(dict.fromkeys(ids))
                may_be_new = inside == "trace_info" and kind == "trace"
                yield from ((kind, str(i), may_be_new) for i in ids if str(i))
            else:
                yield from _references(value, field)


def _is_prompt_version(fields: dict[str, object]) -> bool:
    tags = fields.get("tags")
    return isinstance(tags, list) and any(
        isinstance(tag, dict) and tag.get("key") == PROMPT_TEXT_TAG_KEY for tag in tags
    )


def check_model_source(source: str, workspace: str, is_prompt: bool = False) -> None:
    """A model version's source must live in this project: runs:/, models:/ or its artifacts.

    Prompt versions carry MLflow's fixed placeholder instead (MLflow refuses any other).
    """
    if is_prompt and source in _PROMPT_SOURCE_PLACEHOLDERS:
        return
    parts = urlsplit(source)
    if parts.scheme == "runs":
        run_id = parts.path.lstrip("/").split("/", 1)[0] or parts.netloc
        if owner_of("run", run_id) != workspace:
            raise _not_found("run", run_id)
        return
    if parts.scheme == "models":
        name = parts.netloc or parts.path.lstrip("/").split("/", 1)[0]
        # models:/m-<id> is a logged model; models:/<name>/<version> is resolved by MLflow
        # inside this project's registry.
        if name.startswith("m-") and owner_of("logged model", name) != workspace:
            raise _not_found("logged model", name)
        return
    if parts.scheme == "mlflow-artifacts":
        path = posixpath.normpath("/" + unquote(parts.path).lstrip("/"))
        if path.startswith(f"/workspaces/{workspace}/"):
            return
    raise BridgeError(
        "INVALID_PARAMETER_VALUE",
        f"Model source {source!r} is not in this project: use runs:/<run id>/<path>, "
        "models:/<model id> or an mlflow-artifacts:/ location of this project.",
    )
