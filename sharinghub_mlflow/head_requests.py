"""An answer to HEAD carries headers only (RFC 9110, section 9.3.2).

MLflow's answers already come without a body (Werkzeug drops it), but Django leaves that to
the server, and gunicorn sends whatever body it is given: on a kept-alive connection (gthread
workers keep connections open) the client would read those bytes as the start of its next
answer. Content-Length keeps telling the size a GET would get.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase


class HeadWithoutBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.method != "HEAD":
            return response
        if response.streaming:
            # The stream it replaces stays among the response's closers: the server's close()
            # still releases what it holds (MLflow's answer, an open file).
            response.streaming_content = []
        elif isinstance(response, HttpResponse) and response.content:
            response.headers.setdefault("Content-Length", str(len(response.content)))
            response.content = b""
        return response
