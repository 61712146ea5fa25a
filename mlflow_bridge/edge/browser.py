"""What a browser gets from the tracking view that an API client does not.

- A page opened while logged out leads to the login page (then back), not to a 401.
- A 404 is the HTML 404 page: the same for a project that does not exist and for one the
  user is not a member of, as the JSON answer is.
- MLflow's UI (its index.html) gets SharingHub's banner, and a script that keeps the UI on the
  project's workspace (see ui_answers.py) whatever a stale URL or localStorage says.
- MLflow's notebook trace renderer, framed by a notebook, is rebased under the project, or
  says how to sign in (notebook.py): never the login page, which a frame cannot use.

API clients (anything not asking for HTML, or sending a token) get the bridge's JSON as is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from mlflow_bridge.edge import notebook, sharinghub_session
from mlflow_bridge.edge.authentication import carries_token
from mlflow_bridge.edge.ui_answers import describe
from projects import visibility
from projects.records import ProjectAccess


def asks_for_a_page(request: HttpRequest) -> bool:
    """A browser navigating (address bar, link), as opposed to a script or the UI's own calls."""
    return (
        request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("Accept", "")
        and not carries_token(request)
    )


def for_browsers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the tracking view with the browser answers above."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if notebook.is_renderer_page(getattr(request, "rest", None)):
            return notebook.renderer_answer(request, response)
        if isinstance(response, JsonResponse):  # the bridge's own answers, not MLflow's
            return _page_for(request, response) or response
        route = getattr(request, "route", None)
        if route is not None and route.banner and request.method == "GET":
            return with_banner(request, response)
        return response

    return wrapped


def _page_for(request: HttpRequest, response: JsonResponse) -> HttpResponse | None:
    if response.status_code == 401:
        if asks_for_a_page(request):
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if "Sec-Fetch-Mode" in request.headers and not carries_token(request):
            # A browser answers a Basic challenge with its own password dialog: only Bearer.
            response["WWW-Authenticate"] = 'Bearer realm="mlflow"'
        return None
    if response.status_code == 404 and asks_for_a_page(request):
        return not_found_page(request)
    return None


def not_found_page(request: HttpRequest) -> HttpResponse:
    """The one HTML 404 page: it says nothing about whether the project exists."""
    return render(request, "404.html", status=404)


# MLflow 3.17's controls (their data-component-id) that create, change or delete: not offered
# to a read-only role, whom the server would refuse. A page-header menu holds Rename and
# Delete; "New run" only starts a write.
WRITE_CONTROLS = (
    "mlflow.experiment_list_view.new_experiment_button",
    "mlflow.experiment_list_view.bulk_delete_button",
    "mlflow.experiment.list.tag.add",
    "codegen_mlflow_app_src_experiment-tracking_components_experiment-page_components_runs_"
    "experimentviewrunscontrolsfilters.tsx_415",
    "codegen_mlflow_app_src_shared_building_blocks_pageheader.tsx_54",
    "codegen_mlflow_app_src_model-registry_components_promotemodelbutton.tsx_165",
    "codegen_mlflow_app_src_model-registry_components_aliases_modelversionviewaliaseditor.tsx_29",
    "codegen_mlflow_app_src_model-registry_components_aliases_modelversiontablealiasescell.tsx_30",
    "codegen_mlflow_app_src_model-registry_components_modelversionview.tsx_516",
    "mlflow.prompts.details.create",
    "mlflow.prompts.details.tags.edit",
    "mlflow.prompts.details.delete_version",
    "mlflow.prompts.details.version.add_tags",
    "mlflow.prompts.details.version.edit_model_config",
    "mlflow.prompts.details.preview.optimize",
)


def with_banner(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """MLflow's index.html with SharingHub's banner and workspace script before </body>."""
    if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
        return response
    try:
        page = b"".join(response.streaming_content)
    finally:
        response.close()
    project_access: ProjectAccess = request.project_access
    banner = render_to_string(
        "banner.html",
        {
            "project": project_access.project,
            "role": project_access.role,
            "read_only": not project_access.can_write,
            "sharinghub_logout_url": sharinghub_session.logout_url()
            if getattr(request, "sharinghub_session", False)
            else "",
            "public_read": visibility.is_public_read(project_access.project, project_access.level),
            "write_controls": () if project_access.can_write else WRITE_CONTROLS,
            "workspace_json": json.dumps(describe(project_access.project)["name"]),
        },
        request=request,
    )
    page = page.replace(b"</body>", banner.encode() + b"</body>", 1)
    injected = HttpResponse(page, status=200, content_type=response["Content-Type"])
    # The page now depends on who asks: never reuse it from a cache.
    injected["Cache-Control"] = "no-store"
    return injected
