"""Throttles: DRF's SimpleRateThrottle, counting in Django's cache (shared by every worker and
replica with CACHE_URL; per process without it).

What costs GitLab calls is a credential the service has not seen: each is asked of GitLab
(GET /user, for some tokens GET /job too). So:

- before GitLab is asked about an unknown credential, `check_lookup` refuses (429) once the
  client's address has failed to authenticate too often, or asked too many lookups, or all
  clients together have (GitLabLookups*Throttle);
- a failed authentication is counted per address, and past the limit answers 429 rather
  than 401 (`record_failure`);
- a known, valid credential never waits for others' failures (a CI runner's address may
  carry one broken job beside many good ones); only the optional per-user rate applies to it
  (PrincipalRateThrottle, off unless THROTTLE_PRINCIPAL_RATE is set).

The client's address is REMOTE_ADDR, or with TRUSTED_PROXIES=n the address the n-th proxy
from us saw in X-Forwarded-For (DRF's NUM_PROXIES, as werkzeug's ProxyFix x_for).
"""

from __future__ import annotations

from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class RateThrottle(SimpleRateThrottle):
    """A SimpleRateThrottle whose rate is read when it is made (settings may change in tests)."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def cache_key_for(self, ident: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressThrottle(RateThrottle):
    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_key_for(self.get_ident(request))


class GitLabLookupsPerAddressThrottle(AddressThrottle):
    """Limits how many unknown credentials one address makes the service ask GitLab about."""

    scope = "gitlab_lookups_per_address"


class GitLabLookupsThrottle(RateThrottle):
    """Limits how many unknown credentials all clients together make the service look up."""

    scope = "gitlab_lookups"

    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_key_for("all")


class FailedAuthenticationsPerAddressThrottle(AddressThrottle):
    """Limits the failed authentications of one address; counts only failures."""

    scope = "failed_authentications_per_address"

    def is_exhausted(self, request: Request) -> bool:
        """Whether the address has no failure left, without counting this request."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests


class PrincipalRateThrottle(RateThrottle):
    """Limits the requests of one GitLab user, whatever their credential (off by default)."""

    scope = "principal"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        user = request.user
        return self.cache_key_for(user.pk) if user is not None and user.is_authenticated else None


def refuse(throttle: RateThrottle, why: str) -> Throttled:
    # DRF's Throttled adds "Expected available in N seconds." and the Retry-After header.
    return Throttled(throttle.wait(), detail=why)


def check_lookup(request: Request) -> None:
    """Before GitLab is asked about an unknown credential: 429 past any limit."""
    failures = FailedAuthenticationsPerAddressThrottle()
    if failures.is_exhausted(request):
        raise refuse(failures, "Too many failed authentications from your address.")
    for throttle, why in (
        (GitLabLookupsPerAddressThrottle(), "Too many new credentials from your address."),
        (GitLabLookupsThrottle(), "Too many new credentials are being checked right now."),
    ):
        if not throttle.allow_request(request, None):
            raise refuse(throttle, why)


def record_failure(request: Request) -> None:
    """Count a failed authentication of the request's address; 429 past the limit."""
    failures = FailedAuthenticationsPerAddressThrottle()
    if not failures.allow_request(request, None):
        raise refuse(failures, "Too many failed authentications from your address.")
