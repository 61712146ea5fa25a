"""Which workspace owns an id a request carries, so no request reaches across projects.

MLflow scopes what it looks up by the request's workspace, but still accepts some references
into other workspaces (a model version from another project's run, a logged model with
another project's source run, linking another project's trace). Every id a request carries,
in its query or anywhere in its JSON body (trace locations nest experiment ids), is checked
here before MLflow sees it.

Owners are read from MLflow's tables by the seam (embedded/owners.py), which remembers the
answers that cannot go stale.

A field names at most MAX_IDS objects: each is looked up, and MLflow would put every one in
a single SQL statement (400,000 ids: "too many SQL variables").
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.embedded.owners import PROMPT_SOURCES, PROMPT_TAG, owner_of

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

MAX_IDS = 1000


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
        isinstance(tag, dict) and tag.get("key") == PROMPT_TAG for tag in tags
    )


def check_model_source(source: str, workspace: str, is_prompt: bool = False) -> None:
    """A model version's source must live in this project: runs:/, models:/ or its artifacts.

    Prompt versions carry MLflow's fixed placeholder instead (MLflow refuses any other).
    """
    if is_prompt and source in PROMPT_SOURCES:
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
