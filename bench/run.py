"""Benchmark SharingHub MLflow against a bare `mlflow server` on the same kind of backend.

Run from the repository root with the project's virtualenv:

    python bench/run.py --quick                   # small sizes, under a minute in all
    python bench/run.py --backend sqlite          # full sizes (issue 7)
    python bench/run.py --backend postgresql      # PostgreSQL at 127.0.0.1:5432, user postgres

One run starts, side by side:

- bare: `python -m mlflow server` (uvicorn, `--serve-artifacts`, no auth), the same MLflow;
- service: `python manage.py serve` (gunicorn, serve's default workers and threads, or the
  `THREADS` of the environment), in front of the GitLab double of tests/;

with the same worker count, each on a fresh database of its own of the chosen kind. Both are
warmed, then every workload runs in short turns that alternate bare/service, then
service/bare (a few calls per turn, or one heavy call), so that drift on a shared machine hits
both alike. Times are taken client-side with time.perf_counter around each call (or transfer,
page load, burst of concurrent calls). Each server's CPU time (its process tree's user +
system) is read around its own turns: CPU per call is steadier than wall time on a shared
machine, and is budgeted at no more than bare's on every row (issue 12).

By default every request opens a fresh TCP connection (`Connection: close`): bare uvicorn
with more than one worker stalls ~40 ms on each reused connection (its sockets lack
TCP_NODELAY; gunicorn sets it), which would flatter the service. Rows 1k, 7k and 7wk show
what keep-alive clients, such as MlflowClient, see.

Workloads: 1 log_metric loop, 2 log_batch of 1,000 metrics, 3 get_run on a big run,
4 search_runs over many runs, 5 search_experiments with few then many projects in the
database, 6 artifact upload and download (throughput and the server's peak RSS growth),
7 concurrent clients logging (8 and 32 clients, fresh and keep-alive connections), 8 the UI's
first page load. The GitLab double counts the calls the service makes during each workload.

The Markdown table goes to stdout and into a section of bench/RESULTS.md (one section per
backend and size, replaced on each run). Both servers are stopped at the end, also on failure,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urljoin

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import make_cast, start_live_server  # noqa: E402
from tests.gitlab_double import GitLabDouble  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
BARE, SERVICE = "bare", "service"
# tests.conftest.start_live_server runs gunicorn with 2 workers; bare mlflow gets as many.
WORKERS = 2
# Both servers: no telemetry (there is no network here) and no job runner (the service has none).
COMMON_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# Projects seeded for workload 5 get GitLab ids from here on, far from the double's own.
OTHER_PROJECT_ID = 1_000_000
API = "api/2.0/mlflow/"
LOG_METRIC = API + "runs/log-metric"
LOG_BATCH = API + "runs/log-batch"


# --- Sizes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much each workload does; each field is also an option (`--metric-calls 500`)."""

    warmup_calls: int = 40  # log_metric calls per server before measuring
    turn: int = 10  # cheap calls a server makes before the other's turn (heavy calls: 1)
    metric_calls: int = 2000  # 1: log_metric calls, one client
    keepalive_calls: int = 200  # 1k: log_metric calls over one keep-alive connection
    batch_calls: int = 200  # 2: log_batch calls
    batch_size: int = 1000  # 2: metrics per log_batch call
    run_metric_values: int = 10_000  # 3: metric values in the run get_run reads
    run_params: int = 100  # 3: params in that run
    get_run_calls: int = 400  # 3
    search_runs: int = 1000  # 4: runs in the searched experiment, all returned
    search_runs_calls: int = 20  # 4
    projects_small: int = 20  # 5: projects (workspaces) in the database, first
    projects_large: int = 2000  # 5: then
    experiments_per_project: int = 10  # 5: also the page size searched
    search_experiments_calls: int = 200  # 5: per database size
    artifact_mb: int = 200  # 6
    artifact_transfers: int = 4  # 6: uploads, and as many downloads, per server
    clients: int = 8  # 7, 7k: concurrent clients
    many_clients: int = 32  # 7w, 7wk: concurrent clients
    calls_per_client: int = 125  # 7, 7k, 7w, 7wk
    bursts: int = 8  # 7: turns per server; calls_per_client is split over them
    ui_loads: int = 20  # 8


QUICK = Sizes(
    warmup_calls=10,
    metric_calls=40,
    keepalive_calls=6,
    batch_calls=4,
    run_metric_values=1000,
    get_run_calls=12,
    search_runs=10,
    search_runs_calls=4,
    projects_small=5,
    projects_large=100,
    search_experiments_calls=12,
    artifact_mb=20,
    artifact_transfers=2,
    calls_per_client=4,
    bursts=2,
    ui_loads=2,
)


def turns(total: int, per_turn: int) -> list[int]:
    """`total` operations cut into turns of `per_turn` (the last one may be shorter)."""
    return [min(per_turn, total - start) for start in range(0, total, per_turn)]


def now_ms() -> int:
    return int(time.time() * 1000)


# --- Statistics and the table -----------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass(frozen=True)
class Budget:
    """A target of issues 7 and 12: on the ratio service/bare of the medians or of the p95s,
    or on the service's own worst value."""

    kind: str  # "max_ratio", "min_ratio", "max_p95_ratio" or "max_value"
    limit: float

    def verdict(self, row: Row) -> str:
        if self.kind == "max_value":
            worst = max(row.service)
            met = worst < self.limit
            return f"{'met' if met else 'MISSED'} (max {fmt(worst)} < {fmt(self.limit)})"
        ratio, label = (row.p95_ratio, "p95 ") if self.kind == "max_p95_ratio" else (row.ratio, "")
        return ratio_verdict(label, ratio, self.limit, at_most=self.kind != "min_ratio")


def ratio_verdict(label: str, ratio: float, limit: float, *, at_most: bool) -> str:
    """`label` met (ratio ≤ limit), or MISSED by how much; ≥ when not `at_most`."""
    if at_most:
        met, sign, miss = ratio <= limit, "≤", ratio / limit - 1
    else:
        met, sign, miss = ratio >= limit, "≥", 1 - ratio / limit
    if met:
        return f"{label}met ({ratio:.2f} {sign} {limit:.2f})"
    return f"{label}MISSED by {miss:.0%} (needs {sign} {limit:.2f})"


AS_FAST = Budget("max_ratio", 1.10)
AS_MUCH = Budget("min_ratio", 0.90)
AT_LEAST_BARE = Budget("min_ratio", 1.00)
P95_NO_WORSE = Budget("max_p95_ratio", 1.00)
# Issue 12: the service spends no more server CPU per call than bare, on every row measured.
CPU_LIMIT = 1.00


@dataclass
class Row:
    """One line of the table: a measure of both servers and its budget."""

    number: str
    workload: str
    unit: str
    samples: dict[str, list[float]]
    gitlab_calls: int | None = None
    budget: Budget | None = None
    higher_is_better: bool = False
    hot_path: bool = False  # must make no GitLab call while the cache is fresh

    @property
    def bare(self) -> list[float]:
        return self.samples[BARE]

    @property
    def service(self) -> list[float]:
        return self.samples[SERVICE]

    @property
    def ratio(self) -> float:
        """Median service / median bare; NaN when bare's median is 0."""
        bare = statistics.median(self.bare)
        return statistics.median(self.service) / bare if bare else math.nan

    @property
    def p95_ratio(self) -> float:
        bare = self.p95(self.bare)
        return self.p95(self.service) / bare if bare else math.nan

    @property
    def cpu_ratio(self) -> float | None:
        """Server CPU per call, service / bare, when measured."""
        cpu = getattr(self.samples, "cpu_ms_per_op", None)
        return cpu[SERVICE] / cpu[BARE] if cpu and cpu[BARE] else None

    def p95(self, values: list[float]) -> float:
        """The worst 5%: the 95th percentile of a time, the 5th of a throughput."""
        return percentile(values, 0.05 if self.higher_is_better else 0.95)

    def verdict(self) -> str:
        parts = [self.budget.verdict(self)] if self.budget else []
        if self.cpu_ratio is not None:
            parts.append(ratio_verdict("CPU ", self.cpu_ratio, CPU_LIMIT, at_most=True))
        if self.hot_path:
            parts.append("0 GitLab calls: " + ("met" if self.gitlab_calls == 0 else "MISSED"))
        return "; ".join(parts) or "—"

    def cpu_cell(self) -> str:
        """Server CPU s per 1,000 calls (= ms per call), bare → service (service/bare)."""
        if self.cpu_ratio is None:
            return "—"
        cpu = self.samples.cpu_ms_per_op
        return f"{fmt(cpu[BARE])} → {fmt(cpu[SERVICE])} ({self.cpu_ratio:.2f})"

    def markdown(self) -> str:
        calls = "—" if self.gitlab_calls is None else str(self.gitlab_calls)
        cells = [
            self.number,
            self.workload,
            self.unit,
            fmt(statistics.median(self.bare)),
            fmt(self.p95(self.bare)),
            fmt(statistics.median(self.service)),
            fmt(self.p95(self.service)),
            "—" if math.isnan(self.ratio) else f"{self.ratio:.2f}",
            self.cpu_cell(),
            calls,
            self.verdict(),
        ]
        return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| # | workload | unit | bare median | bare p95 | service median | service p95 "
    "| service/bare | server CPU ms/op (s per 1,000 ops), bare → service | GitLab calls "
    "| budget |\n"
    "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|"
)


def markdown_table(rows: list[Row]) -> str:
    return "\n".join([TABLE_HEADER, *(row.markdown() for row in rows)]) + "\n"


# --- The two servers --------------------------------------------------------------------------
@dataclass
class Target:
    """One server under test, as a client sees it."""

    name: str
    base: str  # the tracking URI, ending in "/"
    headers: dict[str, str]
    pid: int  # root of the server's process tree
    keep_alive: bool
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


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def direct_children() -> set[int]:
    """Pids of this script's own child processes."""
    return set(children_by_parent().get(os.getpid(), []))


def stop_children(pids: set[int]) -> None:
    """SIGTERM child processes of this script by pid, reap them, SIGKILL any that linger."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.1)


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


@dataclass
class Servers:
    bare: Target
    service: Target
    gitlab: GitLabDouble
    bare_uri: str  # bare mlflow's database, for seeding
    service_uri: str  # the service's MLflow database
    logs: list[Path]
    service_model: str  # what `serve` runs, e.g. `2 workers (gthread, 4 thread(s) each)`


def start_servers(
    workdir: Path, backend: str, keep_alive: bool, stack: contextlib.ExitStack
) -> Servers:
    """The GitLab double and both servers, started in parallel; all stopped when `stack` closes."""
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
    service_env |= {**COMMON_ENV, "MEMBERSHIP_CACHE_TTL": "3600"}

    gitlab = GitLabDouble().start()
    stack.callback(gitlab.stop)
    cast = make_cast(gitlab)

    bare_url, bare_process = start_bare(workdir, bare_uri, stack)
    (workdir / "service").mkdir()
    children = direct_children()
    try:
        live, service_process = start_live_server(workdir / "service", gitlab.url, **service_env)
    except BaseException:
        # Failed or interrupted while it waited for the service: stop what it had started.
        stop_children(direct_children() - children)
        raise
    stack.callback(stop_process, service_process)
    wait_until_up(f"{bare_url}/health", bare_process, workdir / "bare.log")

    return Servers(
        bare=Target(BARE, f"{bare_url}/", {}, bare_process.pid, keep_alive),
        service=Target(
            SERVICE,
            live.tracking_uri(cast.project.path),
            {"Authorization": f"Bearer {cast.dave.token}"},
            service_process.pid,
            keep_alive,
        ),
        gitlab=gitlab,
        bare_uri=bare_uri,
        service_uri=service_uri,
        logs=[workdir / "bare.log", live.log],
        service_model=serving_model(live.log),
    )


# --- Measuring ----------------------------------------------------------------------------------
Step = Callable[[Target, int], list[float]]


@dataclass
class Bench:
    sizes: Sizes
    servers: Servers
    workdir: Path
    notes: list[str] = field(default_factory=list)

    @property
    def targets(self) -> tuple[Target, Target]:
        return self.servers.bare, self.servers.service

    def gitlab_calls(self) -> int:
        return len(self.servers.gitlab.calls)

    def alternate(self, schedule: list[int], step: Step, calls_per_unit: int = 1) -> Samples:
        """Give both servers each turn of `schedule`: `step(target, n)` does n units of work
        (each `calls_per_unit` calls) and returns their samples. Who goes first swaps every
        turn (bare service, service bare...). Each server's CPU time (its process tree's) is
        read around its own turns only."""
        samples = Samples({BARE: [], SERVICE: []})
        cpu = dict.fromkeys(samples, 0.0)
        for index, count in enumerate(schedule):
            order = self.targets if index % 2 == 0 else self.targets[::-1]
            for target in order:
                started = tree_cpu_seconds(target.pid)
                samples[target.name].extend(step(target, count))
                cpu[target.name] += tree_cpu_seconds(target.pid) - started
        operations = sum(schedule) * calls_per_unit
        samples.cpu_ms_per_op = {name: 1000 * seconds / operations for name, seconds in cpu.items()}
        return samples


class Samples(dict):
    """Samples per server, and the server CPU time each operation cost (ms), when measured."""

    cpu_ms_per_op: dict[str, float] | None = None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) the process tree of `root` has used so far."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children = children_by_parent()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, summed, in MB."""
    pages = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak:
    """The peak resident memory (MB) of a process tree while the `with` block runs."""

    def __init__(self, root_pid: int, interval: float = 0.01):
        self._pids = process_tree(root_pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = self.peak = tree_rss_mb(self._pids)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self._pids))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(self._pids))

    @property
    def growth(self) -> float:
        return self.peak - self.start


# --- Helpers shared by workloads ---------------------------------------------------------------
def make_file(path: Path, size_mb: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(2**20))
    return path


def fill_run(target: Target, run_id: str, metric_values: int, params: int) -> None:
    """Log `metric_values` values (100 keys, many steps) and `params` params into a run."""
    timestamp = now_ms()
    values = [
        {"key": f"metric_{i % 100}", "value": i * 0.1, "timestamp": timestamp, "step": i // 100}
        for i in range(metric_values)
    ]
    for start in range(0, metric_values, 1000):
        target.call("POST", LOG_BATCH, {"run_id": run_id, "metrics": values[start : start + 1000]})
    names = [f"param_{i}" for i in range(params)]
    for start in range(0, params, 100):  # MLflow takes at most 100 params per call
        chunk = [{"key": name, "value": f"value of {name}"} for name in names[start : start + 100]]
        target.call("POST", LOG_BATCH, {"run_id": run_id, "params": chunk})


def create_runs(target: Target, experiment_id: str, count: int) -> None:
    """`count` runs, each with 5 params, 5 metrics and a tag, created over the REST API."""
    session = target.session()
    for i in range(count):
        run_id = target.create_run(experiment_id, session=session)["run_id"]
        body = {
            "run_id": run_id,
            "params": [{"key": f"p{k}", "value": str(i * k)} for k in range(5)],
            "metrics": [
                {"key": f"m{k}", "value": i / (k + 1), "timestamp": now_ms(), "step": 0}
                for k in range(5)
            ],
            "tags": [{"key": "team", "value": f"t{i % 7}"}],
        }
        target.call("POST", LOG_BATCH, body, session=session)


def seed_projects(bench: Bench, first: int, last: int) -> None:
    """Projects first..last-1 with `experiments_per_project` experiments each, in SQL directly.

    The service gets a workspace per project, as if each had been used through it; bare
    MLflow, which has a single namespace, gets the same number of experiments in it.
    """
    per_project = bench.sizes.experiments_per_project
    created = now_ms()
    for uri, per_workspace in ((bench.servers.service_uri, True), (bench.servers.bare_uri, False)):
        engine = sa.create_engine(uri)
        tables = sa.MetaData()
        tables.reflect(engine, only=["experiments", "workspaces"])
        workspaces = [f"p-{OTHER_PROJECT_ID + k}" for k in range(first, last)]
        experiments = [
            {
                "name": f"experiment-{j}" if per_workspace else f"project-{k}-experiment-{j}",
                "workspace": workspaces[k - first] if per_workspace else "default",
                "lifecycle_stage": "active",
                "creation_time": created - k,
                "last_update_time": created - k,
            }
            for k in range(first, last)
            for j in range(per_project)
        ]
        root = "mlflow-artifacts:/"
        if per_workspace:
            root += "workspaces/' || workspace || '/"
        with engine.begin() as connection:
            if per_workspace:
                connection.execute(
                    tables.tables["workspaces"].insert(),
                    [{"name": name, "description": "seeded"} for name in workspaces],
                )
            connection.execute(tables.tables["experiments"].insert(), experiments)
            connection.execute(
                sa.text(
                    f"UPDATE experiments SET artifact_location = '{root}' || experiment_id "
                    "WHERE artifact_location IS NULL"
                )
            )
        engine.dispose()


def upload_download(
    target: Target, run: dict, source: Path, name: str
) -> tuple[float, float, float, float]:
    """PUT then GET one artifact through the server.

    Returns seconds up, seconds down, and the server process tree's peak RSS growth (MB)
    during each transfer.
    """
    artifact_path = run["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")
    url = f"{target.base}api/2.0/mlflow-artifacts/artifacts/{artifact_path}/{name}"
    session = target.session()
    with RssPeak(target.pid) as upload_rss, source.open("rb") as stream:
        start = time.perf_counter()
        response = session.put(url, data=stream, timeout=600)
        upload = time.perf_counter() - start
    if not response.ok:
        raise RuntimeError(f"{target.name}: upload answered {response.status_code}")
    received = 0
    with RssPeak(target.pid) as download_rss:
        start = time.perf_counter()
        with session.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_content(2**20):
                received += len(chunk)
        download = time.perf_counter() - start
    if received != source.stat().st_size:
        raise RuntimeError(f"{target.name}: downloaded {received} of {source.stat().st_size} B")
    return upload, download, upload_rss.growth, download_rss.growth


ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def load_ui(target: Target) -> tuple[float, int, int]:
    """A browser's first visit: index, the assets it names, and the first ajax calls.

    Returns (seconds, requests made, bytes received).
    """
    session = target.session()
    count = size = 0

    def get(url: str, params: dict | None = None) -> str:
        nonlocal count, size
        response = session.get(url, params=params, timeout=60)
        response.raise_for_status()
        count += 1
        size += len(response.content)
        return response.text

    start = time.perf_counter()
    index = get(target.base)
    for asset in ASSET.findall(index):
        if not asset.startswith(("http:", "https:", "//", "data:")):
            get(urljoin(target.base, asset))
    get(target.base + "ajax-api/3.0/mlflow/server-info")
    get(
        target.base + "ajax-api/2.0/mlflow/experiments/search",
        {"max_results": 25, "order_by": "last_update_time DESC"},
    )
    return time.perf_counter() - start, count, size


def warm_up(bench: Bench) -> None:
    """Create each server's bench experiment and run every code path a few times."""
    warm_file = make_file(bench.workdir / "warm.bin", 1)
    for target in bench.targets:
        target.experiment_id = target.create_experiment("bench")
        run = target.create_run(target.experiment_id)
        for i in range(bench.sizes.warmup_calls):
            body = {"run_id": run["run_id"], "key": "warm", "value": i, "timestamp": now_ms()}
            target.call("POST", LOG_METRIC, body | {"step": i})
        target.call("GET", API + "runs/get", params={"run_id": run["run_id"]})
        target.call("POST", API + "runs/search", {"experiment_ids": [target.experiment_id]})
        target.call("POST", API + "experiments/search", {"max_results": 10})
        upload_download(target, run, warm_file, "warm.bin")
        load_ui(target)
    warm_file.unlink()


# --- Workloads ----------------------------------------------------------------------------------
def w1_log_metric(bench: Bench) -> list[Row]:
    """1. One client logs a metric per call; 1k: the same over one keep-alive connection."""
    sizes = bench.sizes

    def loop(keep_alive: bool | None) -> Step:
        """A step logging into one run per server, over one client (session) per server."""
        clients = {target.name: target.session(keep_alive) for target in bench.targets}
        runs = {t.name: t.create_run(t.experiment_id)["run_id"] for t in bench.targets}
        logged = dict.fromkeys(runs, 0)

        def step(target: Target, count: int) -> list[float]:
            times = []
            for _ in range(count):
                i = logged[target.name] = logged[target.name] + 1
                body = {"run_id": runs[target.name], "key": "loss", "value": 1 / i, "step": i}
                body["timestamp"] = now_ms()
                times.append(
                    target.timed_call("POST", LOG_METRIC, body, session=clients[target.name])
                )
            return times

        return step

    before = bench.gitlab_calls()
    fresh = bench.alternate(turns(sizes.metric_calls, sizes.turn), loop(None))
    fresh_calls = bench.gitlab_calls() - before
    kept = bench.alternate(turns(sizes.keepalive_calls, sizes.turn), loop(True))
    return [
        Row(
            "1",
            f"log_metric loop ({sizes.metric_calls:,} calls, one client)",
            "ms/call",
            fresh,
            fresh_calls,
            AS_FAST,
            hot_path=True,
        ),
        Row(
            "1k",
            f"log_metric over one keep-alive connection, as MlflowClient "
            f"({sizes.keepalive_calls} calls)",
            "ms/call",
            kept,
            bench.gitlab_calls() - before - fresh_calls,
        ),
    ]


def w2_log_batch(bench: Bench) -> list[Row]:
    """2. log_batch calls of `batch_size` metrics each (100 keys, several steps)."""
    sizes = bench.sizes
    steps_per_call = -(-sizes.batch_size // 100)
    before = bench.gitlab_calls()
    runs = {t.name: t.create_run(t.experiment_id)["run_id"] for t in bench.targets}
    logged = dict.fromkeys(runs, 0)

    def step(target: Target, count: int) -> list[float]:
        times = []
        for _ in range(count):
            i = logged[target.name] = logged[target.name] + 1
            timestamp = now_ms()
            metrics = [
                {"key": f"m{j % 100}", "value": j / 2, "timestamp": timestamp,
                 "step": i * steps_per_call + j // 100}
                for j in range(sizes.batch_size)
            ]  # fmt: skip
            body = {"run_id": runs[target.name], "metrics": metrics}
            times.append(target.timed_call("POST", LOG_BATCH, body))
        return times

    samples = bench.alternate(turns(sizes.batch_calls, 1), step)
    return [
        Row(
            "2",
            f"log_batch of {sizes.batch_size:,} metrics ({sizes.batch_calls} calls)",
            "ms/call",
            samples,
            bench.gitlab_calls() - before,
            AS_FAST,
            hot_path=True,
        )
    ]


def w3_get_run(bench: Bench) -> list[Row]:
    """3. get_run on a run holding `run_metric_values` metric values and `run_params` params."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    run_ids = {}
    for target in bench.targets:
        run_ids[target.name] = target.create_run(target.experiment_id)["run_id"]
        fill_run(target, run_ids[target.name], sizes.run_metric_values, sizes.run_params)

    def step(target: Target, count: int) -> list[float]:
        params = {"run_id": run_ids[target.name]}
        return [target.timed_call("GET", API + "runs/get", params=params) for _ in range(count)]

    samples = bench.alternate(turns(sizes.get_run_calls, sizes.turn), step)
    return [
        Row(
            "3",
            f"get_run, run with {sizes.run_metric_values:,} metric values and "
            f"{sizes.run_params} params ({sizes.get_run_calls} calls)",
            "ms/call",
            samples,
            bench.gitlab_calls() - before,
            AS_FAST,
            hot_path=True,
        )
    ]


def w4_search_runs(bench: Bench) -> list[Row]:
    """4. search_runs returning every run of an experiment holding `search_runs` runs."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    experiments = {t.name: t.create_experiment("search-runs") for t in bench.targets}
    with ThreadPoolExecutor(2) as pool:  # one seeder per server: separate databases
        seeders = [
            pool.submit(create_runs, target, experiments[target.name], sizes.search_runs)
            for target in bench.targets
        ]
        for seeder in seeders:
            seeder.result()

    def step(target: Target, count: int) -> list[float]:
        body = {"experiment_ids": [experiments[target.name]], "max_results": sizes.search_runs}
        times = []
        for _ in range(count):
            start = time.perf_counter()
            found = target.call("POST", API + "runs/search", body)
            times.append((time.perf_counter() - start) * 1000)
            if len(found["runs"]) != sizes.search_runs:
                raise RuntimeError(f"{target.name}: search_runs found {len(found['runs'])} runs")
        return times

    samples = bench.alternate(turns(sizes.search_runs_calls, 1), step)
    return [
        Row(
            "4",
            f"search_runs over {sizes.search_runs:,} runs, all returned "
            f"({sizes.search_runs_calls} calls)",
            "ms/call",
            samples,
            bench.gitlab_calls() - before,
            AS_FAST,
        )
    ]


def w5_search_experiments(bench: Bench) -> list[Row]:
    """5. search_experiments in one project, with few then many projects in the database."""
    sizes = bench.sizes
    page = sizes.experiments_per_project
    before = bench.gitlab_calls()
    for target in bench.targets:
        for j in range(page):
            target.create_experiment(f"project-experiment-{j}")

    def step(target: Target, count: int) -> list[float]:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            found = target.call("POST", API + "experiments/search", {"max_results": page})
            times.append((time.perf_counter() - start) * 1000)
            if len(found["experiments"]) != page:
                raise RuntimeError(f"{target.name}: found {len(found['experiments'])} experiments")
        return times

    rows = []
    seeded = 0
    for letter, projects in (("a", sizes.projects_small), ("b", sizes.projects_large)):
        seed_projects(bench, seeded, projects)
        seeded = projects
        samples = bench.alternate(turns(sizes.search_experiments_calls, sizes.turn), step)
        rows.append(
            Row(
                f"5{letter}",
                f"search_experiments, page of {page}, with {projects:,} other projects x {page} "
                f"experiments in the database ({sizes.search_experiments_calls} calls)",
                "ms/call",
                samples,
                bench.gitlab_calls() - before,
                AS_FAST,
            )
        )
        before = bench.gitlab_calls()
    small, large = rows
    median = statistics.median
    growth = {n: median(large.samples[n]) / median(small.samples[n]) for n in (BARE, SERVICE)}
    bench.notes.append(
        f"search_experiments at {sizes.projects_large:,} vs {sizes.projects_small:,} projects "
        f"(median 5b / 5a): service x{growth[SERVICE]:.2f}, bare x{growth[BARE]:.2f} (bare "
        "keeps every project's experiments in its one namespace)."
    )
    return rows


def w6_artifacts(bench: Bench) -> list[Row]:
    """6. Upload then download a big artifact: throughput, and the server's peak RSS growth."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    source = make_file(bench.workdir / "artifact.bin", sizes.artifact_mb)
    runs = {target.name: target.create_run(target.experiment_id) for target in bench.targets}
    results: dict[str, list[tuple[float, float, float, float]]] = {BARE: [], SERVICE: []}

    def step(target: Target, count: int) -> list[float]:
        for _ in range(count):
            results[target.name].append(
                upload_download(target, runs[target.name], source, "model.bin")
            )
        return []

    bench.alternate(turns(sizes.artifact_transfers, 1), step)
    source.unlink()

    def column(index: int) -> dict[str, list[float]]:
        return {name: [result[index] for result in results[name]] for name in results}

    def throughput(index: int) -> dict[str, list[float]]:
        seconds = column(index)
        return {name: [sizes.artifact_mb / s for s in seconds[name]] for name in seconds}

    mb, n = sizes.artifact_mb, sizes.artifact_transfers
    rss_budget = Budget("max_value", 50 * mb / 200)  # 50 MB for 200 MB, scaled for --quick
    return [
        Row("6a", f"artifact upload, {mb} MB ({n} transfers)", "MB/s", throughput(0),
            bench.gitlab_calls() - before, AS_MUCH, higher_is_better=True),
        Row("6b", f"artifact download, {mb} MB ({n} transfers)", "MB/s", throughput(1),
            None, AS_MUCH, higher_is_better=True),
        Row("6c", f"server RSS growth during a {mb} MB upload", "MB", column(2), None,
            rss_budget),
        Row("6d", f"server RSS growth during a {mb} MB download", "MB", column(3), None,
            rss_budget),
    ]  # fmt: skip


@dataclass(frozen=True)
class Crowd:
    """One variant of workload 7: how many clients, and whether they keep connections."""

    number: str
    clients: int
    keep_alive: bool

    @property
    def connections(self) -> str:
        return "keep-alive connections, as MlflowClient" if self.keep_alive else "fresh connections"


def crowd_step(bench: Bench, crowd: Crowd, latencies: dict[str, list[float]]) -> Step:
    """A burst: `crowd.clients` threads, each with its own session and run, log `per_client`
    metrics at once; one sample per burst, calls/s. Runs are made before any turn, so the
    server CPU read around a turn is the logging's alone."""
    run_ids = {
        t.name: [t.create_run(t.experiment_id)["run_id"] for _ in range(crowd.clients)]
        for t in bench.targets
    }

    def step(target: Target, per_client: int) -> list[float]:
        barrier = threading.Barrier(crowd.clients + 1)
        times: list[list[float]] = [[] for _ in range(crowd.clients)]
        errors: list[Exception] = []

        def client(index: int) -> None:
            session = target.session(crowd.keep_alive)
            run_id = run_ids[target.name][index]
            barrier.wait()
            try:
                for i in range(per_client):
                    body = {"run_id": run_id, "key": "loss", "value": i, "step": i}
                    body["timestamp"] = now_ms()
                    times[index].append(
                        target.timed_call("POST", LOG_METRIC, body, session=session)
                    )
            except Exception as error:  # noqa: BLE001 - raised again in the main thread
                errors.append(error)
            finally:
                session.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(crowd.clients)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        latencies[target.name].extend(t for client_times in times for t in client_times)
        return [crowd.clients * per_client / elapsed]

    return step


def concurrent_rows(bench: Bench, crowd: Crowd) -> list[Row]:
    """Throughput per burst (at least bare's) and the latency of one call (p95 no worse)."""
    sizes = bench.sizes
    bursts = turns(sizes.calls_per_client, -(-sizes.calls_per_client // sizes.bursts))
    latencies: dict[str, list[float]] = {BARE: [], SERVICE: []}
    step = crowd_step(bench, crowd, latencies)
    before = bench.gitlab_calls()
    throughput = bench.alternate(bursts, step, calls_per_unit=crowd.clients)
    return [
        Row(
            crowd.number,
            f"{crowd.clients} concurrent clients logging, {crowd.connections} "
            f"({sizes.calls_per_client} log_metric calls each)",
            "calls/s",
            throughput,
            bench.gitlab_calls() - before,
            AT_LEAST_BARE,
            higher_is_better=True,
        ),
        Row(
            f"{crowd.number}b",
            f"latency of one call among {crowd.clients} clients ({crowd.connections})",
            "ms/call",
            latencies,
            budget=P95_NO_WORSE,
        ),
    ]


def w7_concurrent(bench: Bench) -> list[Row]:
    """7. Concurrent clients logging, each into its own run: `clients` (8) and
    `many_clients` (32), each with fresh and with keep-alive connections."""
    sizes = bench.sizes
    crowds = [
        Crowd("7", sizes.clients, keep_alive=False),
        Crowd("7k", sizes.clients, keep_alive=True),
        Crowd("7w", sizes.many_clients, keep_alive=False),
        Crowd("7wk", sizes.many_clients, keep_alive=True),
    ]
    return [row for crowd in crowds for row in concurrent_rows(bench, crowd)]


def w8_ui(bench: Bench) -> list[Row]:
    """8. The UI's first page load: index, its assets, server-info, experiments/search."""
    sizes = bench.sizes
    shape = (0, 0)

    def step(target: Target, count: int) -> list[float]:
        nonlocal shape
        times = []
        for _ in range(count):
            seconds, count, size = load_ui(target)
            times.append(seconds * 1000)
            shape = (count, size)
        return times

    before = bench.gitlab_calls()
    samples = bench.alternate(turns(sizes.ui_loads, 1), step)
    count, size = shape
    return [
        Row(
            "8",
            f"UI first page load: {count} requests, {size / 2**20:.1f} MB ({sizes.ui_loads} loads)",
            "ms/load",
            samples,
            bench.gitlab_calls() - before,
        )
    ]


WORKLOADS: dict[str, Callable[[Bench], list[Row]]] = {
    "1": w1_log_metric,
    "2": w2_log_batch,
    "3": w3_get_run,
    "4": w4_search_runs,
    "5": w5_search_experiments,
    "6": w6_artifacts,
    "7": w7_concurrent,
    "8": w8_ui,
}


# --- Report -----------------------------------------------------------------------------------
def service_revision() -> str:
    """The commit of the service under test, with `-dirty` when its tracked files differ."""
    try:
        described = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--exclude", "*"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return described.stdout.strip()


def machine_description(backend: str) -> str:
    meminfo = Path("/proc/meminfo").read_text()
    memory_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    parts = [
        f"nproc {len(os.sched_getaffinity(0))} ({cpu.group(1).strip() if cpu else 'CPU unknown'})",
        f"memory {memory_kb / 2**20:.1f} GiB",
        platform.platform(),
        f"Python {platform.python_version()}",
        f"MLflow {version('mlflow')}",
        f"Django {version('django')}",
        f"gunicorn {version('gunicorn')}",
        f"uvicorn {version('uvicorn')}",
        f"SQLAlchemy {version('sqlalchemy')}",
    ]
    if backend == "postgresql":
        engine = sa.create_engine(f"{POSTGRES}/postgres")
        with engine.connect() as connection:
            parts.append(connection.execute(sa.text("SELECT version()")).scalar().split(" on ")[0])
        engine.dispose()
    return ", ".join(parts)


def serving_model(log: Path) -> str:
    """The workers line `serve` printed, e.g. `2 workers (gthread, 4 thread(s) each)`."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.search(r"^\s*workers\s+(\d+) \((.+)\)$", text, re.MULTILINE)
    return f"{found.group(1)} workers ({found.group(2)})" if found else "workers unknown"


def report(
    args: argparse.Namespace,
    sizes: Sizes,
    bench: Bench,
    rows: list[Row],
    seconds: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
    connections = "keep-alive connections" if args.keep_alive else "a fresh connection per request"
    loads = [", ".join(f"{x:.2f}" for x in sample) for sample in load]
    lines = [
        f"## {title}{' (quick)' if args.quick else ''}",
        "",
        f"- Finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `python {shlex.join(sys.argv)}`, "
        f"{seconds:.0f} s in all, server start-up included. Service at commit "
        f"{service_revision()}.",
        f"- Machine: {machine_description(args.backend)}.",
        f"- Load average (1, 5, 15 min): {loads[0]} at the start, {loads[1]} at the end. The "
        "2 cores are shared by the client, both servers, the database and whatever else runs.",
        f"- bare: `python -m mlflow server --backend-store-uri <{args.backend}> "
        "--artifacts-destination <dir> --serve-artifacts --host 127.0.0.1 --port <p> "
        f"--workers {WORKERS}` (uvicorn). service: `python manage.py serve` (gunicorn, "
        f"{bench.servers.service_model}, MEMBERSHIP_CACHE_TTL=3600, GitLab double, "
        "user Developer). "
        f"Both with {', '.join(f'{k}={v}' for k, v in COMMON_ENV.items())}.",
        f"- Client: Python requests with {connections} (except rows 1k, 7k, 7wk). The servers take "
        f"turns of {sizes.turn} calls (1 for log_batch, search_runs, transfers and page loads; "
        f"{sizes.bursts} bursts for 7), alternating which goes first.",
        "- Sizes: " + ", ".join(f"{f.name}={getattr(sizes, f.name):,}" for f in fields(Sizes)),
        "",
        markdown_table(rows),
        "p95 is the worst 5%: the 95th percentile of a time, the 5th of a throughput. "
        "service/bare is the ratio of the medians. Server CPU: user + system time of each "
        "server's process tree during its own turns, per operation (the database server's "
        "is not included); steadier than wall times on a shared machine. GitLab calls: those "
        "the service made during the workload, its set-up included.",
        "",
        *(f"- {note}" for note in bench.notes),
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, key: str, text: str) -> None:
    """Replace the section for `key` in RESULTS.md, or append it; the rest is kept."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end) + "\n?", re.DOTALL)
    if pattern.search(current):
        current = pattern.sub(lambda _: block, current)
    else:
        current = current.rstrip() + "\n\n" + block
    path.write_text(current)


# --- Main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--keep-alive", action="store_true", help="reuse connections (see the docstring)"
    )
    parser.add_argument("--only", help="workloads to run, e.g. 1,3 (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary directory")
    for size in fields(Sizes):
        parser.add_argument(f"--{size.name.replace('_', '-')}", type=int, dest=size.name)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {f.name: getattr(args, f.name) for f in fields(Sizes)}
    return args, replace(sizes, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C does, so the ExitStack below stops both servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    load_at_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="sharinghub-bench-"))
    selected = args.only.split(",") if args.only else list(WORKLOADS)
    with contextlib.ExitStack() as stack:
        if not args.keep_data:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        print(f"Starting both servers on {args.backend} in {workdir} ...", flush=True)
        servers = start_servers(workdir, args.backend, args.keep_alive, stack)
        try:
            print(f"Up after {time.perf_counter() - began:.0f} s; warming up ...", flush=True)
            bench = Bench(sizes, servers, workdir)
            warm_up(bench)
            print(f"Warm after {time.perf_counter() - began:.0f} s.", flush=True)
            print(TABLE_HEADER, flush=True)
            rows: list[Row] = []
            for number in selected:
                started = time.perf_counter()
                new_rows = WORKLOADS[number](bench)
                rows.extend(new_rows)
                print("\n".join(row.markdown() for row in new_rows), flush=True)
                print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
        except BaseException:
            for log in servers.logs:
                print(f"--- last lines of {log.name}:\n{log_tail(log)}", file=sys.stderr)
            raise
    text = report(
        args, sizes, bench, rows, time.perf_counter() - began, (load_at_start, os.getloadavg())
    )
    print("\n" + text)
    if not args.no_write:
        key = args.backend + ("-quick" if args.quick else "")
        write_section(args.results, key, text)
        print(f"Section {key!r} written to {args.results}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
