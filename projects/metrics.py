"""The counters of GitLab calls and membership cache lookups (Prometheus).

Defined here, at the bottom, where they are counted; the site's /metrics (observability.py)
exposes them with every other metric of the process's registry.
"""

from prometheus_client import Counter

GITLAB_CALLS = Counter("sharinghub_gitlab_calls_total", "Calls to GitLab's API.", ["outcome"])
CACHE_LOOKUPS = Counter(
    "sharinghub_membership_cache_total", "Membership cache lookups.", ["result"]
)
