"""create-promptlab-run stores the tags of its body, the author the bridge stamps included.

MLflow's handler passes the body's `tags` (JSON objects) to `store.create_run`, which reads
RunTag attributes from them: any tag is a 500, and so is the author tag authorship.py adds to
every new run. `install` hands MLflow's implementation RunTags instead.
"""

from __future__ import annotations

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from mlflow.server import handlers

from mlflow_bridge.embedded.wrapping import wrap_once


def _with_run_tags(create_promptlab_run):
    """MLflow's create-promptlab-run hands the body's `tags` to its store as they are: JSON
    objects where the store reads RunTag attributes (a 500 for any tag, the stamped author's
    included). Here they become RunTags, and a malformed one is the client's 400."""

    def created(store, *, tags, **arguments):
        if not isinstance(tags, list) or not all(
            isinstance(tag, dict) and isinstance(tag.get("key"), str) for tag in tags
        ):
            raise MlflowException.invalid_parameter_value(
                '\'tags\' must be a list of {"key": ..., "value": ...} objects.'
            )
        run_tags = [RunTag(tag["key"], str(tag.get("value", ""))) for tag in tags]
        return create_promptlab_run(store, tags=run_tags, **arguments)

    return created


def install() -> None:
    """Let create-promptlab-run store the tags its body carries (the caller as author)."""
    wrap_once(handlers, "_create_promptlab_run_impl", _with_run_tags)
