"""MLflow's request messages and its JSON parse, and the hook that lets MLflow's handlers
reuse the bridge's parse.

The bridge parses each body into the route's request message before MLflow sees it
(edge/messages.py); MLflow's handlers then parse the same document again, through the name
`parse_dict` in mlflow.server.handlers. `install()` points that name at `parse_dict_once`,
which copies the bridge's parse when the handler parses the very document the bridge checked:
a 1,000-metric log-batch is parsed into protobuf once, not twice. A replacement is the only
way in: the handlers call the name of their own module, and no MLflow setting offers a hook.
It stays here, in the seam, beside the other names of MLflow's it relies on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from google.protobuf.message import Message

Parsed = tuple[dict, Message]  # a request's JSON document and the message parsed from it

# The bridge's parse of the request MLflow is serving in this thread (a ContextVar: each
# gthread thread, each request, its own).
_parsed: ContextVar[Parsed | None] = ContextVar("bridge_parsed_message", default=None)


def request_messages() -> list[tuple[str, type[Message], list[str]]]:
    """(path, request message class, methods) of every MLflow protobuf route."""
    from mlflow.protos.mlflow_artifacts_pb2 import MlflowArtifactsService
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.server.handlers import get_service_endpoints

    return [
        endpoint
        for service in (MlflowService, ModelRegistryService, MlflowArtifactsService)
        for endpoint in get_service_endpoints(service, lambda cls: cls)
    ]


def parse_dict(document: dict, message: Message) -> None:
    """MLflow's own parse of a JSON document into a message (protobuf's ParseError when it
    does not parse)."""
    from mlflow.utils.proto_json_utils import parse_dict as mlflows_parse_dict

    mlflows_parse_dict(document, message)


def invalid_value(name: str, value: object, hint: str) -> str:
    """MLflow's words for a request field of the wrong type."""
    from mlflow.utils.validation import invalid_value as mlflows_invalid_value

    return mlflows_invalid_value(name, value, hint)


@contextlib.contextmanager
def reused(parsed: Parsed | None) -> Iterator[None]:
    """While MLflow serves the request, its handler may reuse the bridge's parse. The bridge
    never changes a document in place after parsing it (rewrites build new ones)."""
    token = _parsed.set(parsed)
    try:
        yield
    finally:
        _parsed.reset(token)


def parse_dict_once(js_dict: dict, message: Message) -> None:
    """MLflow's parse_dict, reusing the bridge's parse when the handler parses the very
    document the bridge checked (equal, compared in C) into an empty message of its class."""
    parsed = _parsed.get()
    if (
        parsed is not None
        and type(parsed[1]) is type(message)
        and not message.ByteSize()
        and parsed[0] == js_dict
    ):
        message.CopyFrom(parsed[1])
        return
    parse_dict(js_dict, message)


def install() -> None:
    """Let MLflow's request handlers parse through parse_dict_once."""
    from mlflow.server import handlers

    handlers.parse_dict = parse_dict_once
