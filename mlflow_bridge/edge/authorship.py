"""Who made it: the GitLab username, stamped by the bridge wherever MLflow records an author.

MLflow takes authors from the client: the `user_id` field of runs/create, the `mlflow.user`
tag (what the UI shows as "Created by" and filters by), a dataset's and its records'
`created_by` (from `mlflow.user` in their tags), a human assessment's `source.source_id`. The
stock client sends its operating-system user (`root` in CI containers), and any client can
claim any name. Here every request knows its GitLab user, so in every write the bridge
replaces, whatever the client sent, in one walk of the body (policy.py says which keys):

- `user_id`, `created_by`, `updated_by`, `completed_by` at the top of a body (policy.FIELDS);
- every author key (`mlflow.user`, policy.AUTHOR_KEYS) in a `tags`, `trace_metadata` or
  `request_metadata` mapping or key/value list, a set-tag body, and in the JSON documents
  MLflow reads from string fields (a dataset's `tags`, its `records` and their `tags`);
- a HUMAN assessment source's `source_id`.

The same walk refuses server keys (storage locations, CI provenance) in those places: it is
the one walk of a write's tags (policy.py says which keys are whose).
A new run always gets the tag, even when the client sent none. Deleting a run's
`mlflow.user` tag is refused: it would erase who made the run.
"""

from __future__ import annotations

import json

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.rewrite import plainly_lacks
from mlflow_bridge.edge.routes import Route
from mlflow_bridge.embedded import policy

USER_TAG = policy.USER_TAG
# Fields whose items are {"key": k, "value": v} tags ("" is a set-tag body itself), and fields
# that are {k: v} mappings of tags or metadata.
KEY_VALUE_FIELDS = ("", "tags", "trace_metadata", "request_metadata")
TAG_MAPPINGS = ("tags", "trace_metadata", "request_metadata")
# String fields MLflow parses as JSON (datasets: `tags`, `records`).
JSON_STRING_FIELDS = ("tags", "records")
# Top-level author fields (policy.FIELDS); `source_id` is an author only in a HUMAN source.
HUMAN_SOURCE_ID = "source_id"
AUTHOR_FIELDS = tuple(
    field
    for field, owner in policy.FIELDS.items()
    if owner is policy.Owner.AUTHOR and field != HUMAN_SOURCE_ID
)
HUMAN_SOURCE = "HUMAN"
# No author, server key or human source can be in a body whose bytes lack all of these.
SHORTCUT_NAMES = (
    *(name.encode() for name in (*AUTHOR_FIELDS, *policy.AUTHOR_KEYS, *policy.SERVER_KEYS)),
    b"ocation", b"source_id",
)  # fmt: skip


def _key_owner(key: object, field: str) -> policy.Owner:
    """The owner of a tag key found in `field`, refusing a server key."""
    owner = policy.owner_of(key) if isinstance(key, str) else policy.Owner.CLIENT
    if owner is policy.Owner.SERVER:
        label = f"Key in {field!r}" if field else "Tag"
        raise BridgeError("INVALID_PARAMETER_VALUE", policy.refusal_message(label, key))
    return owner


def _json_string(value: str, username: str, field: str) -> str:
    """A JSON document carried in a string field, stamped; other strings as they are."""
    try:
        document = json.loads(value)
    except ValueError:
        return value  # MLflow refuses it itself
    stamped = _stamped(document, username, field)
    return value if stamped == document else json.dumps(stamped)


def _stamped_item(container: dict, key: str, item: object, username: str, field: str) -> object:
    if field in KEY_VALUE_FIELDS and key in ("key", "value") and "key" in container:
        author = _key_owner(container["key"], field) is policy.Owner.AUTHOR
        return username if key == "value" and author else item  # [{"key": .., "value": ..}]
    if field in TAG_MAPPINGS:
        return username if _key_owner(key, field) is policy.Owner.AUTHOR else item  # {k: v}
    if key in AUTHOR_FIELDS and field == "" and isinstance(item, str):
        return username
    if (
        key == HUMAN_SOURCE_ID
        and field == "source"
        and container.get("source_type") == HUMAN_SOURCE
    ):
        return username
    return _stamped(item, username, key)


def _stamped(value: object, username: str, field: str = "") -> object:
    """`value` with every author it records replaced by `username`; server keys refused."""
    if isinstance(value, str) and field in JSON_STRING_FIELDS:
        return _json_string(value, username, field)
    if isinstance(value, list):
        return [_stamped(item, username, field) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: _stamped_item(value, key, item, username, field) for key, item in value.items()}


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
    if body is not None and plainly_lacks(body, *SHORTCUT_NAMES):
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
