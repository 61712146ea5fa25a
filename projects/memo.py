"""A per-process memo of cached members' answers, so that their repeated calls make no query.

Key: the token's SHA-256 and the project path (never the token). Value: what the one-query
lookup (access.cached_in_one_query) found: the user, the project, the level. An entry serves
for MEMBERSHIP_MEMO_TTL seconds at most, never past the rows it was read from (so a token or a
membership expires as it does in the database), and only while the *generation* it was read
under is current. Whatever invalidates the database's answers (webhooks, admin actions,
refresh: membership_cache) calls `forget()`, which changes the generation for every process:

- with CACHE_URL, a random value under one key of the shared cache: one cache read per call
  (0.12 ms of CPU, Redis's included, against 0.51 ms for the query, PostgreSQL's included);
- without it, a stamp file in DATA_DIR that grows by one byte per change: one stat() per call,
  shared by the workers of one host.

The generation is read before the database, so a change committed while an entry is being read
leaves it under an old generation. A generation that cannot be read (Redis failing, no stamp
yet) means no memo: the call queries the database as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import transaction

logger = logging.getLogger(__name__)
GENERATION_KEY = "sharinghub:memo-generation"
PER_PROCESS = (LocMemCache, DummyCache)
# Past this many entries the memo starts again empty: it holds the callers of the last seconds.
MAX_ENTRIES = 10_000
# The time seam (tests move it): wall-clock seconds, comparable with the rows' expiry dates.
clock = time.time


# The caller's access to the project (records.ProjectAccess): held, never looked into.
Known = object


class Entry(NamedTuple):
    known: Known
    until: float
    generation: object


_entries: dict[tuple[str, str], Entry] = {}


def recall(digest: str, path: str) -> tuple[Known | None, object]:
    """(the memo's answer for the token and path or None, the generation to keep a new one
    under, read now: before the database is)."""
    if settings.MEMBERSHIP_MEMO_TTL <= 0:
        return None, None
    generation = _generation()
    entry = _entries.get((digest, path))
    if entry is None or generation is None:
        return None, generation
    if entry.generation != generation or entry.until <= clock():
        return None, generation
    return entry.known, generation


def keep(digest: str, path: str, known: Known, expires: datetime | str, generation) -> None:
    """Remember an answer read from rows that expire at `expires`, under `generation`."""
    if generation is None or settings.MEMBERSHIP_MEMO_TTL <= 0:
        return
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    until = min(clock() + settings.MEMBERSHIP_MEMO_TTL, _timestamp(expires))
    _entries[(digest, path)] = Entry(known, until, generation)


def _timestamp(value: datetime | str) -> float:
    # A raw query's extra column: a datetime from PostgreSQL, naive UTC text from SQLite.
    if isinstance(value, str):
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.timestamp()


def forget() -> None:
    """Every process's memo is void: now, and again once the current transaction commits (a
    call between the two could read the rows about to be deleted)."""
    _new_generation()
    transaction.on_commit(_new_generation)


def clear() -> None:
    """This process's memo only (tests)."""
    _entries.clear()


def _stamp() -> str:
    return str(settings.DATA_DIR / "memo-generation")


def _shared() -> bool:
    """Whether CACHE_URL names a cache every process reads (not a per-process one)."""
    return bool(settings.CACHE_URL) and not isinstance(caches[DEFAULT_CACHE_ALIAS], PER_PROCESS)


def _generation() -> object:
    if _shared():
        generation = cache.get(GENERATION_KEY)
        if generation is None:
            cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        return generation
    try:
        stamp = os.stat(_stamp())
    except FileNotFoundError:
        with contextlib.suppress(OSError):  # a DATA_DIR we cannot write: no memo, no error
            open(_stamp(), "ab").close()
        return None
    return stamp.st_ino, stamp.st_size, stamp.st_mtime_ns


def _new_generation() -> None:
    _entries.clear()
    if _shared():
        cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        return
    try:
        # O_APPEND: each change makes the file one byte longer, whichever process writes it.
        with open(_stamp(), "ab") as stamp:
            stamp.write(b".")
    except OSError as exc:
        # The other workers keep their entries, for MEMBERSHIP_MEMO_TTL at most.
        logger.error("Cannot write %s (%s): make DATA_DIR writable", _stamp(), exc)
