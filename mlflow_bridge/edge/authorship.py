"""Who made it: the GitLab username, stamped by the bridge wherever MLflow records an author.

MLflow takes a run's author from the client: the `user_id` field of runs/create and the
`mlflow.user` tag (what the UI shows as "Created by" and filters by). The stock client sends
its operating-system user (`root` in CI containers), and any client can claim any name. Here
every request knows its GitLab user, so in every write the bridge replaces, whatever the
client sent:

- `user_id` (runs/create, create-promptlab-run) with the GitLab username;
- the value of every `mlflow.user` tag (a `tags` list or mapping, a set-tag body, a trace's
  `trace_metadata`, a dataset record's tags) with the GitLab username;
- `created_by` / `updated_by` fields, where a request carries them, likewise.

A new run always gets the tag, even when the client sent none. Deleting a run's `mlflow.user`
tag is refused: it would erase who made the run.
"""

from __future__ import annotations

import json

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.rewrite import plainly_lacks
from mlflow_bridge.edge.routes import Route

USER_TAG = "mlflow.user"
# Mappings that hold tags: `tags` everywhere, and a trace's metadata (the client records
# mlflow.user there too).
TAG_MAPPINGS = ("tags", "trace_metadata", "request_metadata")
AUTHOR_FIELDS = ("user_id", "created_by", "updated_by")
AUTHOR_NAMES = tuple(field.encode() for field in AUTHOR_FIELDS)


def _stamped(value: object, username: str, field: str = "") -> object:
    """`value` with every author it records replaced by `username`."""
    if isinstance(value, list):
        return [_stamped(item, username, field) for item in value]
    if not isinstance(value, dict):
        return value
    stamped = {}
    for key, item in value.items():
        if field in TAG_MAPPINGS and key == USER_TAG:
            stamped[key] = username  # {"tags": {"mlflow.user": ...}}
        elif key == "value" and value.get("key") == USER_TAG and field in ("", "tags"):
            stamped[key] = username  # [{"key": "mlflow.user", "value": ...}] and set-tag
        elif key in AUTHOR_FIELDS and field == "" and isinstance(item, str):
            stamped[key] = username
        else:
            stamped[key] = _stamped(item, username, key)
    return stamped


def stamp(
    username: str, route: Route, body: bytes | None, document: dict
) -> tuple[bytes | None, dict]:
    """The body and document to send on, every author in them being `username`."""
    if not route.action.writes or not document:
        return body, document
    if route.keeps_user_tag and document.get("key") == USER_TAG:
        raise BridgeError(
            "INVALID_PARAMETER_VALUE",
            f"Tag {USER_TAG!r} records who created the run (set by the server): "
            "it cannot be deleted.",
        )
    # No author field or user tag can be in a body whose bytes lack their names.
    if body is not None and plainly_lacks(body, USER_TAG.encode(), *AUTHOR_NAMES):
        stamped = dict(document)
    else:
        stamped = _stamped(document, username)
    if route.run_author:
        stamped["user_id"] = username
        tags = stamped.get("tags") if isinstance(stamped.get("tags"), list) else []
        if not any(isinstance(tag, dict) and tag.get("key") == USER_TAG for tag in tags):
            stamped["tags"] = [*tags, {"key": USER_TAG, "value": username}]
    if stamped == document:
        return body, document
    return json.dumps(stamped).encode(), stamped
