"""MLflow's notebook trace renderer under a project: its page rebased below the project's
prefix, and, for a viewer who cannot read the trace, a page saying how to sign in.

MLflow's client shows a trace in Jupyter as an `<iframe>` of `<tracking URI>` + RENDERER_PATH
+ `/index.html?trace_id=...` (mlflow/tracing/display/display_handler.py). The page MLflow ships
says `<base href="/">` and loads `/static-files/...`: a bare server's root. Here the root is the
project's prefix, so both are rewritten; the renderer's own calls are relative to the base and
reach the project's API with the browser's session, like MLflow's UI.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from mlflow_bridge.embedded.mlflow_app import NOTEBOOK_RENDERER_PATH

RENDERER_PATH = NOTEBOOK_RENDERER_PATH  # "/static-files/lib/notebook-trace-renderer"
RENDERER_PAGE = f"{RENDERER_PATH}/index.html"
# Refusals that mean "this viewer cannot read the trace": signed out, or not allowed to read.
SIGN_IN_STATUSES = frozenset({401, 404})


def is_renderer_page(rest: str | None) -> bool:
    return rest == RENDERER_PAGE


def renderer_answer(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """The tracking view's answer to the renderer's page, made fit for a notebook's frame."""
    if isinstance(response, JsonResponse) and response.status_code in SIGN_IN_STATUSES:
        return sign_in_page(request, response.status_code)
    if response.status_code != 200:
        return response
    return rebased(response, project_prefix(request))


def project_prefix(request: HttpRequest) -> str:
    """`<SCRIPT_NAME>/mlflow/<project>/tracking/`: the request's path without MLflow's part."""
    return request.path[: -len(request.rest)] + "/"


def rebased(response: HttpResponse, prefix: str) -> HttpResponse:
    try:
        page = b"".join(response.streaming_content) if response.streaming else response.content
    finally:
        response.close()
    page = page.replace(b'<base href="/">', f'<base href="{prefix}">'.encode(), 1)
    page = page.replace(b'src="/static-files/', b'src="static-files/')
    answer = HttpResponse(page, content_type=response["Content-Type"])
    # The same URL answers the sign-in page to a signed-out viewer: never reuse either.
    answer["Cache-Control"] = "no-store"
    return answer


def sign_in_page(request: HttpRequest, status: int) -> HttpResponse:
    """Signed out, or not allowed to read (the same words: nothing says whether the project
    exists), with a link opening the service in a new tab: the frame itself cannot sign in."""
    page = render_to_string(
        "trace_sign_in.html", {"project_url": project_prefix(request)}, request=request
    )
    answer = HttpResponse(page, status=status)
    answer["Cache-Control"] = "no-store"
    return answer
