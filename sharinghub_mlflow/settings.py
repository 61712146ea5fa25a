"""Settings, each read once from the environment (see docs/configuration.md)."""

import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Everything the embedded defaults write lives under DATA_DIR.
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key_from_data_dir() -> str:
    """Generate the secret key once and keep it in DATA_DIR, so restarts keep sessions valid."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_data_dir()
# Former keys, still accepted for signed values and to open sealed OAuth tokens (rotation).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# --- GitLab -----------------------------------------------------------------------------------
GITLAB_URL = env.str("GITLAB_URL", default="https://gitlab.com").rstrip("/")
GITLAB_TIMEOUT = env.float("GITLAB_TIMEOUT", default=5.0)
# After this many GitLab calls in a row time out or cannot connect, a worker stops asking
# GitLab for GITLAB_COOL_OFF seconds and answers as in an outage (projects/gitlab.py).
GITLAB_BREAKER_FAILURES = env.int("GITLAB_BREAKER_FAILURES", default=3)
GITLAB_COOL_OFF = env.float("GITLAB_COOL_OFF", default=30.0)
# How long an answer from GitLab ("user U has level L in project P") is trusted.
MEMBERSHIP_CACHE_TTL = env.int("MEMBERSHIP_CACHE_TTL", default=60)
# Negative answers (unknown token, no access, no such project) are trusted for less time,
# so that a user just added in GitLab does not wait a whole TTL.
MEMBERSHIP_NEGATIVE_CACHE_TTL = env.int("MEMBERSHIP_NEGATIVE_CACHE_TTL", default=10)
# Each worker remembers a cached member's answer this long (seconds; never past the database's
# expiry; 0: off), so that their repeated calls make no query; invalidations reach it at once.
MEMBERSHIP_MEMO_TTL = env.int("MEMBERSHIP_MEMO_TTL", default=5)
# While GitLab is unreachable or answers 5xx/429, a cached answer up to this age (seconds)
# keeps working; beyond it, requests get 503.
GITLAB_OUTAGE_GRACE = env.int("GITLAB_OUTAGE_GRACE", default=15 * 60)
# Once GitLab has failed for this long (seconds), requests it would decide get their error as a
# 424, which clients do not retry, instead of a retryable 503 (projects/gitlab_health.py).
GITLAB_OUTAGE_RETRYABLE = env.int("GITLAB_OUTAGE_RETRYABLE", default=30)
# An administrator's (or service account's) token with read_api: `gitlab_refresh`, the admin's
# "refresh" action and CI jobs' roles use it. Empty: those fall back as the README says.
GITLAB_SERVICE_TOKEN = env.str("GITLAB_SERVICE_TOKEN", default="")
# Only members read a project's MLflow, whatever GitLab's visibility and feature levels say
# (projects/visibility.py). Default: as GitLab, public projects' enabled features are read by all.
MEMBERS_ONLY = env.bool("MEMBERS_ONLY", default=False)
# The secret GitLab's webhooks send as X-Gitlab-Token to /hooks/gitlab/. Empty: endpoint off.
GITLAB_WEBHOOK_SECRET = env.str("GITLAB_WEBHOOK_SECRET", default="")
# A CI job's role in its own project when no GITLAB_SERVICE_TOKEN can look its user up.
CI_JOB_TOKEN_DEFAULT_ROLE = env.str("CI_JOB_TOKEN_DEFAULT_ROLE", default="reporter").lower()
if CI_JOB_TOKEN_DEFAULT_ROLE not in ("reporter", "developer"):
    raise ImproperlyConfigured(
        f"CI_JOB_TOKEN_DEFAULT_ROLE is {CI_JOB_TOKEN_DEFAULT_ROLE!r}: set it to reporter "
        "(CI jobs read) or developer (CI jobs write)."
    )
# GitLab CI id_tokens (projects/idtokens.py): the `aud` a job's id_token must carry. Empty: off.
GITLAB_ID_TOKEN_AUDIENCE = env.str("GITLAB_ID_TOKEN_AUDIENCE", default="")
# The `iss` GitLab writes in id_tokens: its external URL, when GITLAB_URL is another way in.
GITLAB_ID_TOKEN_ISSUER = env.str("GITLAB_ID_TOKEN_ISSUER", default=GITLAB_URL).rstrip("/")
# Seconds between two key-set fetches that an id_token with an unknown `kid` may cause.
GITLAB_ID_TOKEN_KEYS_COOL_OFF = env.int("GITLAB_ID_TOKEN_KEYS_COOL_OFF", default=60)
# Model aliases (names or globs, comma-separated) only Maintainers and Owners, or CI id_token
# jobs on protected refs, may set, move or delete (mlflow_bridge/edge/promotion.py). Empty: off.
PROTECTED_MODEL_ALIASES = [
    alias.strip() for alias in env.str("PROTECTED_MODEL_ALIASES", default="").split(",")
    if alias.strip()
]  # fmt: skip

# --- Browser login (GitLab OAuth) -------------------------------------------------------------
# A GitLab OAuth application (scope read_api, redirect URI <site>/mlflow/auth/complete/gitlab/).
# Both empty: browsers cannot log in, tokens work as before (checks.py: both or neither).
GITLAB_OAUTH_CLIENT_ID = env.str("GITLAB_OAUTH_CLIENT_ID", default="")
GITLAB_OAUTH_CLIENT_SECRET = env.str("GITLAB_OAUTH_CLIENT_SECRET", default="")
# Skip the login page's button and go straight to GitLab.
LOGIN_AUTO_REDIRECT = env.bool("LOGIN_AUTO_REDIRECT", default=False)
# Serve only projects carrying every one of these GitLab topics; others are 404 everywhere.
GITLAB_MANDATORY_TOPICS = env.list("GITLAB_MANDATORY_TOPICS", default=[])
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto: trust it, so cookies get
# Secure, same-origin checks expect https and the connect page shows https URIs.
TRUST_X_FORWARDED_PROTO = env.bool("TRUST_X_FORWARDED_PROTO", default=False)
if TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- SharingHub ---------------------------------------------------------------------------------
# The SharingHub this service serves (https://sharinghub.example.com/). Empty: no SharingHub.
SHARINGHUB_URL = env.str("SHARINGHUB_URL", default="").rstrip("/")
# SharingHub's session cookie (sharinghub-server's SESSION_COOKIE), read when SHARINGHUB_URL is
# set: it signs a browser in as the GitLab user SharingHub knows (sharinghub_session.py).
SHARINGHUB_SESSION_COOKIE = env.str("SHARINGHUB_SESSION_COOKIE", default="sharinghub-session")
# Seconds SharingHub's answer for a session cookie is trusted (in each process's memory).
SHARINGHUB_SESSION_CACHE_TTL = env.int("SHARINGHUB_SESSION_CACHE_TTL", default=60)
# Origins (scheme://host[:port]) whose pages may show this service's pages in a frame, besides
# the service itself (sharinghub_mlflow/framing.py). Default: SHARINGHUB_URL's origin.
_sharinghub = urlsplit(SHARINGHUB_URL)
FRAME_ANCESTORS = env.list(
    "FRAME_ANCESTORS",
    default=[f"{_sharinghub.scheme}://{_sharinghub.netloc}"] if SHARINGHUB_URL else [],
)
for _origin in FRAME_ANCESTORS:
    if not re.fullmatch(r"https?://[\w.*:\[\]-]+", _origin):
        raise ImproperlyConfigured(
            f"FRAME_ANCESTORS holds {_origin!r}: list origins like https://sharinghub.example.com "
            "(scheme and host, an optional port, no path), separated by commas."
        )

SOCIAL_AUTH_GITLAB_KEY = GITLAB_OAUTH_CLIENT_ID
SOCIAL_AUTH_GITLAB_SECRET = GITLAB_OAUTH_CLIENT_SECRET
SOCIAL_AUTH_GITLAB_API_URL = GITLAB_URL
SOCIAL_AUTH_GITLAB_SCOPE = ["read_api"]
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/mlflow/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/mlflow/login/"
LOGIN_URL = "/mlflow/login/"
LOGIN_REDIRECT_URL = "/mlflow/"
AUTHENTICATION_BACKENDS = [
    "social_core.backends.gitlab.GitLabOAuth2",
    "django.contrib.auth.backends.ModelBackend",  # the admin's local accounts
]
# Sessions live in the database; the cookie holds only their id. Secure is added per request
# over HTTPS (sharinghub_mlflow/cookies.py).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Lax: the browser sends the cookies to this site's pages and frames when the page around them
# is on the same site (sharinghub.example.com and mlflow.example.com, a JupyterHub beside the
# service). None: also in the frames of another site; browsers then require Secure (HTTPS).
COOKIE_SAMESITE = env.str("COOKIE_SAMESITE", default="Lax").capitalize()
if COOKIE_SAMESITE not in ("Lax", "Strict", "None"):
    raise ImproperlyConfigured(
        f"COOKIE_SAMESITE is {COOKIE_SAMESITE!r}: set it to Lax (same-site frames) or None "
        "(frames of another site; needs HTTPS)."
    )
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = COOKIE_SAMESITE

# --- Embedded MLflow --------------------------------------------------------------------------
MLFLOW_BACKEND_STORE_URI = env.str(
    "MLFLOW_BACKEND_STORE_URI", default=f"sqlite:///{DATA_DIR / 'mlflow.sqlite3'}"
)
MLFLOW_REGISTRY_STORE_URI = env.str("MLFLOW_REGISTRY_STORE_URI", default=MLFLOW_BACKEND_STORE_URI)
MLFLOW_ARTIFACTS_DESTINATION = env.str(
    "MLFLOW_ARTIFACTS_DESTINATION", default=str(DATA_DIR / "artifacts")
)
# S3-compatible stores (MinIO, Ceph...): MLflow and boto3 read this and AWS_* themselves.
MLFLOW_S3_ENDPOINT_URL = env.str("MLFLOW_S3_ENDPOINT_URL", default="")
# Most artifact bytes one project may hold; an upload beyond it is refused (quota.py). 0: no quota.
PROJECT_ARTIFACT_QUOTA_BYTES = env.int("PROJECT_ARTIFACT_QUOTA_BYTES", default=0)
# Largest JSON body accepted on MLflow's REST routes (artifact uploads are streamed, not limited).
MAX_JSON_BODY_SIZE = env.int("MAX_JSON_BODY_SIZE", default=16 * 1024 * 1024)

# --- The edge: Django REST framework's authentication, permissions and throttles -------------
# Throttle rates are "<count>/<s|min|hour|day>"; counters live in the cache (CACHE_URL shares
# them between workers and replicas). A GitLab lookup is a credential not seen recently being
# asked of GitLab: the per-address and overall rates bound what strangers can make GitLab do.
THROTTLE_RATES = {
    "gitlab_lookups_per_address": env.str("THROTTLE_GITLAB_LOOKUPS_PER_ADDRESS", "60/min"),
    "gitlab_lookups": env.str("THROTTLE_GITLAB_LOOKUPS", "600/min"),
    "failed_authentications_per_address": env.str(
        "THROTTLE_FAILED_AUTHENTICATIONS_PER_ADDRESS", "10/min"
    ),
    # Requests without credentials (public projects' readers), per address.
    "anonymous_per_address": env.str("THROTTLE_ANONYMOUS_PER_ADDRESS", "300/min"),
    # Requests per GitLab user, whatever the credential; empty: no limit.
    "principal": env.str("THROTTLE_PRINCIPAL_RATE", "") or None,
}
# How many proxies in front of the service append to X-Forwarded-For (werkzeug's ProxyFix
# x_for): 0 trusts no header, and the client's address is REMOTE_ADDR.
TRUSTED_PROXIES = env.int("TRUSTED_PROXIES", default=0)
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "mlflow_bridge.edge.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "NUM_PROXIES": TRUSTED_PROXIES,
    # The tracking view is the site's only DRF view. One class per kind of credential, tried
    # in this order (mlflow_bridge/edge/authentication.py); their headers never reach MLflow.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mlflow_bridge.edge.authentication.GitLabIdTokenAuthentication",
        "mlflow_bridge.edge.authentication.CIJobTokenAuthentication",
        "mlflow_bridge.edge.authentication.GitLabTokenAuthentication",
        "mlflow_bridge.edge.authentication.GitLabSessionAuthentication",
        "mlflow_bridge.edge.sharinghub_session.SharingHubSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
}

# --- Deployment: shared cache, HTTPS, gunicorn ------------------------------------------------
# CACHE_URL=redis://host:6379/0 shares the cache between workers and replicas. Sessions stay in
# the database alone: a cache that skips a failed delete must not bring a logged-out session back.
# Without it each process has its own cache, which holds only short-lived answers the database
# does not (an unknown project path, for MEMBERSHIP_NEGATIVE_CACHE_TTL). Memberships, token
# fingerprints and sessions are database rows either way: the database is their source of truth.
CACHE_URL = env.str("CACHE_URL", default="")
if CACHE_URL:
    CACHES = {"default": env.cache("CACHE_URL")}
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        # Redis down is a slower service, never a failing one (sharinghub_mlflow/cache.py).
        CACHES["default"]["BACKEND"] = "sharinghub_mlflow.cache.FailSoftRedisCache"
        CACHES["default"].setdefault("OPTIONS", {}).update(
            {"socket_connect_timeout": 1, "socket_timeout": 1}
        )
# SECURE_SSL=true: browsers reach the service only over HTTPS (directly, or through a proxy that
# sets X-Forwarded-Proto with TRUST_X_FORWARDED_PROTO): plain HTTP is redirected and cookies are
# always Secure. Load balancers may still probe the health endpoints over plain HTTP.
SECURE_SSL = env.bool("SECURE_SSL", default=False)
SECURE_SSL_REDIRECT = SECURE_SSL
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL
# HSTS is a promise browsers keep for this long: turn it on once HTTPS works (31536000 = a year).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Gunicorn, as `python manage.py serve` runs it (its options override these).
SERVE_BIND = env.str("BIND", default="127.0.0.1:8000")
# Measured on 2 cores (bench/RESULTS.md, issue 12): 2 gthread workers of 4 threads serve 8
# and 32 concurrent clients, fresh or keep-alive, at or ahead of bare MLflow, and use less CPU
# per call than 2 sync workers or 8 threads.
SERVE_WORKERS = env.int("WORKERS", default=2)
SERVE_THREADS = env.int("THREADS", default=4)
# Seconds a worker may stay silent before gunicorn replaces it. A sync worker is silent while it
# serves a request, so with THREADS=1 this bounds one request (large artifacts stream through
# it); a gthread worker's main thread keeps reporting while its threads serve, so it does not.
SERVE_TIMEOUT = env.int("GUNICORN_TIMEOUT", default=600)
# On SIGTERM, seconds workers get to finish the requests in flight before they are killed.
SERVE_GRACEFUL_TIMEOUT = env.int("GRACEFUL_TIMEOUT", default=30)
SERVE_KEEPALIVE = env.int("KEEPALIVE", default=5)
# Slow clients (mlflow_bridge/workers.py): seconds a connection gets to send its whole request
# head, read by the worker's event loop without holding a thread; then seconds any one read of
# a body may wait for a byte (a slow upload that keeps sending is never cut).
SERVE_HEAD_TIMEOUT = env.float("HEAD_TIMEOUT", default=10)
SERVE_READ_TIMEOUT = env.float("READ_TIMEOUT", default=60)
# The bearer token Prometheus scrapes /metrics with. Empty: /metrics is 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where gunicorn's workers share their counters (wiped by `serve` at start).
PROMETHEUS_MULTIPROC_DIR = Path(
    env.str("PROMETHEUS_MULTIPROC_DIR", default=str(DATA_DIR / "prometheus"))
)

# --- Django -----------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "social_django",
    "rest_framework",
    "projects",
    "mlflow_bridge",
]

MIDDLEWARE = [
    # Outermost: a HEAD answer leaves without a body whatever made it (gunicorn sends any).
    "sharinghub_mlflow.head_requests.HeadWithoutBodyMiddleware",
    # Outside the others, so that it sees every cookie they set.
    "sharinghub_mlflow.cookies.SecureCookiesOverHttpsMiddleware",
    # One line per request below /mlflow/, with what the tracking view learnt (project, route).
    "sharinghub_mlflow.observability.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and scripts, collected into STATIC_ROOT by `serve` (no web server needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Who may frame which page; replaces Django's X-Frame-Options middleware.
    "sharinghub_mlflow.framing.FramingMiddleware",
    "social_django.middleware.SocialAuthExceptionMiddleware",
]

# security.W002 asks for Django's X-Frame-Options middleware: FramingMiddleware answers framing
# for every page instead (CSP frame-ancestors; X-Frame-Options: DENY on the admin), because
# SharingHub's "Model experiments" tab and Jupyter must frame what DENY would refuse.
SILENCED_SYSTEM_CHECKS = ["security.W002"]

ROOT_URLCONF = "sharinghub_mlflow.urls"
WSGI_APPLICATION = "sharinghub_mlflow.wsgi.application"
# MLflow routes keep their exact paths: no slash appended, no redirect added by Django.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'django.sqlite3'}"),
}
# Keep each worker's connection: a new PostgreSQL connection per request cost more than the
# whole MLflow call it guards (bench/RESULTS.md). Checked before reuse, closed after errors.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several gunicorn workers write the membership cache: wait for the lock, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `serve` runs collectstatic into it at every start; WhiteNoise serves it from there.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
