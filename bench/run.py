"""Benchmark SharingHub MLflow against a bare `mlflow server` on the same kind of backend.

Run from the repository root with the project's virtualenv:

    python bench/run.py --quick                   # small sizes, under a minute in all
    python bench/run.py --backend sqlite          # full sizes (spec of issue 7)
    python bench/run.py --backend postgresql      # PostgreSQL at 127.0.0.1:5432, user postgres

One run starts, side by side:

- bare: `python -m mlflow server` (uvicorn, `--serve-artifacts`, no auth), same MLflow;
- service: `python manage.py serve` (gunicorn) in front of the GitLab double of tests/,

with the same worker count, each on its own fresh database of the chosen kind. Both are
warmed, then every workload runs in alternating rounds (bare, service, then service, bare,
...) so that drift on a shared machine hits both alike. Times are taken client-side with
time.perf_counter around each call (or each transfer, page load or round of concurrent
calls). By default every request opens a fresh TCP connection (`Connection: close`), as the
service's gunicorn sync workers close every connection anyway; see `--keep-alive` and row
1k for what a keep-alive client (MLflow's own) sees.

Workloads: 1 log_metric loop, 2 log_batch of 1,000 metrics, 3 get_run on a big run,
4 search_runs over many runs, 5 search_experiments with few and many projects in the
database, 6 artifact upload and download (throughput and the server's peak RSS growth),
7 concurrent clients logging, 8 the UI's first page load. The GitLab double counts the
calls the service makes during each workload.

The Markdown table goes to stdout and into its own section of bench/RESULTS.md (one per
backend and size), which is replaced on every run. Both servers are stopped at the end,
also on failure, Ctrl-C or SIGTERM.
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
# tests.conftest.start_live_server runs gunicorn with this many workers; bare mlflow gets the same.
WORKERS = 2
# Other projects seeded for workload 5 get GitLab ids from here on (no clash with the double's).
OTHER_PROJECT_ID = 1_000_000
# Both servers: no telemetry (no network here) and no job runner (the service has none).
COMMON_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


# --- Sizes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much each workload does; every field is also a command-line option."""

    rounds: int = 4  # alternations bare/service per workload; the counts below are split over them
    metric_calls: int = 2000  # 1: log_metric calls, one client
    keepalive_calls: int = 200  # 1k: log_metric calls over one keep-alive connection
    batch_calls: int = 200  # 2: log_batch calls
    batch_size: int = 1000  # 2: metrics per log_batch call
    run_metric_values: int = 10_000  # 3: metric values in the run that get_run reads
    run_params: int = 100  # 3: params in that run
    get_run_calls: int = 400  # 3
    search_runs: int = 1000  # 4: runs in the searched experiment
    search_runs_calls: int = 40  # 4
    projects_small: int = 20  # 5: projects (workspaces) in the database, first
    projects_large: int = 2000  # 5: then
    experiments_per_project: int = 10  # 5
    search_experiments_calls: int = 200  # 5: per database size
    artifact_mb: int = 200  # 6
    artifact_transfers: int = 4  # 6: uploads (and as many downloads) per server
    clients: int = 8  # 7: concurrent clients
    calls_per_client: int = 250  # 7
    ui_loads: int = 20  # 8


QUICK = Sizes(
    rounds=2,
    metric_calls=200,
    keepalive_calls=20,
    batch_calls=10,
    run_metric_values=2000,
    get_run_calls=40,
    search_runs=100,
    search_runs_calls=6,
    projects_small=5,
    projects_large=100,
    search_experiments_calls=40,
    artifact_mb=20,
    artifact_transfers=2,
    calls_per_client=20,
    ui_loads=4,
)


def split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal counts, at least one each."""
    return [max(1, total // parts + (1 if i < total % parts else 0)) for i in range(parts)]


def now_ms() -> int:
    return int(time.time() * 1000)


# --- Statistics and the table -----------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Budget:
    """A target from issue 7: on the ratio service/bare, or on the service's own value."""

    kind: str  # "max_ratio", "min_ratio" or "max_value"
    limit: float

    def verdict(self, row: Row) -> str:
        if self.kind == "max_value":
            worst = max(row.service)
            ok = worst < self.limit
            return f"{'met' if ok else 'MISSED'} (max {fmt(worst)} < {fmt(self.limit)})"
        ratio = row.ratio
        if self.kind == "max_ratio":
            ok, sign, miss = ratio <= self.limit, "≤", ratio / self.limit - 1
        else:
            ok, sign, miss = ratio >= self.limit, "≥", 1 - ratio / self.limit
        if ok:
            return f"met ({ratio:.2f} {sign} {self.limit:.2f})"
        return f"MISSED by {miss:.0%} (needs {sign} {self.limit:.2f})"


@dataclass
class Row:
    number: str
    workload: str
    unit: str
    bare: list[float]
    service: list[float]
    gitlab_calls: int | None = None
    higher_is_better: bool = False
    budget: Budget | None = None
    hot_path: bool = False  # must make no GitLab call while the cache is fresh

    @property
    def ratio(self) -> float:
        return statistics.median(self.service) / statistics.median(self.bare)

    def p95(self, values: list[float]) -> float:
        """The worst 5%: the 95th percentile of a time, the 5th of a throughput."""
        return percentile(values, 0.05 if self.higher_is_better else 0.95)

    def verdict(self) -> str:
        parts = [self.budget.verdict(self)] if self.budget else []
        if self.hot_path:
            ok = self.gitlab_calls == 0
            parts.append("0 GitLab calls: " + ("met" if ok else "MISSED"))
        return "; ".join(parts) or "—"


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(rows: list[Row]) -> str:
    header = (
        "| # | workload | unit | bare median | bare p95 | service median | service p95 "
        "| service/bare | GitLab calls | budget |\n"
        "|---|---|---|--:|--:|--:|--:|--:|--:|---|\n"
    )
    lines = [
        f"| {row.number} | {row.workload} | {row.unit} "
        f"| {fmt(statistics.median(row.bare))} | {fmt(row.p95(row.bare))} "
        f"| {fmt(statistics.median(row.service))} | {fmt(row.p95(row.service))} "
        f"| {row.ratio:.2f} | {'—' if row.gitlab_calls is None else row.gitlab_calls} "
        f"| {row.verdict()} |"
        for row in rows
    ]
    return header + "\n".join(lines) + "\n"


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
        start = time.perf_counter()
        self.call(method, path, body, **kwargs)
        return time.perf_counter() - start

    def create_experiment(self, name: str) -> str:
        return self.call("POST", "api/2.0/mlflow/experiments/create", {"name": name})[
            "experiment_id"
        ]

    def create_run(self, experiment_id: str, session: requests.Session | None = None) -> dict:
        body = {"experiment_id": experiment_id, "start_time": now_ms()}
        return self.call("POST", "api/2.0/mlflow/runs/create", body, session=session)["run"][
            "info"
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).ok:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url} in {timeout} s:\n{log.read_text()[-3000:]}")


def start_bare(
    workdir: Path, backend_uri: str, stack: contextlib.ExitStack
) -> tuple[str, subprocess.Popen]:
    """Start `mlflow server` in its own process group; stopped when `stack` closes."""
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


@dataclass
class Servers:
    bare: Target
    service: Target
    gitlab: GitLabDouble
    service_uri: str  # the service's MLflow database, for seeding
    bare_uri: str  # bare mlflow's database
    describe: str  # the command lines, for RESULTS.md


def start_servers(
    workdir: Path, backend: str, keep_alive: bool, stack: contextlib.ExitStack
) -> Servers:
    """Both servers and the GitLab double, started in parallel; stopped when `stack` closes."""
    if backend == "postgresql":
        stamp = f"bench_{os.getpid()}_{int(time.time())}"
        stack.enter_context(postgres_databases([f"{stamp}_bare", f"{stamp}_service"]))
        bare_uri, service_uri = f"{POSTGRES}/{stamp}_bare", f"{POSTGRES}/{stamp}_service"
        service_env = {"DATABASE_URL": service_uri, "MLFLOW_BACKEND_STORE_URI": service_uri}
    else:
        bare_uri = f"sqlite:///{workdir / 'bare.sqlite3'}"
        service_uri = f"sqlite:///{workdir / 'service' / 'data' / 'mlflow.sqlite3'}"
        service_env = {"MLFLOW_BACKEND_STORE_URI": service_uri}

    gitlab = GitLabDouble().start()
    stack.callback(gitlab.stop)
    cast = make_cast(gitlab)

    bare_url, bare_process = start_bare(workdir, bare_uri, stack)
    (workdir / "service").mkdir()
    # The cache must stay fresh for the whole run: workloads must make no GitLab call.
    service_env |= {**COMMON_ENV, "MEMBERSHIP_CACHE_TTL": "3600"}
    live, process = start_live_server(workdir / "service", gitlab.url, **service_env)
    stack.callback(stop_process, process)
    wait_until_up(f"{bare_url}/health", bare_process, workdir / "bare.log")

    bare = Target(BARE, f"{bare_url}/", {}, bare_process.pid, keep_alive)
    service = Target(
        SERVICE,
        live.tracking_uri(cast.project.path),
        {"Authorization": f"Bearer {cast.dave.token}"},
        process.pid,
        keep_alive,
    )
    describe = (
        f"bare: `python -m mlflow server --backend-store-uri <{backend}> --artifacts-destination "
        f"<dir> --serve-artifacts --host 127.0.0.1 --port <p> --workers {WORKERS}` (uvicorn); "
        f"service: `python manage.py serve --workers {WORKERS}` (gunicorn sync workers, "
        "MEMBERSHIP_CACHE_TTL=3600, GitLab double); both with "
        + ", ".join(f"{k}={v}" for k, v in COMMON_ENV.items())
    )
    return Servers(bare, service, gitlab, service_uri, bare_uri, describe)


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

    def alternate(self, step: Step, rounds: int | None = None) -> dict[str, list[float]]:
        """Run `step(target, round)` for both targets, alternating who goes first."""
        samples: dict[str, list[float]] = {BARE: [], SERVICE: []}
        for round_ in range(rounds or self.sizes.rounds):
            order = self.targets if round_ % 2 == 0 else self.targets[::-1]
            for target in order:
                samples[target.name].extend(step(target, round_))
        return samples


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_mb(pids: list[int]) -> float:
    total_pages = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total_pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return total_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak:
    """The peak resident memory (MB) of a process tree while the `with` block runs."""

    def __init__(self, root_pid: int, interval: float = 0.01):
        self._pids = process_tree(root_pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = tree_rss_mb(self._pids)
        self.peak = self.start

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


# --- Warm-up ------------------------------------------------------------------------------------
def warm_up(bench: Bench) -> None:
    """Create each server's bench experiment and touch every code path once or twice."""
    warm_file = make_file(bench.workdir / "warm.bin", 1)
    for target in bench.targets:
        target.experiment_id = target.create_experiment("bench")
        run = target.create_run(target.experiment_id)
        for i in range(40):
            body = {"run_id": run["run_id"], "key": "warm", "value": i, "timestamp": now_ms()}
            target.call("POST", "api/2.0/mlflow/runs/log-metric", body | {"step": i})
        target.call("GET", "api/2.0/mlflow/runs/get", params={"run_id": run["run_id"]})
        target.call("POST", "api/2.0/mlflow/runs/search", {"experiment_ids": [run["experiment_id"]]})
        target.call("POST", "api/2.0/mlflow/experiments/search", {"max_results": 10})
        upload_download(target, run, warm_file, 1, "warm.bin")
        load_ui(target)


# --- Workloads ----------------------------------------------------------------------------------
def w1_log_metric(bench: Bench) -> list[Row]:
    """1. One client logs metrics one call at a time; 1k: the same over keep-alive."""

    def loop(calls: list[int], keep_alive: bool | None) -> Step:
        def step(target: Target, round_: int) -> list[float]:
            session = target.session(keep_alive)
            run_id = target.create_run(target.experiment_id)["run_id"]
            times = []
            for i in range(calls[round_]):
                body = {"run_id": run_id, "key": "loss", "value": 1 / (i + 1), "step": i}
                body["timestamp"] = now_ms()
                times.append(
                    target.timed_call("POST", "api/2.0/mlflow/runs/log-metric", body, session=session)
                    * 1000
                )
            return times

        return step

    sizes = bench.sizes
    before = bench.gitlab_calls()
    main = bench.alternate(loop(split(sizes.metric_calls, sizes.rounds), None))
    main_calls = bench.gitlab_calls() - before
    before = bench.gitlab_calls()
    kept = bench.alternate(loop(split(sizes.keepalive_calls, sizes.rounds), True))
    rows = [
        Row("1", f"log_metric loop ({sizes.metric_calls} calls, one client)", "ms/call",
            main[BARE], main[SERVICE], main_calls, budget=Budget("max_ratio", 1.10),
            hot_path=True),
        Row("1k", f"log_metric over one keep-alive connection ({sizes.keepalive_calls} calls; "
            "what MlflowClient does)", "ms/call", kept[BARE], kept[SERVICE],
            bench.gitlab_calls() - before),
    ]  # fmt: skip
    return rows


def w2_log_batch(bench: Bench) -> list[Row]:
    """2. log_batch calls of `batch_size` metrics (100 keys x batch_size/100 steps)."""
    sizes = bench.sizes
    calls = split(sizes.batch_calls, sizes.rounds)

    def step(target: Target, round_: int) -> list[float]:
        run_id = target.create_run(target.experiment_id)["run_id"]
        times = []
        for i in range(calls[round_]):
            timestamp = now_ms()
            metrics = [
                {"key": f"m{j % 100}", "value": j * 0.5, "timestamp": timestamp,
                 "step": i * (sizes.batch_size // 100 + 1) + j // 100}
                for j in range(sizes.batch_size)
            ]  # fmt: skip
            body = {"run_id": run_id, "metrics": metrics}
            times.append(target.timed_call("POST", "api/2.0/mlflow/runs/log-batch", body) * 1000)
        return times

    before = bench.gitlab_calls()
    samples = bench.alternate(step)
    return [
        Row("2", f"log_batch of {sizes.batch_size} metrics ({sizes.batch_calls} calls)",
            "ms/call", samples[BARE], samples[SERVICE], bench.gitlab_calls() - before,
            budget=Budget("max_ratio", 1.10), hot_path=True)
    ]  # fmt: skip


def fill_run(target: Target, run_id: str, metric_values: int, params: int) -> None:
    """Log `metric_values` values over 100 keys, and `params` params, into a run."""
    timestamp = now_ms()
    values = [
        {"key": f"metric_{i % 100}", "value": i * 0.1, "timestamp": timestamp, "step": i // 100}
        for i in range(metric_values)
    ]
    for start in range(0, len(values), 1000):
        target.call(
            "POST", "api/2.0/mlflow/runs/log-batch",
            {"run_id": run_id, "metrics": values[start : start + 1000]},
        )  # fmt: skip
    for start in range(0, params, 100):
        chunk = [{"key": f"param_{i}", "value": f"value-{i}"} for i in range(start, min(params, start + 100))]  # fmt: skip
        target.call("POST", "api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "params": chunk})


def w3_get_run(bench: Bench) -> list[Row]:
    """3. get_run on a run holding `run_metric_values` metric values and `run_params` params."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    run_ids = {}
    for target in bench.targets:
        run_ids[target.name] = target.create_run(target.experiment_id)["run_id"]
        fill_run(target, run_ids[target.name], sizes.run_metric_values, sizes.run_params)
    calls = split(sizes.get_run_calls, sizes.rounds)

    def step(target: Target, round_: int) -> list[float]:
        params = {"run_id": run_ids[target.name]}
        return [
            target.timed_call("GET", "api/2.0/mlflow/runs/get", params=params) * 1000
            for _ in range(calls[round_])
        ]

    samples = bench.alternate(step)
    return [
        Row("3", f"get_run ({sizes.run_metric_values:,} metric values, {sizes.run_params} "
            f"params; {sizes.get_run_calls} calls)", "ms/call", samples[BARE], samples[SERVICE],
            bench.gitlab_calls() - before, budget=Budget("max_ratio", 1.10), hot_path=True)
    ]  # fmt: skip


def create_runs(target: Target, experiment_id: str, count: int, threads: int = 4) -> None:
    """`count` runs with 5 params, 5 metrics and a tag each, created over the REST API."""

    def create(chunk: range) -> None:
        session = target.session()
        for i in chunk:
            run_id = target.create_run(experiment_id, session=session)["run_id"]
            body = {
                "run_id": run_id,
                "params": [{"key": f"p{k}", "value": str(i * k)} for k in range(5)],
                "metrics": [{"key": f"m{k}", "value": i / (k + 1), "timestamp": now_ms(),
                             "step": 0} for k in range(5)],
                "tags": [{"key": "team", "value": f"t{i % 7}"}],
            }  # fmt: skip
            target.call("POST", "api/2.0/mlflow/runs/log-batch", body, session=session)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, [range(k, count, threads) for k in range(threads)]))


def w4_search_runs(bench: Bench) -> list[Row]:
    """4. search_runs returning all runs of an experiment holding `search_runs` runs."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    experiments = {}
    for target in bench.targets:
        experiments[target.name] = target.create_experiment("search-runs")
        create_runs(target, experiments[target.name], sizes.search_runs)
    calls = split(sizes.search_runs_calls, sizes.rounds)

    def step(target: Target, round_: int) -> list[float]:
        body = {"experiment_ids": [experiments[target.name]], "max_results": sizes.search_runs}
        times = []
        for _ in range(calls[round_]):
            start = time.perf_counter()
            found = target.call("POST", "api/2.0/mlflow/runs/search", body)
            times.append((time.perf_counter() - start) * 1000)
            assert len(found["runs"]) == sizes.search_runs, len(found["runs"])
        return times

    samples = bench.alternate(step)
    return [
        Row("4", f"search_runs over {sizes.search_runs:,} runs (all returned; "
            f"{sizes.search_runs_calls} calls)", "ms/call", samples[BARE], samples[SERVICE],
            bench.gitlab_calls() - before, budget=Budget("max_ratio", 1.10))
    ]  # fmt: skip


def seed_projects(bench: Bench, first: int, last: int) -> None:
    """Projects first..last-1 with `experiments_per_project` experiments each, straight in SQL.

    The service gets one workspace per project (as if each had been used once); bare MLflow,
    which has one namespace, gets the same number of experiments in it.
    """
    per_project = bench.sizes.experiments_per_project
    created = now_ms()
    for uri, workspaced in ((bench.servers.service_uri, True), (bench.servers.bare_uri, False)):
        engine = sa.create_engine(uri)
        tables = sa.MetaData()
        tables.reflect(engine, only=["experiments", "workspaces"])
        experiments, workspaces = tables.tables["experiments"], tables.tables["workspaces"]
        rows = []
        for k in range(first, last):
            workspace = f"p-{OTHER_PROJECT_ID + k}" if workspaced else "default"
            for j in range(per_project):
                name = f"experiment-{j}" if workspaced else f"project-{k}-experiment-{j}"
                rows.append({"name": name, "workspace": workspace, "lifecycle_stage": "active",
                             "creation_time": created - k, "last_update_time": created - k})  # fmt: skip
        prefix = "mlflow-artifacts:/workspaces/' || workspace || '/" if workspaced else "mlflow-artifacts:/"
        with engine.begin() as connection:
            if workspaced:
                connection.execute(
                    workspaces.insert(),
                    [{"name": f"p-{OTHER_PROJECT_ID + k}", "description": f"seeded/{k}"}
                     for k in range(first, last)],
                )  # fmt: skip
            connection.execute(experiments.insert(), rows)
            connection.execute(
                sa.text(
                    f"UPDATE experiments SET artifact_location = '{prefix}' || experiment_id "
                    "WHERE artifact_location IS NULL"
                )
            )
        engine.dispose()


def w5_search_experiments(bench: Bench) -> list[Row]:
    """5. search_experiments in one project, with few then many projects in the database."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    for target in bench.targets:
        for j in range(sizes.experiments_per_project):
            target.create_experiment(f"project-experiment-{j}")
    calls = split(sizes.search_experiments_calls, sizes.rounds)
    page = sizes.experiments_per_project

    def step(target: Target, round_: int) -> list[float]:
        body = {"max_results": page}
        times = []
        for _ in range(calls[round_]):
            start = time.perf_counter()
            found = target.call("POST", "api/2.0/mlflow/experiments/search", body)
            times.append((time.perf_counter() - start) * 1000)
            assert len(found["experiments"]) == page, len(found["experiments"])
        return times

    rows = []
    seeded = 0
    for letter, projects in (("a", sizes.projects_small), ("b", sizes.projects_large)):
        seed_projects(bench, seeded, projects)
        seeded = projects
        samples = bench.alternate(step)
        rows.append(
            Row(f"5{letter}", f"search_experiments, page of {page}, {projects:,} projects x "
                f"{sizes.experiments_per_project} experiments in the database "
                f"({sizes.search_experiments_calls} calls)", "ms/call", samples[BARE],
                samples[SERVICE], bench.gitlab_calls() - before,
                budget=Budget("max_ratio", 1.10))
        )  # fmt: skip
        before = bench.gitlab_calls()
    small, large = rows
    growth = {
        name: statistics.median(getattr(large, name)) / statistics.median(getattr(small, name))
        for name in (BARE, SERVICE)
    }
    bench.notes.append(
        f"search_experiments cost at {sizes.projects_large:,} vs {sizes.projects_small:,} "
        f"projects (median 5b / 5a): service x{growth[SERVICE]:.2f}, bare x{growth[BARE]:.2f} "
        "(bare has them all in its one namespace)."
    )
    return rows


def upload_download(
    target: Target, run: dict, source: Path, size_mb: int, name: str
) -> tuple[float, float, float, float]:
    """PUT then GET one artifact; returns (upload s, download s, upload RSS MB, download RSS MB).

    RSS is the server process tree's peak during the transfer minus its value just before.
    """
    artifact_path = run["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")
    url = f"{target.base}api/2.0/mlflow-artifacts/artifacts/{artifact_path}/{name}"
    session = target.session()
    with RssPeak(target.pid) as upload_rss, source.open("rb") as stream:
        start = time.perf_counter()
        response = session.put(url, data=stream, timeout=600)
        upload = time.perf_counter() - start
    if not response.ok:
        raise RuntimeError(f"{target.name}: upload answered {response.status_code}: {response.text[:300]}")  # fmt: skip
    received = 0
    with RssPeak(target.pid) as download_rss:
        start = time.perf_counter()
        with session.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                received += len(chunk)
        download = time.perf_counter() - start
    if received != size_mb * 2**20:
        raise RuntimeError(f"{target.name}: downloaded {received} bytes, expected {size_mb} MB")
    return (
        upload,
        download,
        upload_rss.peak - upload_rss.start,
        download_rss.peak - download_rss.start,
    )


def make_file(path: Path, size_mb: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(2**20))
    return path


def w6_artifacts(bench: Bench) -> list[Row]:
    """6. Upload then download a big artifact: throughput and the server's peak RSS growth."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    source = make_file(bench.workdir / "artifact.bin", sizes.artifact_mb)
    runs = {target.name: target.create_run(target.experiment_id) for target in bench.targets}
    rounds = min(sizes.rounds, sizes.artifact_transfers)
    transfers = split(sizes.artifact_transfers, rounds)
    results: dict[str, list[tuple[float, float, float, float]]] = {BARE: [], SERVICE: []}

    def step(target: Target, round_: int) -> list[float]:
        for _ in range(transfers[round_]):
            measured = upload_download(
                target, runs[target.name], source, sizes.artifact_mb, "model.bin"
            )
            results[target.name].append(measured)
        return []

    bench.alternate(step, rounds)
    source.unlink()

    def column(index: int, throughput: bool) -> dict[str, list[float]]:
        return {
            name: [sizes.artifact_mb / r[index] if throughput else r[index] for r in results[name]]
            for name in (BARE, SERVICE)
        }

    calls = bench.gitlab_calls() - before
    mb = sizes.artifact_mb
    n = sizes.artifact_transfers
    up, down = column(0, True), column(1, True)
    up_rss, down_rss = column(2, False), column(3, False)
    return [
        Row("6a", f"artifact upload, {mb} MB ({n} transfers)", "MB/s", up[BARE], up[SERVICE],
            calls, higher_is_better=True, budget=Budget("min_ratio", 0.90)),
        Row("6b", f"artifact download, {mb} MB ({n} transfers)", "MB/s", down[BARE],
            down[SERVICE], None, higher_is_better=True, budget=Budget("min_ratio", 0.90)),
        Row("6c", f"server RSS growth during a {mb} MB upload", "MB", up_rss[BARE],
            up_rss[SERVICE], None, budget=Budget("max_value", 50 * mb / 200)),
        Row("6d", f"server RSS growth during a {mb} MB download", "MB", down_rss[BARE],
            down_rss[SERVICE], None, budget=Budget("max_value", 50 * mb / 200)),
    ]  # fmt: skip


def w7_concurrent(bench: Bench) -> list[Row]:
    """7. `clients` threads log metrics at once, each to its own run; throughput per round."""
    sizes = bench.sizes
    per_client = split(sizes.calls_per_client, sizes.rounds)
    latencies: dict[str, list[float]] = {BARE: [], SERVICE: []}

    def step(target: Target, round_: int) -> list[float]:
        run_ids = [target.create_run(target.experiment_id)["run_id"] for _ in range(sizes.clients)]
        barrier = threading.Barrier(sizes.clients + 1)
        times: list[list[float]] = [[] for _ in range(sizes.clients)]
        errors: list[BaseException] = []

        def client(index: int) -> None:
            session = target.session()
            barrier.wait()
            try:
                for i in range(per_client[round_]):
                    body = {"run_id": run_ids[index], "key": "loss", "value": i,
                            "timestamp": now_ms(), "step": i}  # fmt: skip
                    times[index].append(
                        target.timed_call("POST", "api/2.0/mlflow/runs/log-metric", body,
                                          session=session) * 1000
                    )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - re-raised in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(sizes.clients)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        for client_times in times:
            latencies[target.name].extend(client_times)
        return [sizes.clients * per_client[round_] / elapsed]

    before = bench.gitlab_calls()
    throughput = bench.alternate(step)
    return [
        Row("7", f"{sizes.clients} concurrent clients logging ({sizes.calls_per_client} "
            "log_metric calls each)", "calls/s", throughput[BARE], throughput[SERVICE],
            bench.gitlab_calls() - before, higher_is_better=True,
            budget=Budget("min_ratio", 0.90)),
        Row("7b", f"latency of one call under {sizes.clients} concurrent clients", "ms/call",
            latencies[BARE], latencies[SERVICE]),
    ]  # fmt: skip


ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def load_ui(target: Target) -> tuple[float, int, int]:
    """Index, the assets it references and the first ajax calls, with a fresh client.

    Returns (seconds, number of requests, bytes received).
    """
    session = target.session()
    count = size = 0

    def get(url: str, **kwargs) -> requests.Response:
        nonlocal count, size
        response = session.get(url, timeout=60, **kwargs)
        response.raise_for_status()
        count += 1
        size += len(response.content)
        return response

    start = time.perf_counter()
    index = get(target.base).text
    for asset in ASSET.findall(index):
        if not asset.startswith(("http:", "https:", "//", "data:")):
            get(urljoin(target.base, asset))
    get(target.base + "ajax-api/3.0/mlflow/server-info")
    get(
        target.base + "ajax-api/2.0/mlflow/experiments/search",
        params={"max_results": 25, "order_by": "last_update_time DESC"},
    )
    return time.perf_counter() - start, count, size


def w8_ui(bench: Bench) -> list[Row]:
    """8. The UI's first page load."""
    sizes = bench.sizes
    loads = split(sizes.ui_loads, sizes.rounds)
    shape: dict[str, tuple[int, int]] = {}

    def step(target: Target, round_: int) -> list[float]:
        times = []
        for _ in range(loads[round_]):
            elapsed, count, size = load_ui(target)
            times.append(elapsed * 1000)
            shape[target.name] = (count, size)
        return times

    before = bench.gitlab_calls()
    samples = bench.alternate(step)
    count, size = shape[SERVICE]
    return [
        Row("8", f"UI first page load ({count} requests, {size / 2**20:.1f} MB: index, its "
            f"assets, server-info, experiments/search; {sizes.ui_loads} loads)", "ms/load",
            samples[BARE], samples[SERVICE], bench.gitlab_calls() - before)
    ]  # fmt: skip


WORKLOADS: list[Callable[[Bench], list[Row]]] = [
    w1_log_metric,
    w2_log_batch,
    w3_get_run,
    w4_search_runs,
    w5_search_experiments,
    w6_artifacts,
    w7_concurrent,
    w8_ui,
]


# --- Report -----------------------------------------------------------------------------------
def machine_description(backend: str) -> list[str]:
    meminfo = Path("/proc/meminfo").read_text()
    memory_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    lines = [
        f"nproc {len(os.sched_getaffinity(0))} ({cpu.group(1).strip() if cpu else 'unknown CPU'}),"
        f" memory {memory_kb / 2**20:.1f} GiB, {platform.platform()}",
        f"Python {platform.python_version()}, MLflow {version('mlflow')}, Django "
        f"{version('django')}, gunicorn {version('gunicorn')}, uvicorn {version('uvicorn')}, "
        f"SQLAlchemy {version('sqlalchemy')}",
    ]
    if backend == "postgresql":
        engine = sa.create_engine(f"{POSTGRES}/postgres")
        with engine.connect() as connection:
            lines.append(connection.execute(sa.text("SELECT version()")).scalar().split(",")[0])
        engine.dispose()
    return lines


def write_section(path: Path, key: str, text: str) -> None:
    """Replace (or append) the section for `key` in RESULTS.md, keeping everything else."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(current):
        current = pattern.sub(lambda _: block, current)
    else:
        current = current.rstrip() + "\n\n" + block
    path.write_text(current)


def report(
    args: argparse.Namespace,
    sizes: Sizes,
    rows: list[Row],
    bench: Bench,
    wall: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
    command = "python " + shlex.join(sys.argv)
    changed = {f.name: getattr(sizes, f.name) for f in fields(Sizes)}
    machine = machine_description(args.backend)
    client = (
        "keep-alive connections" if args.keep_alive else "a fresh TCP connection per request"
    )
    lines = [
        f"## {title}{' (quick)' if args.quick else ''}",
        "",
        f"- Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`, {wall:.0f} s in all.",
        f"- Machine: {machine[0]}; {'; '.join(machine[1:])}.",
        f"- Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load[0])}, "
        f"at end {', '.join(f'{x:.2f}' for x in load[1])} (other jobs may share the 2 cores).",
        f"- Servers: {bench.servers.describe}.",
        f"- Client: Python requests, {client} (`Connection: close`) unless said otherwise; "
        f"rounds alternate bare/service ({sizes.rounds} rounds, ABBA order).",
        "- Sizes: " + ", ".join(f"{k}={v:,}" for k, v in changed.items()) + ".",
        "",
        markdown_table(rows),
        "p95 is the worst 5%: the 95th percentile of a time, the 5th of a throughput. "
        "service/bare is the ratio of medians. GitLab calls: made by the service during the "
        "workload, its set-up included.",
        "",
        *[f"- {note}" for note in bench.notes],
    ]
    return "\n".join(lines) + "\n"


# --- Main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="reuse connections (bare uvicorn with --workers > 1 then stalls ~40 ms a call)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--only", help="comma-separated workload numbers to run, e.g. 1,3 (default: all)"
    )
    for size in fields(Sizes):
        parser.add_argument(f"--{size.name.replace('_', '-')}", type=int, dest=size.name)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {f.name: getattr(args, f.name) for f in fields(Sizes)}
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    return args, sizes


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks below stop both servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    load_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="sharinghub-bench-"))
    selected = set(args.only.split(",")) if args.only else None
    with contextlib.ExitStack() as stack:
        if not args.keep_data:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        print(f"Starting bare mlflow and the service ({args.backend}) in {workdir} ...", flush=True)
        servers = start_servers(workdir, args.backend, args.keep_alive, stack)
        print(f"Both up after {time.perf_counter() - began:.1f} s; warming up ...", flush=True)
        bench = Bench(sizes, servers, workdir)
        warm_up(bench)
        rows: list[Row] = []
        for workload in WORKLOADS:
            number = workload.__name__[1]
            if selected and number not in selected:
                continue
            started = time.perf_counter()
            new_rows = workload(bench)
            rows.extend(new_rows)
            print(f"  {workload.__doc__.splitlines()[0]}  [{time.perf_counter() - started:.1f} s]")
            print(markdown_table(new_rows).split("\n", 2)[2], end="", flush=True)
    wall = time.perf_counter() - began
    text = report(args, sizes, rows, bench, wall, (load_start, os.getloadavg()))
    print()
    print(text)
    if not args.no_write:
        key = args.backend + ("-quick" if args.quick else "")
        write_section(args.results, key, text)
        print(f"Written to {args.results} (section {key}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
