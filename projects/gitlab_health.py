"""Whether GitLab answers, as this service has seen it: since when it has not, and what to tell.

gitlab.py records every call's outcome here; errors.gitlab_unavailable decides from it how a
request that needs GitLab is refused (a retryable 503 in a short outage, a 424 in a long one).
The first answer from GitLab ends the outage.

The clock lives in Django's cache, so with CACHE_URL (Redis) every worker and replica shares it.
"""

from __future__ import annotations

import time

from django.core.cache import cache

DOWN_SINCE_KEY = "gitlab-health:down-since"


def record_answer() -> None:
    """GitLab answered (any status but 429 and 5xx): no outage."""
    if cache.get(DOWN_SINCE_KEY) is not None:
        cache.delete(DOWN_SINCE_KEY)


def record_failure() -> None:
    """GitLab was unreachable, timed out, or answered 429 or 5xx: the outage starts now, unless
    it started before."""
    cache.add(DOWN_SINCE_KEY, time.time(), timeout=None)


def down_for() -> float | None:
    """Seconds since GitLab stopped answering, or None while it answers."""
    since = cache.get(DOWN_SINCE_KEY)
    return None if since is None else max(0.0, time.time() - since)


def status() -> str:
    """One word or phrase for /readyz: "ok", or how long GitLab has not answered."""
    seconds = down_for()
    return "ok" if seconds is None else f"unreachable for {int(seconds)}s"
