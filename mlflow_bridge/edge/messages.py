"""MLflow's request messages (protobuf, and GraphQL's), to refuse a body MLflow would only
half-read or fail on.

When MLflow cannot parse a body into its request message, it checks the top-level fields
only and goes on with what it parsed: a log-batch whose second metric has a text value
writes that metric as 0.0 at timestamp 0. The bridge parses each body as MLflow would,
first, and answers 400 instead.

MLflow's handlers then reuse that parse when the body they read holds the same document
(`parse.reused`, the seam's hook in embedded/parse.py).
"""

from __future__ import annotations

from functools import cache

from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import table_key
from mlflow_bridge.embedded import parse
from mlflow_bridge.embedded.parse import Parsed, parse_dict


@cache
def _message_classes() -> dict[tuple[str, str], type[Message]]:
    """(method, table key) -> request message class, for MLflow's protobuf services."""
    return {
        (method, table_key(path)): message_class
        for path, message_class, methods in parse.request_messages()
        for method in methods
    }


def check_parses(method: str, rule: str, document: dict) -> Parsed | None:
    """Refuse a JSON body that does not parse into the route's MLflow request message, with
    MLflow's own message where MLflow would have refused it itself; the message parsed."""
    # HEAD is served by GET's handler.
    method = "GET" if method == "HEAD" else method
    message_class = _message_classes().get((method, table_key(rule)))
    if message_class is None or not document:
        return None
    if (alias := _json_name_used(document, message_class.DESCRIPTOR)) is not None:
        json_name, name = alias
        raise BridgeError(
            "INVALID_PARAMETER_VALUE", f"Field '{json_name}' must be spelled '{name}'."
        )
    parsed = message_class()
    try:
        parse_dict(document, parsed)
    except ParseError as exc:
        message = mlflows_message(document, message_class) or f"Invalid request body: {exc}"
        raise BridgeError("INVALID_PARAMETER_VALUE", message)
    return document, parsed


@cache
def _shape(descriptor: Descriptor) -> tuple[dict[str, str], dict[str, tuple[Descriptor, bool]]]:
    """A message's fields as only their JSON name spells them (JSON name -> proto name), and
    the fields the walk descends into (proto name -> message, whether a map holds them)."""
    aliases = {f.json_name: f.name for f in descriptor.fields}
    aliases = {key: name for key, name in aliases.items() if key not in descriptor.fields_by_name}
    nested: dict[str, tuple[Descriptor, bool]] = {}
    for field in descriptor.fields:
        message, is_map = field.message_type, False
        if message is not None and message.GetOptions().map_entry:
            message, is_map = message.fields_by_name["value"].message_type, True
        # Well-known types (Struct) hold the client's keys, as maps do.
        if message is not None and not message.full_name.startswith("google.protobuf."):
            nested[field.name] = (message, is_map)
    return aliases, nested


def _json_name_used(document: object, descriptor: Descriptor) -> tuple[str, str] | None:
    """The first field the document spells by its JSON name (`runId`), and its proto name.
    Protobuf's parser takes either spelling; the bridge's checks, rewrites and author stamp
    read the proto names only, so MLflow must never read a field they did not see."""
    pending = [(document, descriptor)]
    while pending:
        value, message = pending.pop()
        if isinstance(value, list):
            pending.extend((item, message) for item in value)
            continue
        if not isinstance(value, dict):
            continue
        aliases, nested = _shape(message)
        if value.keys() & aliases.keys():
            key = next(key for key in value if key in aliases)
            return key, aliases[key]
        for key in value.keys() & nested.keys():
            child, is_map = nested[key]
            if not is_map:
                pending.append((value[key], child))
            elif isinstance(value[key], dict):
                pending.extend((item, child) for item in value[key].values())
    return None


def _is_repeated(field) -> bool:
    if (repeated := getattr(field, "is_repeated", None)) is not None:
        return repeated
    return field.label == field.LABEL_REPEATED  # protobuf before 6


def mlflows_message(document: dict, message_class: type[Message]) -> str | None:
    """What MLflow answers for this body, when it would refuse it: its handlers check the type
    of each top-level field (a list where a list is expected passes, whatever its items)."""
    for field in message_class.DESCRIPTOR.fields:
        if field.name not in document:
            continue
        value = document[field.name]
        if isinstance(value, list) and _is_repeated(field):
            continue  # MLflow checks only that it is a list: its items are the bridge's to check
        if isinstance(value, dict) and field.message_type is not None:
            continue
        try:
            parse_dict({field.name: value}, message_class())
        except ParseError:
            hint = f" Hint: Value was of type '{type(value).__name__}'."
            return (f"{parse.invalid_value(field.name, value, hint)} See the API docs for more "
                    "information about request parameters.")  # fmt: skip
    return None


def check_graphql(document: dict) -> None:
    """Refuse a GraphQL request MLflow's handler would fail on with a 500: a query that does
    not parse, variables that are not an object, an operation name that is not a string."""
    from graphql import GraphQLError, parse

    if not isinstance(document.get("variables"), dict | None):
        raise BridgeError("INVALID_PARAMETER_VALUE", "GraphQL 'variables' must be an object.")
    if not isinstance(document.get("operationName"), str | None):
        raise BridgeError("INVALID_PARAMETER_VALUE", "GraphQL 'operationName' must be a string.")
    try:
        parse(document["query"])
    except GraphQLError as exc:
        raise BridgeError("INVALID_PARAMETER_VALUE", f"Invalid GraphQL query: {exc.message}")
    except RecursionError:
        raise BridgeError("INVALID_PARAMETER_VALUE", "The GraphQL query nests too deeply.")
