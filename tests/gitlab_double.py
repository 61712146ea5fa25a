"""A GitLab double served over real HTTP, reproducing the shapes in shared/reference/gitlab-api.md.

It knows users (by token), groups (by full path), projects (by id and path) and memberships:
direct project members, group members (inherited by subgroups and their projects), and
members through a shared group, which GitLab shows only in members/all. Administrators see
every project. CI jobs answer GET /job to their JOB-TOKEN while they run; the keys CI
id_tokens are signed with are published as GitLab does (`signing_keys`; tests/idtokens.py
signs). Its OAuth provider (`double.oauth`) logs browsers in as a chosen user and issues,
refreshes and revokes tokens; GET /projects?membership=true lists a user's projects in keyset
pages.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

INSUFFICIENT_SCOPE = {
    "error": "insufficient_scope",
    "error_description": "The request requires higher privileges than provided by the access "
    "token.",
    "scope": "api read_api",
}


@dataclass
class User:
    id: int
    username: str
    token: str
    scopes: tuple[str, ...] = ("read_api",)
    bot: bool = False
    admin: bool = False


@dataclass
class Project:
    id: int
    path: str
    visibility: str = "private"
    model_experiments_access_level: str = "enabled"
    model_registry_access_level: str = "enabled"
    archived: bool = False
    topics: list[str] = field(default_factory=list)
    direct: dict[int, int] = field(default_factory=dict)  # user id -> level
    shared: dict[int, int] = field(default_factory=dict)  # via a shared group

    @property
    def namespace(self) -> str:
        return self.path.rsplit("/", 1)[0]


@dataclass
class Job:
    id: int
    token: str
    project: Project
    user: User
    pipeline_id: int
    status: str = "running"


class GitLabDouble:
    def __init__(self) -> None:
        self._ids = itertools.count(100)
        self.users: dict[str, User] = {}
        self.projects: dict[int, Project] = {}
        self.group_members: dict[tuple[str, int], int] = {}
        self.jobs: dict[str, Job] = {}
        self.redirects: dict[str, int] = {}  # old path -> project id, after rename(keep_old=True)
        self.calls: list[tuple[str, str]] = []
        self.down = False  # when True every API call answers 503
        self.delay = 0.0  # seconds every API call takes before answering: a slow GitLab
        self.oauth = OAuthProvider()
        self.max_per_page = 100  # GitLab's cap on list pages; lower it to test pagination
        self.signing_keys: list[dict] = []  # the JWKs GitLab signs CI id_tokens with
        self.keys_down = False  # when True the key set alone answers 503
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- test set-up ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def start(self) -> GitLabDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def add_user(
        self, username: str, *, scopes: tuple[str, ...] = ("read_api",), admin: bool = False
    ) -> User:
        user = User(next(self._ids), username, f"glpat-{username}-{next(self._ids)}", scopes,
                    admin=admin)  # fmt: skip
        self.users[user.token] = user
        return user

    def add_token(self, user: User, scopes: tuple[str, ...]) -> str:
        """Another personal access token of `user`, with its own scopes."""
        token = f"glpat-{user.username}-{next(self._ids)}"
        self.users[token] = User(user.id, user.username, token, scopes, user.bot, user.admin)
        return token

    def add_job(self, project: Project, user: User, *, token_prefix: str = "glcbt-") -> Job:
        """A running job of a new pipeline in `project`, triggered by `user`."""
        job_id = next(self._ids)
        job = Job(job_id, f"{token_prefix}{job_id}-secret", project, user, next(self._ids))
        self.jobs[job.token] = job
        return job

    def add_project(self, path: str, visibility: str = "private") -> Project:
        project = Project(next(self._ids), path, visibility)
        self.projects[project.id] = project
        return project

    def rename(self, project: Project, new_path: str, *, keep_old: bool = False) -> None:
        """Rename or transfer; with keep_old, the old path still resolves (a redirect route)."""
        if keep_old:
            self.redirects[project.path] = project.id
        project.path = new_path

    def count(self, prefix: str = "/api/v4/") -> int:
        return sum(1 for _, path in self.calls if path.startswith(prefix))

    # --- GitLab's logic ------------------------------------------------------------------
    def _group_level(self, project: Project, user: User) -> int:
        parts = project.namespace.split("/")
        ancestors = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return max((self.group_members.get((group, user.id), 0) for group in ancestors), default=0)

    def _effective_level(self, project: Project, user: User) -> int:
        return max(
            project.direct.get(user.id, 0),
            self._group_level(project, user),
            project.shared.get(user.id, 0),
        )

    def _find(self, id_or_path: str) -> Project | None:
        if id_or_path.isdigit():
            return self.projects.get(int(id_or_path))
        found = next((p for p in self.projects.values() if p.path == id_or_path), None)
        if found is None and id_or_path in self.redirects:
            return self.projects.get(self.redirects[id_or_path])
        return found

    def _visible(self, project: Project, user: User) -> bool:
        if user.admin or project.visibility != "private":
            return True
        return self._effective_level(project, user) >= 10

    def job_body(self, job: Job) -> dict:
        return {
            "id": job.id,
            "status": job.status,
            "name": "train",
            "ref": "main",
            "pipeline": {"id": job.pipeline_id, "project_id": job.project.id, "ref": "main",
                         "status": "running"},
            "user": {"id": job.user.id, "username": job.user.username, "bot": job.user.bot},
            "web_url": f"{self.url}/{job.project.path}/-/jobs/{job.id}",
            "project": {"ci_job_token_scope_enabled": False},
        }  # fmt: skip

    def project_body(self, project: Project, user: User) -> dict:
        def access(level: int) -> dict | None:
            return {"access_level": level, "notification_level": 3} if level else None

        group_level = self._group_level(project, user)
        return {
            "id": project.id,
            "path_with_namespace": project.path,
            "name": project.path.rsplit("/", 1)[-1],
            "visibility": project.visibility,
            "model_experiments_access_level": project.model_experiments_access_level,
            "model_registry_access_level": project.model_registry_access_level,
            "web_url": f"{self.url}/{project.path}",
            "archived": project.archived,
            "topics": project.topics,
            "namespace": {"id": 7, "path": project.namespace.rsplit("/", 1)[-1],
                          "kind": "group", "full_path": project.namespace},
            "permissions": {
                "project_access": access(project.direct.get(user.id, 0)),
                # Minimal Access (5) grants no project visibility and shows as no access.
                "group_access": access(group_level if group_level >= 10 else 0),
            },
        }  # fmt: skip

    def answer(
        self, path: str, token: str | None, job_token: str | None = None
    ) -> tuple[int, dict]:
        if self.down:
            return 503, {"message": "503 Service Unavailable"}
        if path == "/api/v4/job":
            # GitLab knows a job token only while its job runs.
            job = self.jobs.get(job_token or token or "")
            if job is None or job.status != "running":
                return 401, {"message": "401 Unauthorized"}
            return 200, self.job_body(job)
        user = self.users.get(token or "") or self.oauth.user_for(token)
        if user is None:
            return 401, {"message": "401 Unauthorized"}
        if path == "/api/v4/user":  # read_user is enough here
            body = {"id": user.id, "username": user.username, "name": user.username,
                    "state": "active", "bot": user.bot, "email": f"{user.username}@x",
                    "web_url": f"{self.url}/{user.username}"}  # fmt: skip
            if user.admin:  # GitLab shows the field to administrators only
                body["is_admin"] = True
            return 200, body
        if not {"read_api", "api"} & set(user.scopes):
            return 403, INSUFFICIENT_SCOPE
        if path.startswith("/api/v4/groups/"):
            return self._group_member(path.removeprefix("/api/v4/groups/").split("/"))
        parts = path.removeprefix("/api/v4/projects/").split("/")
        project = self._find(unquote(parts[0])) if path.startswith("/api/v4/projects/") else None
        if project is None or not self._visible(project, user):
            return 404, {"message": "404 Project Not Found"}
        if len(parts) == 1:
            return 200, self.project_body(project, user)
        if len(parts) == 4 and parts[1:3] == ["members", "all"] and parts[3].isdigit():
            member = next((u for u in self.users.values() if u.id == int(parts[3])), None)
            level = self._effective_level(project, member) if member else 0
            if level < 5:
                return 404, {"message": "404 Not found"}
            return 200, {"id": member.id, "username": member.username, "state": "active",
                         "access_level": level, "expires_at": None}  # fmt: skip
        if len(parts) == 3 and parts[1] == "members" and parts[2].isdigit():
            # Direct members only.
            level = project.direct.get(int(parts[2]), 0)
            if not level:
                return 404, {"message": "404 Not found"}
            return 200, {"id": int(parts[2]), "access_level": level, "state": "active"}
        return 404, {"message": "404 Not Found"}

    def _group_member(self, parts: list[str]) -> tuple[int, dict]:
        """GET /groups/:full_path/members/all/:user_id: the group's and its ancestors' members."""
        if len(parts) != 4 or parts[1:3] != ["members", "all"] or not parts[3].isdigit():
            return 404, {"message": "404 Not Found"}
        segments = unquote(parts[0]).split("/")
        ancestors = ["/".join(segments[: i + 1]) for i in range(len(segments))]
        level = max(self.group_members.get((group, int(parts[3])), 0) for group in ancestors)
        if level < 5:
            return 404, {"message": "404 Not found"}
        return 200, {"id": int(parts[3]), "access_level": level, "state": "active"}

    def openid(self, path: str) -> tuple[int, dict]:
        """GitLab's OpenID discovery document, or the key set it names."""
        if self.down or (self.keys_down and path == "/oauth/discovery/keys"):
            return 503, {"message": "503 Service Unavailable"}
        if path == "/oauth/discovery/keys":
            return 200, {"keys": list(self.signing_keys)}
        return 200, {"issuer": self.url, "jwks_uri": f"{self.url}/oauth/discovery/keys"}

    def project_list(self, token: str | None, query: dict[str, str]) -> tuple[int, object, dict]:
        """GET /projects?membership=true&min_access_level=N&pagination=keyset&order_by=id:
        the user's projects by id, a page at a time, with a Link header to the next page."""
        if self.down:
            return 503, {"message": "503 Service Unavailable"}, {}
        user = self.users.get(token or "") or self.oauth.user_for(token)
        if user is None:
            return 401, {"message": "401 Unauthorized"}, {}
        if not {"read_api", "api"} & set(user.scopes):
            return 403, INSUFFICIENT_SCOPE, {}
        minimum = int(query.get("min_access_level") or 0)
        per_page = min(int(query.get("per_page") or 20), self.max_per_page)
        after = int(query.get("id_after") or 0)
        found = [
            project
            for project in sorted(self.projects.values(), key=lambda project: project.id)
            if project.id > after and self._effective_level(project, user) >= max(minimum, 10)
        ]
        page = found[:per_page]
        headers = {}
        if len(found) > per_page:
            following = urlencode({**query, "id_after": page[-1].id})
            headers["Link"] = f'<{self.url}/api/v4/projects?{following}>; rel="next"'
        return 200, [self.project_body(project, user) for project in page], headers


@dataclass
class Grant:
    user: User
    access_token: str
    refresh_token: str
    expires_at: float
    revoked: bool = False
    scopes: tuple[str, ...] = ("read_user", "read_api")


class OAuthProvider:
    """GitLab as an OAuth 2 provider for one application, approving as `login_as`.

    Access tokens live `token_lifetime` seconds. A refresh rotates both tokens and kills the
    old refresh token (the old access token lives on until it expires), as GitLab does.
    """

    client_id = "sharinghub-mlflow-test"
    client_secret = "double-client-secret"

    def __init__(self) -> None:
        self.login_as: User | None = None  # None: the user denies access
        self.token_lifetime = 7200
        self.refresh_delay = 0.0  # seconds a refresh takes, to widen races in tests
        self.refresh_calls = 0
        self.codes: dict[str, tuple[User, str]] = {}  # code -> (user, redirect_uri)
        self.grants: list[Grant] = []
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict[str, str]:
        """The service's settings for this application."""
        return {
            "GITLAB_OAUTH_CLIENT_ID": self.client_id,
            "GITLAB_OAUTH_CLIENT_SECRET": self.client_secret,
        }

    def user_for(self, token: str | None) -> User | None:
        with self._lock:
            grant = next((g for g in self.grants if g.access_token == token), None)
        if grant is None or grant.revoked or grant.expires_at <= time.time():
            return None
        # An OAuth token has the scopes of its grant, not those of the user's own tokens.
        user = grant.user
        return User(user.id, user.username, user.token, grant.scopes, user.bot, user.admin)

    def grant_of(self, user: User) -> Grant | None:
        """The user's latest grant."""
        with self._lock:
            return next((g for g in reversed(self.grants) if g.user is user), None)

    def revoke_all(self, user: User) -> None:
        """The user revokes the application in GitLab: every token of theirs dies."""
        with self._lock:
            for grant in self.grants:
                if grant.user is user:
                    grant.revoked = True

    def authorize(self, query: dict[str, str]) -> tuple[int, dict]:
        """GET /oauth/authorize: approve at once, back to redirect_uri with code and state."""
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {"error": "invalid_client"}
        state = {"state": query["state"]} if "state" in query else {}
        if self.login_as is None:
            answer = {"error": "access_denied", "error_description": "The user denied it.", **state}
        else:
            code = secrets.token_hex(16)
            with self._lock:
                self.codes[code] = (self.login_as, query.get("redirect_uri", ""))
            answer = {"code": code, **state}
        separator = "&" if "?" in query.get("redirect_uri", "") else "?"
        return 302, {"Location": query.get("redirect_uri", "") + separator + urlencode(answer)}

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        """POST /oauth/token: grant_type authorization_code or refresh_token."""
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            form = {**form, "client_id": client_id, "client_secret": secret}
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return 401, {"error": "invalid_client"}
        invalid = {
            "error": "invalid_grant",
            "error_description": "The provided authorization grant is invalid, expired, revoked, "
            "does not match the redirection URI used in the authorization request, or was issued "
            "to another client.",
        }
        if form.get("grant_type") == "authorization_code":
            with self._lock:
                user, redirect_uri = self.codes.pop(form.get("code", ""), (None, None))
            if user is None or redirect_uri != form.get("redirect_uri"):
                return 400, invalid
            return 200, self._issue(user)
        if form.get("grant_type") == "refresh_token":
            with self._lock:
                self.refresh_calls += 1
            time.sleep(self.refresh_delay)
            with self._lock:
                grant = next(
                    (g for g in self.grants if g.refresh_token == form.get("refresh_token")), None
                )
                if grant is None or grant.revoked or not grant.refresh_token:
                    return 400, invalid
                grant.refresh_token = ""  # rotated: the old refresh token is dead
            return 200, self._issue(grant.user, grant.scopes)
        return 400, {"error": "unsupported_grant_type"}

    def revoke(self, form: dict[str, str]) -> tuple[int, dict]:
        """POST /oauth/revoke: the access or refresh token's grant dies."""
        with self._lock:
            for grant in self.grants:
                if form.get("token") in (grant.access_token, grant.refresh_token):
                    grant.revoked = True
        return 200, {}

    def issue(self, user: User, scopes: tuple[str, ...] = ("read_user", "read_api")) -> str:
        """An access token granted to this application by `user` for `scopes`."""
        return self._issue(user, scopes)["access_token"]

    def _issue(self, user: User, scopes: tuple[str, ...] = ("read_user", "read_api")) -> dict:
        grant = Grant(user, secrets.token_hex(32), secrets.token_hex(32),
                      time.time() + self.token_lifetime, scopes=scopes)  # fmt: skip
        with self._lock:
            self.grants.append(grant)
        return {"access_token": grant.access_token, "token_type": "Bearer",
                "expires_in": self.token_lifetime, "refresh_token": grant.refresh_token,
                "scope": " ".join(scopes), "created_at": int(time.time())}  # fmt: skip


def _handler_for(double: GitLabDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
            if path == "/oauth/authorize":
                status, headers = double.oauth.authorize(query)
                return self._send(status, {} if status == 302 else headers, headers)
            if path in ("/.well-known/openid-configuration", "/oauth/discovery/keys"):
                with double._lock:
                    double.calls.append(("GET", path))
                return self._send(*double.openid(path))
            authorization = self.headers.get("Authorization", "")
            token = authorization.removeprefix("Bearer ") if authorization else None
            # OAuth tokens also work as ?access_token= (social-core's GitLab backend uses it).
            token = token or self.headers.get("PRIVATE-TOKEN") or query.get("access_token")
            headers = {}
            with double._lock:
                double.calls.append(("GET", path))
            time.sleep(double.delay)
            with double._lock:
                if path == "/api/v4/projects":
                    status, body, headers = double.project_list(token, query)
                else:
                    status, body = double.answer(path, token, self.headers.get("JOB-TOKEN"))
            self._send(status, body, headers)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with double._lock:
                double.calls.append(("POST", path))
            if path == "/oauth/token":
                status, body = double.oauth.token(form, self.headers.get("Authorization", ""))
            elif path == "/oauth/revoke":
                status, body = double.oauth.revoke(form)
            else:
                status, body = 404, {"message": "404 Not Found"}
            self._send(status, body)

        def _send(self, status: int, body: object, headers: dict | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller stopped waiting for a slow answer (`delay`)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet; calls are recorded in double.calls

    return Handler
