"""The two servers under test: started, reached, measured (CPU, RSS) and stopped."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import psutil
import requests

from tests.gitlab_double import GitLabDouble

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
BARE, SERVICE = "bare", "service"
# The service runs `serve --workers 2` (gunicorn); bare mlflow gets as many.
WORKERS = 2
# Both servers: no telemetry (there is no network here) and no job runner (the service has none).
COMMON_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# The service's settings that would otherwise leak in from the caller's environment.
DATABASE_SETTINGS = ("DATABASE_URL", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI")
API = "api/2.0/mlflow/"
# The service's caller: a Developer of this project in the GitLab double.
PROJECT, DEVELOPER = "ml/team/churn", 30


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Target:
    """One server under test, as a client sees it."""

    name: str
    base: str  # the tracking URI, ending in "/"
    headers: dict[str, str]
    pid: int  # root of the server's process tree
    keep_alive: bool
    database: str = ""  # its own PostgreSQL database; empty for SQLite (in-process)
    experiment_id: str = ""
    http: requests.Session = field(init=False)

    def __post_init__(self) -> None:
        self.http = self.session()

    def session(self, keep_alive: bool | None = None) -> requests.Session:
        """A client; without keep-alive each request opens its own connection."""
        session = requests.Session()
        session.headers.update(self.headers)
        if not (self.keep_alive if keep_alive is None else keep_alive):
            session.headers["Connection"] = "close"
        return session

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        params: dict | None = None,
        session: requests.Session | None = None,
    ) -> dict:
        """One REST call; raises with the server's answer on any non-2xx status."""
        response = (session or self.http).request(
            method, self.base + path, json=body, params=params, timeout=600
        )
        if not response.ok:
            raise RuntimeError(
                f"{self.name}: {method} {path} answered {response.status_code}: "
                f"{response.text[:500]}"
            )
        return response.json() if response.content else {}

    def timed_call(self, method: str, path: str, body: dict | None = None, **kwargs) -> float:
        """One REST call's duration in milliseconds."""
        start = time.perf_counter()
        self.call(method, path, body, **kwargs)
        return (time.perf_counter() - start) * 1000

    def create_experiment(self, name: str) -> str:
        return self.call("POST", API + "experiments/create", {"name": name})["experiment_id"]

    def create_run(self, experiment_id: str, session: requests.Session | None = None) -> dict:
        body = {"experiment_id": experiment_id, "start_time": now_ms()}
        return self.call("POST", API + "runs/create", body, session=session)["run"]["info"]


@dataclass
class Servers:
    bare: Target
    service: Target
    gitlab: GitLabDouble
    bare_uri: str  # bare mlflow's database, for seeding
    service_uri: str  # the service's MLflow database
    logs: list[Path]
    service_model: str  # what `serve` runs, e.g. `2 workers (gthread, 4 thread(s) each)`


# --- Starting and stopping ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).ok:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url} in {timeout} s:\n{log_tail(log)}")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group this script started, then SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM gunicorn's master (it stops its workers), then SIGKILL it if it lingers."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_bare(
    workdir: Path, backend_uri: str, stack: contextlib.ExitStack
) -> tuple[str, subprocess.Popen]:
    """Start `mlflow server` in a process group of its own; stopped when `stack` closes."""
    port = free_port()
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(workdir / "bare-artifacts"),
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(WORKERS),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=workdir,
        env={**os.environ, **COMMON_ENV},
        stdout=(workdir / "bare.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn supervisor and workers share its process group
    )
    stack.callback(stop_process_group, process)
    return f"http://127.0.0.1:{port}", process


def start_service(
    workdir: Path, gitlab_url: str, env: dict[str, str], stack: contextlib.ExitStack
) -> tuple[str, subprocess.Popen, Path]:
    """Start `manage.py serve` (it execs gunicorn: the pid is the master's), its DATA_DIR under
    `workdir`; stopped when `stack` closes. Returns its URL, process and log."""
    port = free_port()
    log = workdir / "server.log"
    base_env = {k: v for k, v in os.environ.items() if k not in DATABASE_SETTINGS}
    argv = [sys.executable, "manage.py", "serve",
            "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={
            **base_env,
            "DATA_DIR": str(workdir / "data"),
            "GITLAB_URL": gitlab_url,
            "DJANGO_SETTINGS_MODULE": "sharinghub_mlflow.settings",
            **env,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    stack.callback(stop_process, process)
    return f"http://127.0.0.1:{port}", process, log


@contextlib.contextmanager
def postgres_databases(names: list[str]) -> Iterator[None]:
    """Fresh PostgreSQL databases for this run, dropped at the end."""
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'CREATE DATABASE "{name}"')
        yield
    finally:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def databases(
    workdir: Path, backend: str, stack: contextlib.ExitStack
) -> tuple[str, str, dict[str, str]]:
    """Bare's and the service's database URIs, and the service's environment naming its own."""
    if backend == "postgresql":
        stamp = f"bench_{os.getpid()}_{int(time.time())}"
        stack.enter_context(postgres_databases([f"{stamp}_bare", f"{stamp}_service"]))
        bare_uri, service_uri = f"{POSTGRES}/{stamp}_bare", f"{POSTGRES}/{stamp}_service"
        # The service keeps its Django tables in the same database as MLflow's.
        service_env = {"DATABASE_URL": service_uri, "MLFLOW_BACKEND_STORE_URI": service_uri}
    else:
        bare_uri = f"sqlite:///{workdir / 'bare.sqlite3'}"
        service_uri = f"sqlite:///{workdir / 'service' / 'data' / 'mlflow.sqlite3'}"
        service_env = {"MLFLOW_BACKEND_STORE_URI": service_uri}
    # The membership cache must stay fresh for the whole run.
    return bare_uri, service_uri, service_env | {**COMMON_ENV, "MEMBERSHIP_CACHE_TTL": "3600"}


def start_servers(
    workdir: Path, backend: str, keep_alive: bool, stack: contextlib.ExitStack
) -> Servers:
    """The GitLab double and both servers, started in parallel; all stopped when `stack` closes."""
    bare_uri, service_uri, service_env = databases(workdir, backend, stack)
    gitlab = GitLabDouble().start()
    stack.callback(gitlab.stop)
    project, dave = gitlab.add_project(PROJECT), gitlab.add_user("dave")
    project.direct[dave.id] = DEVELOPER

    bare_url, bare = start_bare(workdir, bare_uri, stack)
    (workdir / "service").mkdir()
    service_url, service, service_log = start_service(
        workdir / "service", gitlab.url, service_env, stack
    )
    wait_until_up(f"{service_url}/healthz", service, service_log)
    wait_until_up(f"{bare_url}/health", bare, workdir / "bare.log")
    return Servers(
        bare=Target(BARE, f"{bare_url}/", {}, bare.pid, keep_alive, database_name(bare_uri)),
        service=Target(
            SERVICE,
            f"{service_url}/mlflow/{project.path}/tracking/",
            {"Authorization": f"Bearer {dave.token}"},
            service.pid,
            keep_alive,
            database_name(service_uri),
        ),
        gitlab=gitlab,
        bare_uri=bare_uri,
        service_uri=service_uri,
        logs=[workdir / "bare.log", service_log],
        service_model=serving_model(service_log),
    )


def database_name(uri: str) -> str:
    """The PostgreSQL database of a URI; "" for SQLite, whose work is the server's own."""
    return uri.rsplit("/", 1)[-1] if uri.startswith("postgresql") else ""


def serving_model(log: Path) -> str:
    """The workers line `serve` printed, e.g. `2 workers (gthread, 4 thread(s) each)`."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.search(r"^\s*workers\s+(\d+) \((.+)\)$", text, re.MULTILINE)
    return f"{found.group(1)} workers ({found.group(2)})" if found else "workers unknown"


# --- Measuring a server's process tree ------------------------------------------------------
def process_tree(root: int) -> list[psutil.Process]:
    """`root` and all its descendants."""
    process = psutil.Process(root)
    return [process, *process.children(recursive=True)]


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) the process tree of `root` has used so far, its ended and
    reaped descendants' included (in their parents' children_* times), so that a worker that
    ends during a turn still counts."""
    total = 0.0
    for process in process_tree(root):
        with contextlib.suppress(psutil.NoSuchProcess):  # ended meanwhile
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@cache
def _postgres_admin():
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    return connection


def database_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time (user + system) each PostgreSQL backend connected to `database` has used so
    far, by pid (pg_stat_activity, then psutil); {} for SQLite. A backend that ends between
    two readings loses its time since the first: both servers keep their connections open."""
    if not database:
        return {}
    with _postgres_admin().cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
        pids = [pid for (pid,) in cursor.fetchall()]
    seconds = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = times.user + times.system
    return seconds


def tree_rss_mb(processes: list[psutil.Process]) -> float:
    """Resident memory of these processes, summed, in MB."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 2**20


class RssPeak:
    """The peak resident memory (MB) of a process tree while the `with` block runs."""

    def __init__(self, root_pid: int, interval: float = 0.01):
        self._processes = process_tree(root_pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = self.peak = tree_rss_mb(self._processes)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self._processes))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(self._processes))

    @property
    def growth(self) -> float:
        return self.peak - self.start
