"""Who may show which page in a frame: one table, applied to every answer by one middleware.

- MLflow's notebook trace renderer: any page, as a bare MLflow server allows ("allow iframe
  embedding in Jupyter", mlflow/server/security.py). No header at all: CSP's `*` would leave
  out notebooks served from other schemes (VS Code's `vscode-webview:`). The page holds no
  data; what it reads is the viewer's, authenticated like MLflow's UI (edge/notebook.py).
- The admin: nobody, not even this site.
- Everything else (MLflow's UI, the portal, the connect and login pages): this site and the
  origins of FRAME_ANCESTORS (default: SHARINGHUB_URL's), as SharingHub's "Model experiments"
  tab frames a project's MLflow UI.

`Content-Security-Policy: frame-ancestors` replaces Django's X-Frame-Options middleware, whose
DENY no browser would let SharingHub draw; the admin keeps X-Frame-Options for old browsers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from mlflow_bridge.edge.notebook import RENDERER_PATH


class Framing(enum.Enum):
    ANYONE = "anyone"
    ALLOWED_ORIGINS = "allowed origins"
    NOBODY = "nobody"


# First match wins, on the path below SCRIPT_NAME; unmatched: ALLOWED_ORIGINS.
FRAMING: list[tuple[re.Pattern[str], Framing]] = [
    (re.compile(rf"^/mlflow/.+/tracking{re.escape(RENDERER_PATH)}/"), Framing.ANYONE),
    (re.compile(r"^/admin/"), Framing.NOBODY),
]


def framing_of(path: str) -> Framing:
    return next((rule for pattern, rule in FRAMING if pattern.match(path)), Framing.ALLOWED_ORIGINS)


def frame_ancestors() -> str:
    return " ".join(["frame-ancestors 'self'", *settings.FRAME_ANCESTORS])


class FramingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        framing = framing_of(request.path_info)
        if framing is Framing.ALLOWED_ORIGINS:
            response["Content-Security-Policy"] = frame_ancestors()
        elif framing is Framing.NOBODY:
            response["Content-Security-Policy"] = "frame-ancestors 'none'"
            response["X-Frame-Options"] = "DENY"
        return response
