"""The workloads (1 to 8), each run on both servers in alternating turns, and their set-up."""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import sqlalchemy as sa

from bench.harness import Bench, Step, turns
from bench.report import (
    AS_FAST,
    AS_MUCH,
    AT_LEAST_BARE,
    P95_NO_WORSE,
    Budget,
    Row,
    against_bare_at_its_best,
)
from bench.servers import API, BARE, SERVICE, RssPeak, Target, now_ms

# Projects seeded for workload 5 get GitLab ids from here on, far from the double's own.
OTHER_PROJECT_ID = 1_000_000
LOG_METRIC = API + "runs/log-metric"
LOG_BATCH = API + "runs/log-batch"


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
    workspaces = [f"p-{OTHER_PROJECT_ID + k}" for k in range(first, last)]
    created = now_ms()
    for uri, per_workspace in ((bench.servers.service_uri, True), (bench.servers.bare_uri, False)):
        experiments = [
            {
                "name": f"experiment-{j}" if per_workspace else f"project-{k}-experiment-{j}",
                "workspace": workspaces[k - first] if per_workspace else "default",
                "lifecycle_stage": "active",
                "creation_time": created - k,
                "last_update_time": created - k,
            }
            for k in range(first, last)
            for j in range(bench.sizes.experiments_per_project)
        ]
        insert_experiments(uri, experiments, workspaces if per_workspace else [])


def insert_experiments(uri: str, experiments: list[dict], workspaces: list[str]) -> None:
    """Insert these experiments (and `workspaces`, when the service's) into MLflow's tables,
    each with the artifact location MLflow would have given it."""
    engine = sa.create_engine(uri)
    tables = sa.MetaData()
    tables.reflect(engine, only=["experiments", "workspaces"])
    root = "mlflow-artifacts:/"
    if workspaces:
        root += "workspaces/' || workspace || '/"
    with engine.begin() as connection:
        if workspaces:
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
def metric_loop(bench: Bench, keep_alive: bool | None) -> Step:
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
            times.append(target.timed_call("POST", LOG_METRIC, body, session=clients[target.name]))
        return times

    return step


def w1_log_metric(bench: Bench) -> list[Row]:
    """1. One client logs a metric per call; 1k: the same over one keep-alive connection."""
    sizes = bench.sizes
    before = bench.gitlab_calls()
    fresh = bench.alternate(turns(sizes.metric_calls, sizes.turn), metric_loop(bench, None))
    fresh_calls = bench.gitlab_calls() - before
    kept = bench.alternate(turns(sizes.keepalive_calls, sizes.turn), metric_loop(bench, True))
    rows = [
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
            AS_FAST,
        ),
    ]
    against_bare_at_its_best(*rows)
    return rows


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

    step = search_experiments_step(page)
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
    note_growth(bench, *rows)
    return rows


def search_experiments_step(page: int) -> Step:
    """A step searching the first `page` experiments, which must all be found."""

    def step(target: Target, count: int) -> list[float]:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            found = target.call("POST", API + "experiments/search", {"max_results": page})
            times.append((time.perf_counter() - start) * 1000)
            if len(found["experiments"]) != page:
                raise RuntimeError(f"{target.name}: found {len(found['experiments'])} experiments")
        return times

    return step


def note_growth(bench: Bench, small: Row, large: Row) -> None:
    """Note how much slower search_experiments got with many projects, on each server."""
    sizes, median = bench.sizes, statistics.median
    growth = {n: median(large.samples[n]) / median(small.samples[n]) for n in (BARE, SERVICE)}
    bench.notes.append(
        f"search_experiments at {sizes.projects_large:,} vs {sizes.projects_small:,} projects "
        f"(median 5b / 5a): service x{growth[SERVICE]:.2f}, bare x{growth[BARE]:.2f} (bare "
        "keeps every project's experiments in its one namespace)."
    )


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
        elapsed, times = burst(target, run_ids[target.name], per_client, crowd.keep_alive)
        latencies[target.name].extend(times)
        return [crowd.clients * per_client / elapsed]

    return step


def burst(
    target: Target, run_ids: list[str], per_client: int, keep_alive: bool
) -> tuple[float, list[float]]:
    """One client thread per run, released together, each logging `per_client` metrics over
    its own session. Returns the seconds from release to the last one's end, and every call's
    latency (ms)."""
    barrier = threading.Barrier(len(run_ids) + 1)
    times: list[list[float]] = [[] for _ in run_ids]
    errors: list[Exception] = []

    def client(index: int) -> None:
        session = target.session(keep_alive)
        barrier.wait()
        try:
            for i in range(per_client):
                body = {"run_id": run_ids[index], "key": "loss", "value": i, "step": i}
                body["timestamp"] = now_ms()
                times[index].append(target.timed_call("POST", LOG_METRIC, body, session=session))
        except Exception as error:  # noqa: BLE001 - raised again in the main thread
            errors.append(error)
        finally:
            session.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(run_ids))]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed, [t for client_times in times for t in client_times]


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
    rows = [concurrent_rows(bench, crowd) for crowd in crowds]
    # Each crowd's throughput and latency rows, against the other mode's (7 with 7k...).
    for fresh, kept in ((rows[0], rows[1]), (rows[2], rows[3])):
        for fresh_row, kept_row in zip(fresh, kept, strict=True):
            against_bare_at_its_best(fresh_row, kept_row)
    return [row for crowd_rows in rows for row in crowd_rows]


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
