"""One meaning of a fresh cached answer: the one-query lookup (raw SQL, projects/access.py
`cached_in_one_query`) answers exactly when the ORM path (`credential_for`, then `access_to`)
would answer from the cache without asking GitLab, with the same project and level."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from projects import access, gitlab
from projects.models import GitLabProject, GitLabUser, Membership, TokenFingerprint

pytestmark = pytest.mark.django_db
_ids = itertools.count(7_000_000)


class AskedGitLab(Exception):
    """The path asked GitLab: it did not answer from the cache."""


class NoGitLab:
    def __init__(self, *args, **kwargs):
        raise AskedGitLab


@pytest.fixture(autouse=True)
def no_gitlab(monkeypatch):
    monkeypatch.setattr(gitlab, "GitLabClient", NoGitLab)
    cache.clear()


def cached_state(fingerprint: str, reads_api: bool | None, user_known: bool, membership: str):
    """(token, path) with a fingerprint that is fresh or expired, of a known user or a refused
    token, and a membership in the project at `path` that is fresh, expired or absent."""
    number = next(_ids)
    token, now = f"glpat-fresh-{number}", timezone.now()
    user = GitLabUser.objects.create(id=number, username=f"u{number}")
    project = GitLabProject.objects.create(id=number, path=f"fresh/p{number}")
    offset = timedelta(minutes=5)
    TokenFingerprint.objects.create(
        digest=TokenFingerprint.digest_of(token),
        user=user if user_known else None,
        reads_api=reads_api,
        expires_at=now + offset if fingerprint == "fresh" else now - offset,
    )
    if membership != "absent":
        Membership.objects.create(
            user=user, project=project, access_level=30,
            expires_at=now + offset if membership == "fresh" else now - offset,
        )  # fmt: skip
    return token, project.path


def from_the_orm_path(token: str, path: str) -> tuple[int, int] | None:
    """(project id, level) when the ORM path answers from the cache alone; None otherwise."""
    try:
        found = access.access_to(access.credential_for(token), path)
    except (AskedGitLab, gitlab.TokenRejected):
        return None
    return (found.project.id, found.level) if found is not None else None


def from_one_query(token: str, path: str) -> tuple[int, int] | None:
    found = access.cached_in_one_query(token, TokenFingerprint.digest_of(token), path)
    if found is None:
        return None
    credential, _ = found  # and when the first of its rows expires (memo.py)
    return credential.known.project.id, credential.known.level


@pytest.mark.parametrize("membership", ["fresh", "expired", "absent"])
@pytest.mark.parametrize("user_known", [True, False], ids=["user", "refused-token"])
@pytest.mark.parametrize("reads_api", [True, False, None], ids=["api", "no-api", "unasked"])
@pytest.mark.parametrize("fingerprint", ["fresh", "expired"])
def test_both_lookups_agree_on_what_is_fresh(fingerprint, reads_api, user_known, membership):
    token, path = cached_state(fingerprint, reads_api, user_known, membership)

    assert from_one_query(token, path) == from_the_orm_path(token, path)


def test_a_fresh_answer_is_found_by_both():
    token, path = cached_state("fresh", True, True, "fresh")

    assert from_one_query(token, path) is not None
    assert from_one_query(token, path) == from_the_orm_path(token, path)
