"""Pages for people: login, logout, the portal of their projects, each project's connect page.

They live in the site package, above both apps, because they use both: GitLab's truth from
projects/ and the browser answers of mlflow_bridge/ (its session authentication, 404 page).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from mlflow_bridge.edge import throttling
from mlflow_bridge.edge.authentication import GitLabSessionAuthentication
from mlflow_bridge.edge.browser import not_found_page
from mlflow_bridge.edge.errors import BridgeError, as_bridge_error, token_refused
from mlflow_bridge.edge.sharinghub_session import SharingHubSessionAuthentication
from projects import access, gitlab, oauth
from sharinghub_mlflow import portal

TOKEN_SETTINGS_PATH = "/-/user_settings/personal_access_tokens?name=mlflow&scopes=read_api"


def safe_next(request: HttpRequest) -> str:
    """Where to go after login: `next` when it is a page of this site, else the portal."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("portal")


def with_gitlab_session(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Views for logged-in users: sets `request.gitlab_user` and `request.gitlab_credential`.

    Signed in here, or to SharingHub (SHARINGHUB_URL). Logged out (or logged in without
    GitLab, as a local admin): the login page, then back. A
    refusal becomes a page by `page_for_refusal`.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            authenticated = GitLabSessionAuthentication().authenticate(
                request
            ) or SharingHubSessionAuthentication().authenticate(request)
            if authenticated is None:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            request.gitlab_user, request.gitlab_credential = authenticated
            return view(request, *args, **kwargs)
        except (BridgeError, gitlab.TokenRejected, gitlab.GitLabUnavailable) as exc:
            return page_for_refusal(request, exc)

    return wrapped


def page_for_refusal(request: HttpRequest, exc: Exception) -> HttpResponse:
    """What a person sees for what an API client gets as JSON (errors.as_bridge_error names
    both): GitLab not answering is the 503 page; any other refusal leads to the login page,
    after ending a login GitLab now refuses (an expired session has already been ended)."""
    error = as_bridge_error(exc)
    if error is not None and error.error_code == "TEMPORARILY_UNAVAILABLE":
        return render(request, "unavailable.html", status=503)
    if isinstance(exc, gitlab.TokenRejected):
        oauth.log_out(request, "GitLab refused your login: log in again.", messages.WARNING)
    return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


def login_page(request: HttpRequest) -> HttpResponse:
    """The "Log in with GitLab" button: a POST to social-auth's begin view (it requires POST and
    Django's CSRF token, so no other site can start a login). LOGIN_AUTO_REDIRECT submits it
    at once, unless there is a message to read (logged out, login failed or expired)."""
    next_url = safe_next(request)
    if request.user.is_authenticated and (
        oauth.session_token(request) or oauth.gitlab_login(request.user) is not None
    ):
        return redirect(next_url)
    configured = bool(settings.GITLAB_OAUTH_CLIENT_ID)
    return render(
        request,
        "login.html",
        {
            "begin_url": reverse("social:begin", args=["gitlab"]),
            "next": next_url,
            "configured": configured,
            "auto_submit": settings.LOGIN_AUTO_REDIRECT
            and configured
            and not len(messages.get_messages(request)),
            "gitlab_url": settings.GITLAB_URL,
            "sharinghub_login_url": sharinghub_login_url(request, next_url),
            "token_url": settings.GITLAB_URL + TOKEN_SETTINGS_PATH,
        },
    )


def sharinghub_login_url(request: HttpRequest, next_url: str) -> str:
    """SharingHub's login, back to `next_url` (absolute: SharingHub may be another host);
    empty without SHARINGHUB_URL."""
    if not settings.SHARINGHUB_URL:
        return ""
    back = urlencode({"redirect_uri": request.build_absolute_uri(next_url)})
    return f"{settings.SHARINGHUB_URL}/api/auth/login?{back}"


@require_http_methods(["POST"])
def token_login(request: HttpRequest) -> HttpResponse:
    """Sign in with a GitLab access token: checked as the API checks one (known to GitLab,
    read_api scope), then kept in the session, sealed (projects/sealing.py)."""
    token = request.POST.get("token", "").strip()
    next_url = safe_next(request)
    back = f"{reverse('login')}?{urlencode({'next': next_url})}"
    if not token:
        messages.error(request, "Paste a GitLab access token with the read_api scope.")
        return redirect(back)
    try:
        credential = access.credential_for(token, lambda: throttling.check_lookup(request))
        access.prove_read_api(credential)
    except gitlab.TokenRejected as exc:
        messages.error(request, token_refused(exc).detail)
        # Counted like the API's failed authentications; past the limit, the next attempt
        # is refused by check_lookup with its own message.
        with suppress(BridgeError):
            throttling.record_failure(request)
        return redirect(back)
    except gitlab.GitLabUnavailable:
        return render(request, "unavailable.html", status=503)
    except BridgeError as exc:  # too many attempts from this address
        messages.error(request, exc.detail)
        return redirect(back)
    auth.login(request, token_user(credential.user), backend=MODEL_BACKEND)
    oauth.keep_session_token(request, token)
    return redirect(next_url)


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def token_user(gitlab_user) -> AbstractBaseUser:
    """The Django user of a token sign-in: named after the GitLab user's id, never matched by
    username, so no GitLab user can become a local account (an admin) of the same name."""
    user, created = get_user_model().objects.get_or_create(username=f"gitlab-{gitlab_user.id}")
    if created:
        user.set_unusable_password()
    # The name pages show (GitLab's username, which may change).
    user.first_name = gitlab_user.username
    user.save(update_fields=["password", "first_name"])
    return user


@require_http_methods(["GET", "POST"])
def logout_page(request: HttpRequest) -> HttpResponse:
    """GET asks to confirm; POST (with Django's CSRF token) logs out."""
    if request.method == "POST":
        oauth.log_out(
            request, "You are logged out of SharingHub MLflow. Your GitLab session is unchanged."
        )
        return redirect("login")
    return render(request, "logout.html")


def root(request: HttpRequest) -> HttpResponse:
    return redirect("portal")


@with_gitlab_session
def portal_page(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")
    projects = portal.served_projects(request.gitlab_credential.token, request.gitlab_user.id)
    rows = portal.rows(projects, search)
    page = Paginator(rows, portal.PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "portal.html",
        {
            "rows": page.object_list,
            "page": page,
            "search": search,
            "recent": portal.recent(projects),
            "mandatory_topics": settings.GITLAB_MANDATORY_TOPICS,
        },
    )


def mlflow_pin() -> str:
    """The client version to install: this server's MLflow, any patch release."""
    import mlflow

    major, minor = mlflow.__version__.split(".")[:2]
    return f"mlflow=={major}.{minor}.*"


@with_gitlab_session
def connect_page(request: HttpRequest, project_path: str) -> HttpResponse:
    project_access = access.access_to(request.gitlab_credential, project_path)
    if not access.is_visible(project_access):
        return not_found_page(request)
    project = project_access.project
    tracking_path = f"/mlflow/{project.path}/tracking/"
    return render(
        request,
        "connect.html",
        {
            "project": project,
            "role": project_access.role,
            "read_only": not project_access.can_write,
            "tracking_path": tracking_path,
            "tracking_uri": request.build_absolute_uri(tracking_path),
            "experiment": project.name or project.path.rsplit("/", 1)[-1],
            "token_url": settings.GITLAB_URL + TOKEN_SETTINGS_PATH,
            "project_token_url": f"{settings.GITLAB_URL}/{project.path}/-/settings/access_tokens",
            "mlflow_pin": mlflow_pin(),
            # A CI job's token writes when its user's role is looked up, or by configuration.
            "job_tokens_write": bool(settings.GITLAB_SERVICE_TOKEN)
            or settings.CI_JOB_TOKEN_DEFAULT_ROLE == "developer",
            "id_token_audience": settings.GITLAB_ID_TOKEN_AUDIENCE,
            "protected_aliases": settings.PROTECTED_MODEL_ALIASES,
        },
    )
