"""Django's Redis cache, for a cache that only accelerates: when Redis fails, the service goes
on without it.

What the service keeps in the cache (throttle counters, short negative answers, the portal's
project lists, sessions in front of the database) can all be done without: the database holds
every membership, fingerprint and session. So a Redis error is counted
(`sharinghub_cache_errors_total`), logged once per pause, and answered as a miss (reads) or a
skipped write; Redis is then left alone for PAUSE_SECONDS, so that a dead Redis costs one
connection attempt per process per pause rather than one per request. It is used again as
soon as it answers: no restart needed. Throttles count nothing meanwhile (they allow).
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from sharinghub_mlflow.observability import CACHE_ERRORS

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 5.0


class FailSoftRedisCache(RedisCache):
    """A RedisCache whose failures are misses and skipped writes, never exceptions."""

    # When Redis may be tried again (time.monotonic()); per process, all threads alike.
    paused_until = 0.0

    def _try(self, operation: str, failed: object, *args: object) -> object:
        if time.monotonic() < FailSoftRedisCache.paused_until:
            return failed
        try:
            return getattr(super(), operation)(*args)
        except RedisError as exc:
            CACHE_ERRORS.inc()
            FailSoftRedisCache.paused_until = time.monotonic() + PAUSE_SECONDS
            logger.warning(
                "Cache (Redis) failed (%s); the service goes on without it for %.0f s",
                type(exc).__name__, PAUSE_SECONDS,
            )  # fmt: skip
            return failed

    def health(self) -> str:
        """ "ok", or the name of the error Redis answers with now (whatever the pause)."""
        try:
            super().get("sharinghub:health")
        except RedisError as exc:
            return type(exc).__name__
        return "ok"

    def get(self, key, default=None, version=None):
        return self._try("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._try("get_many", {}, keys, version)

    def has_key(self, key, version=None):
        return self._try("has_key", False, key, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._try("add", False, key, value, timeout, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._try("set", None, key, value, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._try("set_many", list(data), data, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._try("touch", False, key, timeout, version)

    def delete(self, key, version=None):
        return self._try("delete", False, key, version)

    def delete_many(self, keys, version=None):
        return self._try("delete_many", None, keys, version)

    def clear(self):
        return self._try("clear", False)
