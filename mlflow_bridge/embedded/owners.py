"""Which workspace owns an object of MLflow's, read from MLflow's tables.

An id never changes owner, so positive answers about runs, experiments and logged models
(ids the server draws, rows MLflow only marks deleted) are remembered for the process's life:
a training loop pays one indexed SELECT per run, then nothing. The memo outlives a hard
delete made by another process (`gc`, `purge_projects`) and stays right: the id keeps naming
the same workspace, whose own requests then get MLflow's 404 for the missing row, and the id
is never drawn again for another one (run and logged-model ids are UUIDs; PostgreSQL's
experiment ids come from a sequence). SQLite gives a new experiment the highest id plus one,
so once the highest experiment is hard-deleted its id comes back in another project: on
SQLite, experiment ids are looked up every time. Traces (whose ids clients choose) and
evaluation datasets are deleted for good: looked up every time, so a deleted one is a 404
rather than a 500 from MLflow's handler. tests/test_mlflow_seam.py pins what this relies on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from mlflow.prompt.constants import _PROMPT_SOURCE_PLACEHOLDERS, PROMPT_TEXT_TAG_KEY
from sqlalchemy import text

# The tag that marks a model version as a prompt's, and the placeholder sources MLflow gives
# prompt versions instead of a model's location.
PROMPT_TAG = PROMPT_TEXT_TAG_KEY
PROMPT_SOURCES = frozenset(_PROMPT_SOURCE_PLACEHOLDERS)

OWNER_QUERIES = {
    "run": "SELECT e.workspace FROM runs r JOIN experiments e "
    "ON e.experiment_id = r.experiment_id WHERE r.run_uuid = :id",
    "experiment": "SELECT workspace FROM experiments WHERE experiment_id = :id",
    "logged model": "SELECT e.workspace FROM logged_models m JOIN experiments e "
    "ON e.experiment_id = m.experiment_id WHERE m.model_id = :id",
    "trace": "SELECT e.workspace FROM trace_info t JOIN experiments e "
    "ON e.experiment_id = t.experiment_id WHERE t.request_id = :id",
    "dataset": "SELECT workspace FROM evaluation_datasets WHERE dataset_id = :id",
}

MAX_EXPERIMENT_ID = 2**63 - 1
_REMEMBERED_KINDS = frozenset({"run", "experiment", "logged model"})
_MAX_REMEMBERED = 100_000
_owners: OrderedDict[tuple[str, str], str] = OrderedDict()
_lock = threading.Lock()


def owner_of(kind: str, object_id: str) -> str | None:
    """The workspace holding the object, or None when there is no such object."""
    key = (kind, object_id)
    # One lookup: another thread may evict the key between a test and a read.
    if (remembered := _owners.get(key)) is not None:
        return remembered
    # isdecimal, not isdigit: int() refuses digits such as '²'. Experiment ids are 64-bit in
    # MLflow's tables: a larger number names none (and would overflow the driver).
    if kind == "experiment" and not (object_id.isdecimal() and int(object_id) <= MAX_EXPERIMENT_ID):
        return None
    # Asked while MLflow serves (its stores are built): MLflow's own accessor, not mlflow_app's,
    # whose app mounts the OTLP route that asks here.
    from mlflow.server.handlers import _get_tracking_store

    parameter = int(object_id) if kind == "experiment" else object_id
    engine = _get_tracking_store().engine
    with engine.connect() as connection:
        owner = connection.execute(text(OWNER_QUERIES[kind]), {"id": parameter}).scalar()
    reused = kind == "experiment" and engine.dialect.name == "sqlite"
    if owner is not None and kind in _REMEMBERED_KINDS and not reused:
        with _lock:
            _owners[key] = owner
            if len(_owners) > _MAX_REMEMBERED:
                _owners.popitem(last=False)
    return owner
