"""GitLab CI id_tokens: a job's OIDC JWT, verified offline, as the job's user in its own project.

A job asks GitLab for a JWT addressed to this service (`id_tokens:` with `aud:` =
GITLAB_ID_TOKEN_AUDIENCE). GitLab signs it with RS256 and publishes its keys at the `jwks_uri`
of its OpenID discovery document: both are fetched once and kept (PyJWT's PyJWKClient), and
what one worker fetched the others read from Django's cache (shared with CACHE_URL). A `kid`
not among the keys refetches them at most once per GITLAB_ID_TOKEN_KEYS_COOL_OFF, so a rotated
key is found and garbage cannot hammer GitLab. Nothing else is asked of GitLab: the signed
claims name the job's project, its user and the user's role when the job started, capped by
the membership the service knows, when fresh.
"""

from __future__ import annotations

import hashlib
import threading
import time

import jwt
from django.conf import settings
from django.core.cache import cache

from projects import gitlab, records
from projects.models import (
    AccessLevel,
    CIJob,
    GitLabProject,
    GitLabUser,
    Membership,
    TokenFingerprint,
)
from projects.records import IdToken

ALGORITHM = "RS256"  # GitLab's; never `none`, never HMAC (the public key is no secret)
LEEWAY = 30  # seconds of clock skew allowed between GitLab and this service
KEYS_LIFESPAN = 24 * 3600  # GitLab rotates rarely: an unknown kid refetches sooner
REQUIRED_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "project_id", "project_path", "user_id",
                   "user_login", "user_access_level", "job_id", "pipeline_id",
                   "ref_protected")  # fmt: skip


class Refused(Exception):
    """Not a valid id_token for this service; the message says why and how to fix it."""


def is_jwt(token: str) -> bool:
    """Whether a token is shaped as a JWT (a GitLab token never has a JSON header)."""
    try:
        return "alg" in jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False


# Why each refusal, for the caller: PyJWT's exception classes, most specific first.
REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "This id_token has expired: a job's id_token lives as long as "
                                "the job's timeout; run the job again."),
    (jwt.ImmatureSignatureError, "This id_token is not valid yet (nbf/iat in the future): "
                                 "check the clocks of GitLab and of this server."),
    (jwt.InvalidAudienceError, "This id_token is for another audience: request it with "
                               "`aud: {audience}` under the job's id_tokens."),
    (jwt.InvalidIssuerError, "This id_token was not issued by {issuer}."),
    (jwt.MissingRequiredClaimError, "This id_token lacks the {claim!r} claim GitLab CI sets."),
    (jwt.InvalidAlgorithmError, f"An id_token must be signed with {ALGORITHM}."),
    (jwt.PyJWKClientError, "This id_token is signed by a key GitLab does not publish."),
    (jwt.InvalidSignatureError, "This id_token's signature does not verify."),
    (jwt.PyJWTError, "Malformed id_token."),
)  # fmt: skip


def _reason(exc: jwt.PyJWTError) -> str:
    template = next(text for kind, text in REASONS if isinstance(exc, kind))
    return template.format(
        audience=settings.GITLAB_ID_TOKEN_AUDIENCE,
        issuer=settings.GITLAB_ID_TOKEN_ISSUER,
        claim=getattr(exc, "claim", ""),
    )


class GitLabKeys(jwt.PyJWKClient):
    """PyJWT's key client, sharing what it fetches with every worker through Django's cache
    (one fetch for all of them with CACHE_URL), and, after a failed fetch, not fetching again
    for its cool-off: a flood of id_tokens while GitLab cannot answer costs GitLab one call."""

    failed_at: float | None = None
    held_since = 0.0  # when the key set this process holds was fetched (wall clock)

    def fetch_data(self) -> object:
        shared = cache.get(_shared_key("keys", self.uri))
        if shared is not None and shared[0] > self.held_since:
            self.held_since, data = shared  # another worker's fetch: first use, or a rotation
            return data
        failed_at = self.failed_at
        if failed_at is not None and time.monotonic() - failed_at < self.cooldown_duration:
            raise jwt.PyJWKClientConnectionError("GitLab's keys could not be fetched moments ago")
        try:
            data = super().fetch_data()
        except jwt.PyJWKClientConnectionError:
            self.failed_at = time.monotonic()
            raise
        self.held_since = time.time()
        cache.set(_shared_key("keys", self.uri), (self.held_since, data), KEYS_LIFESPAN)
        return data


def _shared_key(what: str, url: str) -> str:
    return f"idtokens:{what}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def _signing_keys_url() -> str:
    """The jwks_uri of GitLab's discovery document, asked once for every worker."""
    key = _shared_key("jwks_uri", settings.GITLAB_URL)
    url = cache.get(key)
    if url is None:
        url = gitlab.signing_keys_url()
        cache.set(key, url, KEYS_LIFESPAN)
    return url


_lock = threading.Lock()
_clients: dict[tuple[str, int], GitLabKeys] = {}
_discovery_failed_at: float | None = None


def _keys() -> GitLabKeys:
    """This process's key client for GitLab: its discovery document is asked once, and after a
    failure not again for GITLAB_ID_TOKEN_KEYS_COOL_OFF (id_tokens then get GitLab's outage
    answer)."""
    global _discovery_failed_at
    with _lock:
        key = (settings.GITLAB_URL, settings.GITLAB_ID_TOKEN_KEYS_COOL_OFF)
        if key in _clients:
            return _clients[key]
        failed_at = _discovery_failed_at
        if failed_at is not None and time.monotonic() - failed_at < key[1]:
            raise gitlab.GitLabUnavailable(
                "GitLab's OpenID discovery document could not be read moments ago",
                reason="discovery failed, not asked again yet",
            )
        try:
            url = _signing_keys_url()
        except gitlab.GitLabUnavailable:
            _discovery_failed_at = time.monotonic()
            raise
        _clients.clear()
        _discovery_failed_at = None
        _clients[key] = GitLabKeys(
            url,
            lifespan=KEYS_LIFESPAN,
            timeout=settings.GITLAB_TIMEOUT,
            cooldown_duration=settings.GITLAB_ID_TOKEN_KEYS_COOL_OFF,
        )
        return _clients[key]


def forget_keys() -> None:
    """Drop the kept keys and discovery answer: the next id_token fetches them again."""
    global _discovery_failed_at
    with _lock:
        _clients.clear()
        _discovery_failed_at = None


def verify(token: str) -> IdToken:
    """The claims of a valid id_token. Raises Refused, or gitlab.GitLabUnavailable when
    GitLab's keys cannot be fetched."""
    if not settings.GITLAB_ID_TOKEN_AUDIENCE:
        raise Refused(
            "GitLab CI id_tokens are not accepted by this server (GITLAB_ID_TOKEN_AUDIENCE is "
            "not set): use CI_JOB_TOKEN, or ask its administrator."
        )
    try:
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            raise jwt.InvalidAlgorithmError(ALGORITHM)  # before any key fetch
        signing_key = _keys().get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[ALGORITHM],
            audience=settings.GITLAB_ID_TOKEN_AUDIENCE,
            issuer=settings.GITLAB_ID_TOKEN_ISSUER,
            leeway=LEEWAY,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.PyJWKClientConnectionError:
        raise gitlab.GitLabUnavailable(
            "GitLab's id_token signing keys cannot be fetched", reason="keys unreachable"
        ) from None
    except jwt.PyJWTError as exc:
        raise Refused(_reason(exc)) from None
    return _id_token(claims)


def _id_token(claims: dict) -> IdToken:
    try:
        return IdToken(
            project_id=int(claims["project_id"]),
            project_path=str(claims["project_path"]),
            user_id=int(claims["user_id"]),
            user_login=str(claims["user_login"]),
            level=AccessLevel[str(claims["user_access_level"]).upper()],
            job_id=int(claims["job_id"]),
            pipeline_id=int(claims["pipeline_id"]),
            ref_protected=claims["ref_protected"] == "true",
        )
    except (KeyError, ValueError, TypeError):
        raise Refused("This id_token's claims are not GitLab CI's (ids, user_access_level).")


def credential_for(token: str) -> records.Credential:
    """The credential of a valid id_token: its user, acting in its project only. No GitLab
    call; a few database queries (user, project, membership)."""
    found = verify(token)
    user = _user(found)
    project = GitLabProject.objects.filter(id=found.project_id).first()
    if project is None or project.path != found.project_path:
        # The signed path is GitLab's as of the job's start: a rename, or a project not seen.
        project = records.move_project(found.project_id, found.project_path)
    job = CIJob(
        id=found.job_id,
        project_id=found.project_id,
        pipeline_id=found.pipeline_id,
        user=user,
        web_url=f"{settings.GITLAB_ID_TOKEN_ISSUER}/{found.project_path}/-/jobs/{found.job_id}",
    )
    known = records.ProjectAccess(project, user, _level(found, user, project), job=job)
    digest = TokenFingerprint.digest_of(token)
    return records.Credential(token, digest, user, reads_api=True, known=known, id_token=found)


def _user(found: IdToken) -> GitLabUser:
    user, created = GitLabUser.objects.get_or_create(
        id=found.user_id, defaults={"username": found.user_login}
    )
    if not created and user.username != found.user_login:
        user.username = found.user_login
        user.save(update_fields=["username"])
    return user


def _level(found: IdToken, user: GitLabUser, project: GitLabProject) -> int:
    """The token's role, never more than a fresh membership the service knows."""
    membership = records.unique(Membership.objects.filter(user=user, project=project))
    if membership is not None and membership.is_fresh:
        return min(found.level, membership.access_level)
    return found.level
