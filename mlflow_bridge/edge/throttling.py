"""Throttles: DRF's SimpleRateThrottle, counting in Django's cache (shared by every worker and
replica with CACHE_URL; per process without it).

What costs GitLab calls is a credential the service has not seen: each is asked of GitLab
(GET /user, for some tokens GET /job too). So:

- before GitLab is asked about an unknown credential, `check_lookup` refuses (429) once the
  client's address has failed to authenticate too often, or asked too many lookups, or all
  clients together have (GitLabLookups*Throttle);
- a failed authentication is counted per address, and past the limit answers 429 rather
  than 401 (`record_failure`);
- a known, valid credential never waits for others' failures, not even when its cached answer
  is renewed (a CI runner's address may carry one broken job beside many good ones); only the
  optional per-user rate applies to it (PrincipalRateThrottle, off unless
  THROTTLE_PRINCIPAL_RATE is set), counted before the project is looked up.

The client's address is REMOTE_ADDR, or with TRUSTED_PROXIES=n the address the n-th proxy
from us saw in X-Forwarded-For (DRF's NUM_PROXIES, as werkzeug's ProxyFix x_for).
"""

from __future__ import annotations

import ipaddress

from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class RateThrottle(SimpleRateThrottle):
    """A SimpleRateThrottle whose rate is read when it is made (settings may change in tests),
    and which can peek: answer as allow_request would, without counting the request."""

    recording = True

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def throttle_success(self) -> bool:
        return super().throttle_success() if self.recording else True

    def peek(self, request: Request, view: object = None) -> bool:
        """Whether allow_request would let the request through, without counting it: DRF's
        own bookkeeping (key, history, now, duration, and so wait()), minus the recording."""
        self.recording = False
        try:
            return self.allow_request(request, view)
        finally:
            self.recording = True

    def cache_key_for(self, ident: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressThrottle(RateThrottle):
    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_key_for(client_network(self.get_ident(request)))


def client_network(address: str | None) -> str:
    """An IPv4 address as it is; an IPv6 address by its /64, which one client usually holds
    whole (else each of its 2**64 addresses would get a rate of its own)."""
    try:
        parsed = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "invalid"  # one shared count, and never a header's text as a cache key
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


class GitLabLookupsPerAddressThrottle(AddressThrottle):
    """Limits how many unknown credentials one address makes the service ask GitLab about."""

    scope = "gitlab_lookups_per_address"


class GitLabLookupsThrottle(RateThrottle):
    """Limits how many unknown credentials all clients together make the service look up."""

    scope = "gitlab_lookups"

    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_key_for("all")


class FailedAuthenticationsPerAddressThrottle(AddressThrottle):
    """Limits the failed authentications of one address; counts only failures (record_failure),
    and is peeked at before an unknown credential is looked up."""

    scope = "failed_authentications_per_address"


class PrincipalRateThrottle(RateThrottle):
    """Limits the requests of one GitLab user, whatever their credential (off by default)."""

    scope = "principal"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        user = request.user
        return self.cache_key_for(user.pk) if user is not None and user.is_authenticated else None


def refuse(throttle: RateThrottle, why: str) -> Throttled:
    # DRF's Throttled adds "Expected available in N seconds." and the Retry-After header.
    # wait() is None when the history outgrew the rate (an operator lowered it): a full period.
    return Throttled(throttle.wait() or throttle.duration, detail=why)


def check_lookup(request: Request) -> None:
    """Before GitLab is asked about an unknown credential: 429 past any limit."""
    failures = FailedAuthenticationsPerAddressThrottle()
    if not failures.peek(request):
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
