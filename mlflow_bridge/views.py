"""The tracking view: one request from URL to MLflow's streamed answer.

URL → authentication → project and role (cache, GitLab on a miss) → route rule → permission
classes → rewrite → in-process MLflow → streamed response.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.views.decorators.csrf import csrf_exempt
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from mlflow_bridge import authorship, dispatch, messages, mlflow_app, ownership, storage, ui_answers
from mlflow_bridge.authentication import (
    authenticate,
    tag_job_run,
    token_refused,
    unauthenticated,
)
from mlflow_bridge.errors import BridgeError, error_response, gitlab_unavailable, not_found
from mlflow_bridge.permissions import permissions_for
from mlflow_bridge.rewrite import RequestRewriter
from mlflow_bridge.routes import Route, route_for
from projects import access, gitlab

TRACKING_SEGMENT = "tracking"
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def match_mlflow_rule(path: str, method: str) -> tuple[Rule, dict] | None:
    """MLflow's rule for a path below the tracking prefix and its path arguments, or None."""
    adapter = flask_app_url_adapter()
    try:
        return adapter.match(path, method, return_rule=True)
    except HTTPException:
        return None


def flask_app_url_adapter():
    return mlflow_app.flask_app().url_map.bind("localhost")


def split_location(location: str) -> tuple[str, str | None]:
    """Split `<project path>/tracking/<rest>` into the project path and `/<rest>`.

    A project path may itself contain a `tracking` segment (`a/tracking/tracking/`): the split
    chosen is the leftmost whose rest is a route MLflow serves. `rest` is None when the URL
    stops at `/tracking` without its slash.
    """
    segments = location.split("/")
    splits = [i for i, segment in enumerate(segments) if segment == TRACKING_SEGMENT and i > 0]
    if not splits:
        raise not_found()
    for i in splits:
        rest = "/" + "/".join(segments[i + 1 :])
        if i + 1 < len(segments) and _mlflow_serves(rest):
            return "/".join(segments[:i]), rest
    last = splits[-1]
    if last == len(segments) - 1:
        return "/".join(segments[:last]), None
    return "/".join(segments[:last]), "/" + "/".join(segments[last + 1 :])


def _mlflow_serves(path: str) -> bool:
    adapter = flask_app_url_adapter()
    try:
        adapter.match(path, "GET")
    except HTTPException as exc:
        return exc.code == 405
    return True


def _encodes_a_slash(request: HttpRequest, project_path: str) -> bool:
    """GitLab path segments never contain "/": `ml%2Fteam/proj` names no project."""
    raw_uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or ""
    raw_location = raw_uri.split("?", 1)[0].split("/mlflow/", 1)[-1]
    raw_project = "/".join(raw_location.split("/")[: project_path.count("/") + 1])
    return "%2f" in raw_project.lower()


def check_permissions(request: HttpRequest) -> None:
    """The one place that turns a permission's "no" into an error (404 or 403)."""
    for permission_class in permissions_for(request.route):
        permission = permission_class()
        if not permission.has_permission(request):
            if permission.status == 404:
                raise not_found()
            raise BridgeError("PERMISSION_DENIED", permission.describe(request))


def read_json_body(request: HttpRequest) -> bytes:
    """The JSON body, at most MAX_JSON_BODY_SIZE bytes, else 413."""
    limit = settings.MAX_JSON_BODY_SIZE
    length = request.META.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isdigit():
            raise BridgeError("MALFORMED_REQUEST", "Content-Length is not a number.")
        if int(length) > limit:
            raise BridgeError(
                "REQUEST_LIMIT_EXCEEDED",
                f"The request body is larger than {limit} bytes (MAX_JSON_BODY_SIZE). "
                "Log large data as artifacts.",
            )
        return request.read()
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django sees no length and would read nothing; gunicorn de-chunks the raw stream.
        body = request.META["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise BridgeError("REQUEST_LIMIT_EXCEEDED", f"The request body exceeds {limit} bytes.")
        return body
    return b""


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
    """What a request names must be this project's, and where data lives is not the client's."""
    ownership.check_references(fields, workspace)
    storage.check_artifact_fields(fields)
    storage.check_reserved_tags(fields)


def carries_file(rule: Rule) -> bool:
    """Artifact uploads are streamed to MLflow unread; everything else is a small JSON body."""
    return "<path:artifact_path>" in rule.rule or rule.rule.endswith("/upload-artifact")


@csrf_exempt
def tracking(request: HttpRequest, location: str) -> HttpResponse:
    try:
        return serve_tracking(request, location)
    except gitlab.GitLabUnavailable as exc:
        return error_response(gitlab_unavailable(exc))
    except gitlab.TokenRejected as exc:
        # GitLab may refuse the token on the project call too (revoked since, or too narrow).
        return error_response(token_refused(exc))
    except BridgeError as error:
        return error_response(error)


def serve_tracking(request: HttpRequest, location: str) -> HttpResponse:
    project_path, rest = split_location(location)
    if rest is None:
        # MLflow's UI uses relative URLs: without the slash they resolve one level too high.
        return HttpResponsePermanentRedirect(
            request.get_full_path().replace(request.path, request.path + "/", 1),
            preserve_request=True,
        )
    if not project_path or "" in project_path.split("/") or _encodes_a_slash(request, project_path):
        raise not_found()

    authenticated = authenticate(request)
    if authenticated is None:
        raise unauthenticated(
            "Authentication required: set MLFLOW_TRACKING_TOKEN to a GitLab token "
            "with the read_api scope."
        )
    user, token = authenticated
    project_access = access.access_to(token, user, project_path)
    if (
        project_access is None
        or not project_access.can_read
        or not access.is_served(project_access.project)
    ):
        raise not_found()
    if ui_answer := ui_answers.answer(request.method, rest, project_access):
        return ui_answer

    matched = match_mlflow_rule(rest, request.method)
    if matched is None:
        raise BridgeError("ENDPOINT_NOT_FOUND", f"MLflow has no {request.method} route at {rest}.")
    rule, path_arguments = matched
    route = route_for(rule, request.method)
    if route is None:
        raise BridgeError(
            "PERMISSION_DENIED", f"{request.method} {rest} has no access rule and is refused."
        )
    request.project_access = project_access
    request.route = route
    check_permissions(request)

    project = project_access.project
    mlflow_app.ensure_workspace(project.workspace, description=project.path)
    rewriter = RequestRewriter(
        route, project.id, lambda: mlflow_app.default_experiment_id(project.workspace)
    )
    query_string = rewriter.query_string(request.META.get("QUERY_STRING", ""))
    check_contents(query_fields(query_string), project.workspace)
    ownership.check_references(path_arguments, project.workspace)
    if "artifact_path" in path_arguments:
        storage.check_artifact_path(
            path_arguments["artifact_path"], deleting=request.method == "DELETE"
        )
    body = None
    if request.method in METHODS_WITH_BODY and not carries_file(rule):
        body, document = rewriter.json_body(read_json_body(request))
        messages.check_parses(request.method, rule.rule, document)
        check_required(route, document)
        check_contents(document, project.workspace)
        body, document = authorship.stamp(project_access.user.username, route, body, document)
        body = tag_job_run(project_access, route, body, document)
    environ = dispatch.mlflow_environ(
        request.META,
        script_name=f"{request.META.get('SCRIPT_NAME', '')}/mlflow/{project_path}/tracking",
        path_info=rest,
        query_string=query_string,
        workspace=project.workspace,
        body=body,
    )
    return dispatch.call_mlflow(environ, project.workspace)
