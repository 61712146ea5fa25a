"""Cookies set over HTTPS get the Secure flag; over plain HTTP (local runs, tests) they cannot.

Django's SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE are fixed per deployment; this decides
per request instead, from `request.is_secure()` (which trusts X-Forwarded-Proto only when
TRUST_X_FORWARDED_PROTO is set). HttpOnly and SameSite=Lax come from settings.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SecureCookiesOverHttpsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
