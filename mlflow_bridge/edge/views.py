"""The tracking view: one request from URL to MLflow's streamed answer.

URL → authentication → throttles → project and role (cache, GitLab on a miss) → the project's
permission class → the UI reads the bridge answers itself → route rule → the route's permission
classes → rewrite → in-process MLflow → streamed response (TrackingView.initial).

The view is a Django REST framework APIView for its edge only: authentication, permission
and throttle classes, and one exception handler (errors.py). Bodies are never parsed by DRF
and MLflow's answers are Django responses, passed through without DRF's headers.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from mlflow_bridge.edge import (
    authorship,
    dispatch,
    messages,
    ownership,
    promotion,
    quota,
    storage,
    throttling,
    ui_answers,
)
from mlflow_bridge.edge.errors import BridgeError, Unauthenticated, not_found, too_large
from mlflow_bridge.edge.permissions import permissions_for
from mlflow_bridge.edge.rewrite import RequestRewriter, tag_job_run
from mlflow_bridge.edge.routes import BodyKind, Route, route_for
from mlflow_bridge.edge.sharinghub_session import SharingHubSessionAuthentication
from mlflow_bridge.embedded import mlflow_app, parse, policy, registry
from projects import access, visibility

TRACKING_SEGMENT = "tracking"
# Methods whose body MLflow always reads; it reads a GET's too when it has no query string.
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


Matched = tuple[Rule, dict]  # MLflow's rule for a request, and its path arguments


class Location(NamedTuple):
    """A tracking URL split, and MLflow's rule for its rest, matched once per request."""

    project_path: str
    rest: str | None  # None: the URL stops at `/tracking` without its slash
    matched: Matched | None  # None: MLflow has no rule for this path and method


def match_mlflow_rule(path: str, method: str) -> tuple[bool, Matched | None]:
    """Whether MLflow serves `path` (with any method), and its rule and path arguments for
    `method` (None when it has none)."""
    adapter = mlflow_app.flask_app().url_map.bind("localhost")
    try:
        return True, adapter.match(path, method, return_rule=True)
    except HTTPException as exc:
        return exc.code == 405, None


def split_location(location: str, method: str = "GET") -> Location:
    """Split `<project path>/tracking/<rest>` into the project path and `/<rest>`.

    A project path may itself contain a `tracking` segment (`a/tracking/tracking/`): the split
    chosen is the leftmost whose rest is a route MLflow serves. The rule found for `method`
    while choosing is kept, so a request's path is matched once.
    """
    segments = location.split("/")
    splits = [i for i, segment in enumerate(segments) if segment == TRACKING_SEGMENT and i > 0]
    if not splits:
        raise not_found()
    for i in splits:
        rest = "/" + "/".join(segments[i + 1 :])
        if i + 1 < len(segments):
            served, matched = match_mlflow_rule(rest, method)
            if served:
                return Location("/".join(segments[:i]), rest, matched)
    last = splits[-1]
    if last == len(segments) - 1:
        return Location("/".join(segments[:last]), None, None)
    return Location("/".join(segments[:last]), "/" + "/".join(segments[last + 1 :]), None)


def _encodes_a_slash(request: HttpRequest, project_path: str) -> bool:
    """GitLab path segments never contain "/": `ml%2Fteam/proj` names no project."""
    raw_uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or ""
    raw_location = raw_uri.split("?", 1)[0].split("/mlflow/", 1)[-1]
    raw_project = "/".join(raw_location.split("/")[: project_path.count("/") + 1])
    return "%2f" in raw_project.lower()


def read_json_body(request: HttpRequest) -> bytes:
    """The JSON body, at most MAX_JSON_BODY_SIZE bytes, else 413; b"" when there is none.

    Whatever the method: MLflow reads the body of a GET that has no query string.
    """
    if declared_length(request) is not None:
        return _read(request.read)
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django sees no length and would read nothing; gunicorn de-chunks the raw stream.
        limit = settings.MAX_JSON_BODY_SIZE
        body = _read(request.META["wsgi.input"].read, limit + 1)
        if len(body) > limit:
            raise too_large(limit)
        return body
    return b""


def declared_length(request: HttpRequest) -> int | None:
    """The body's Content-Length, at most MAX_JSON_BODY_SIZE (else 413); None without one."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length:
        return None
    if not length.isdecimal():
        raise BridgeError("MALFORMED_REQUEST", "Content-Length is not a number.")
    if int(length) > settings.MAX_JSON_BODY_SIZE:
        raise too_large(settings.MAX_JSON_BODY_SIZE)
    return int(length)


def check_declared_length(request: HttpRequest) -> None:
    """A body MLflow will read whole must say its length, at most MAX_JSON_BODY_SIZE."""
    if declared_length(request) is None:
        raise BridgeError(
            "INVALID_PARAMETER_VALUE", "Send this file with a Content-Length (not chunked).",
            status=411,
        )  # fmt: skip


def _read(read, *size: int) -> bytes:
    """The body, or a 400 when its framing is broken."""
    try:
        return read(*size)
    except dispatch.BODY_READ_ERRORS as exc:
        raise dispatch.unreadable_body(exc)


def query_fields(query_string: str) -> dict[str, str | list[str]]:
    """A query string as fields; a repeated key becomes a list, as in a JSON body."""
    fields: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


def check_required(route: Route, document: dict) -> None:
    missing = [field for field in route.required if not isinstance(document.get(field), str)]
    if missing:
        raise BridgeError(
            "INVALID_PARAMETER_VALUE", f"Missing required string field(s): {', '.join(missing)}."
        )


def check_contents(fields: dict, workspace: str) -> None:
    """What a request names must be this project's, and where data lives is not the client's.
    (Tags are the author stamp's: one walk of a write's body replaces authors and refuses
    server keys; a read stores no tag, and queries and headers carry none MLflow stores.)"""
    ownership.check_references(fields, workspace)
    storage.check_artifact_fields(fields)


class AnyAccept(BaseContentNegotiation):
    """MLflow answers whatever its client or UI accepts: never DRF's 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return None


class TrackingView(APIView):
    """Every project's MLflow server, behind DRF's authentication, permission and throttle
    classes (see the module docstring for the order of a request)."""

    # authentication_classes: REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES.
    throttle_classes = (throttling.PrincipalRateThrottle, throttling.AnonymousPerAddressThrottle)
    # DRF never parses a body here and never renders one: MLflow's answer is passed on as is.
    parser_classes = ()
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = AnyAccept

    @property
    def default_response_headers(self) -> dict[str, str]:
        return {}  # no Allow, no Vary: Accept; MLflow's headers only

    def initial(self, request: Request, *args, location: str, **kwargs) -> None:
        if not self.locate(request, location):
            return  # answered with a redirect, before anything else
        self.negotiate(request)
        self.perform_authentication(request)
        # Before the project is looked up: a GitLab call per unknown path counts too.
        self.check_throttles(request)
        self.find_project(request)
        self.check_permissions(request)  # the project's: a non-member learns nothing more
        if self.answer_workspace_call(request):
            return
        self.find_route(request)
        self.check_permissions(request)  # the route's

    def negotiate(self, request: Request) -> None:
        """What DRF's own error paths read (AnyAccept: whatever the Accept, never a 406)."""
        self.format_kwarg = None
        renderer, media_type = self.perform_content_negotiation(request)
        request.accepted_renderer, request.accepted_media_type = renderer, media_type

    def locate(self, request: Request, location: str) -> bool:
        """Split the URL into project path and MLflow path; False when it needs a slash."""
        project_path, rest, matched = split_location(location, request.method)
        remember(request, project_path=project_path, rest=rest, matched=matched)
        remember(request, bridge_answer=None)
        if rest is None:
            return False
        if not project_path or "" in project_path.split("/"):
            raise not_found()
        if _encodes_a_slash(request, project_path):
            raise not_found()
        return True

    def find_project(self, request: Request) -> None:
        if request.auth is None:  # an anonymous reader (visibility.anonymous_reads)
            found = access.public_access_to(
                request.project_path, lambda: throttling.check_lookup(request)
            )
        else:
            found = access.access_to(request.auth, request.project_path)
        remember(request, project_access=found)

    def answer_workspace_call(self, request: Request) -> bool:
        answer = ui_answers.answer(request.method, request.rest, request.project_access)
        remember(request, bridge_answer=answer)
        return answer is not None

    def find_route(self, request: Request) -> None:
        """MLflow's rule for the request and the route table's row for it (deny by default)."""
        matched = request.matched
        if matched is None:
            raise BridgeError(
                "ENDPOINT_NOT_FOUND", f"MLflow has no {request.method} route at {request.rest}."
            )
        rule, path_arguments = matched
        route = route_for(rule, request.method)
        if route is None:
            raise BridgeError(
                "PERMISSION_DENIED",
                f"{request.method} {request.rest} has no access rule and is refused.",
            )
        remember(request, rule=rule, path_arguments=path_arguments, route=route)

    def perform_authentication(self, request: Request) -> None:
        try:
            user = request.user
        except Unauthenticated:
            throttling.record_failure(request)
            raise
        if not user.is_authenticated and not visibility.anonymous_reads():
            raise sign_in_required()
        # The UI's bar logs a SharingHub session out at SharingHub (browser.with_banner).
        remember(request, sharinghub_session=isinstance(
            request.successful_authenticator, SharingHubSessionAuthentication))  # fmt: skip

    def get_permissions(self):
        return [
            permission() for permission in permissions_for(getattr(self.request, "route", None))
        ]

    def permission_denied(self, request: Request, message: str, code: str) -> None:
        if request.auth is None:  # anonymous: whatever was refused, signing in may help
            raise sign_in_required()
        raise BridgeError(code, message)

    def get(self, request: Request, location: str) -> HttpResponse:
        if request.rest is None:
            # MLflow's UI uses relative URLs: without the slash they resolve one level too high.
            path = request.path
            return HttpResponsePermanentRedirect(
                request.get_full_path().replace(path, path + "/", 1), preserve_request=True
            )
        if request.bridge_answer is not None:
            return request.bridge_answer
        return forward(request)

    post = put = patch = delete = head = options = get


def sign_in_required() -> Unauthenticated:
    return Unauthenticated(
        "Authentication required: set MLFLOW_TRACKING_TOKEN to a GitLab token with the "
        "read_api scope."
    )


def remember(request: Request, **facts: object) -> None:
    """Keep what the view learnt on Django's request too: the access log and the browser
    wrapper read it there."""
    for name, value in facts.items():
        setattr(request._request, name, value)


def forward(request: Request) -> HttpResponse:
    """Rewrite the request for the project, check what it names, and let MLflow answer."""
    project = request.project_access.project
    route: Route = request.route
    mlflow_app.ensure_workspace(project.workspace, description=project.path)
    rewriter = RequestRewriter(
        route, project.id, lambda: mlflow_app.default_experiment_id(project.workspace)
    )
    query_string = rewriter.query_string(request.META.get("QUERY_STRING", ""))
    check_contents(query_fields(query_string), project.workspace)
    path_info = request.rest
    if route.follows_source:
        path_info, query_string = followed_source(request, query_string)
    check_path_arguments(request, project.workspace)
    upload_size = quota.check(project, request, route)
    headers = header_fields(request, rewriter)
    if route.tells_author:
        headers[policy.AUTHOR_ENVIRON_KEY] = request.project_access.user.username
    body = request_body(request, rewriter)
    environ = dispatch.mlflow_environ(
        request.META,
        script_name=f"{request.META.get('SCRIPT_NAME', '')}/mlflow/{request.project_path}/tracking",
        path_info=path_info,
        query_string=query_string,
        workspace=project.workspace,
        body=body,
        headers=headers,
    )
    with parse.reused(getattr(request, "parsed", None)):
        response = dispatch.call_mlflow(environ, project.workspace)
    quota.record(project, request, route, upload_size, response.status_code)
    return response


def request_body(request: Request, rewriter: RequestRewriter) -> bytes | None:
    """The body MLflow reads: JSON checked and rewritten, OTLP read within the limit (its
    endpoint parses it), a file left unread (None: the client's stream), and so is a GET (or
    HEAD, OPTIONS) without a body, which reaches MLflow exactly as it came."""
    route: Route = request.route
    if route.body is BodyKind.OTLP:
        return read_json_body(request)
    if route.body is BodyKind.BUFFERED_FILE:
        check_declared_length(request)
    if route.body not in (BodyKind.JSON, BodyKind.GRAPHQL):
        return None
    raw = read_json_body(request)
    if not raw and request.method not in METHODS_WITH_BODY:
        return None
    body, document = rewriter.json_body(raw)
    remember(request, parsed=messages.check_parses(request.method, request.rule.rule, document))
    check_required(route, document)
    if route.body is BodyKind.GRAPHQL:
        messages.check_graphql(document)
    check_contents(document, request.project_access.project.workspace)
    check_promotion(request, document)
    user = request.project_access.user
    if user is not None:  # anonymous callers only read: nothing of theirs to sign
        body, document = authorship.stamp(user.username, route, body, document)
    return tag_job_run(request.project_access, route, body, document)


def check_promotion(request: Request, document: dict) -> None:
    """A row that may touch a protected model alias: its permission classes judge what this
    body would change (DRF's object permissions, the object being the promotion)."""
    promotes = request.route.promotes
    if promotes is not None:
        workspace = request.project_access.project.workspace
        found = promotion.promotion(promotes, document, workspace)
        request.parser_context["view"].check_object_permissions(request, found)


def followed_source(request: Request, query_string: str) -> tuple[str, str]:
    """A model version's artifact, read where its source chain ends (registry.py); what the
    request then names is checked again."""
    workspace = request.project_access.project.workspace
    path_info, fields = registry.follow_source(request.rest, query_string, workspace)
    if fields is None:
        return path_info, query_string
    check_contents(fields, workspace)
    return path_info, urlencode(fields)


def header_fields(request: Request, rewriter: RequestRewriter) -> dict[str, str]:
    """The route's id-carrying headers, rewritten and checked like body fields; keyed by their
    WSGI environ key, as MLflow must see them."""
    present = [(key, field) for key, field in request.route.headers if key in request.META]
    fields = rewriter.fields({field: request.META[key] for key, field in present})
    check_contents(fields, request.project_access.project.workspace)
    return {key: fields[field] for key, field in present}


def check_path_arguments(request: Request, workspace: str) -> None:
    ownership.check_references(request.path_arguments, workspace)
    if "artifact_path" in request.path_arguments:
        storage.check_artifact_path(
            request.path_arguments["artifact_path"], deleting=request.method == "DELETE"
        )


tracking = TrackingView.as_view()
