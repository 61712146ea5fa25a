"""The table: statistics, budgets and verdicts per row, and the section written to RESULTS.md."""

from __future__ import annotations

import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bench.servers import BARE, COMMON_ENV, POSTGRES, ROOT, SERVICE, WORKERS

if TYPE_CHECKING:
    import argparse

    from bench.harness import Bench, Sizes


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
# Budgets on the ratio of medians, also held against bare's better client mode (issue 25).
BEST_BUDGETS = ("max_ratio", "min_ratio")
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
    # Bare's median in its better client mode (fresh connections or keep-alive), and which.
    bare_best: tuple[float, str] | None = None

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
    def best_ratio(self) -> float | None:
        """Median service / bare's median in its better client mode, when paired."""
        if self.bare_best is None or not self.bare_best[0]:
            return None
        return statistics.median(self.service) / self.bare_best[0]

    def cpu_ms(self, name: str) -> float:
        """CPU per call of one side: its server's and its database server's."""
        database = getattr(self.samples, "database_ms_per_op", None) or {}
        return self.samples.cpu_ms_per_op[name] + database.get(name, 0.0)

    @property
    def cpu_ratio(self) -> float | None:
        """CPU per call, server + database, service / bare, when measured."""
        cpu = getattr(self.samples, "cpu_ms_per_op", None)
        return self.cpu_ms(SERVICE) / self.cpu_ms(BARE) if cpu and self.cpu_ms(BARE) else None

    def p95(self, values: list[float]) -> float:
        """The worst 5%: the 95th percentile of a time, the 5th of a throughput."""
        return percentile(values, 0.05 if self.higher_is_better else 0.95)

    def verdict(self) -> str:
        parts = [self.budget.verdict(self)] if self.budget else []
        if self.best_ratio is not None and self.budget and self.budget.kind in BEST_BUDGETS:
            at_most = self.budget.kind == "max_ratio"
            limit = self.budget.limit
            parts.append(ratio_verdict("vs bare's best ", self.best_ratio, limit, at_most=at_most))
        if self.cpu_ratio is not None:
            parts.append(ratio_verdict("CPU ", self.cpu_ratio, CPU_LIMIT, at_most=True))
        if self.hot_path:
            parts.append("0 GitLab calls: " + ("met" if self.gitlab_calls == 0 else "MISSED"))
        return "; ".join(parts) or "—"

    def cpu_cell(self) -> str:
        """CPU s per 1,000 calls (= ms per call), bare → service (service/bare): the server's,
        plus its database server's when that is another process (PostgreSQL)."""
        if self.cpu_ratio is None:
            return "—"
        return f"{self._side_cpu(BARE)} → {self._side_cpu(SERVICE)} ({self.cpu_ratio:.2f})"

    def _side_cpu(self, name: str) -> str:
        server = self.samples.cpu_ms_per_op[name]
        database = (getattr(self.samples, "database_ms_per_op", None) or {}).get(name, 0.0)
        return f"{fmt(server)} + {fmt(database)}" if database else fmt(server)

    def best_cell(self) -> str:
        if self.best_ratio is None:
            return "—"
        return f"{self.best_ratio:.2f} ({self.bare_best[1]}: {fmt(self.bare_best[0])})"

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
            self.best_cell(),
            self.cpu_cell(),
            calls,
            self.verdict(),
        ]
        return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| # | workload | unit | bare median | bare p95 | service median | service p95 "
    "| service/bare | service / bare at its best (its mode: median) "
    "| CPU ms/op (s per 1,000 ops), server + database, bare → service | GitLab calls "
    "| budget |\n"
    "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"
)


def against_bare_at_its_best(fresh: Row, kept: Row) -> None:
    """Give a pair of rows measured with fresh connections and with keep-alive ones bare's
    better median of the two, so that each is also compared with what bare does at its best
    (a single keep-alive client stalls bare uvicorn ~40 ms a call: its worst, not its best)."""
    modes = [(statistics.median(fresh.bare), "fresh"), (statistics.median(kept.bare), "keep-alive")]
    best = max(modes) if fresh.higher_is_better else min(modes)
    fresh.bare_best = kept.bare_best = best


def markdown_table(rows: list[Row]) -> str:
    return "\n".join([TABLE_HEADER, *(row.markdown() for row in rows)]) + "\n"


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


def report(
    args: argparse.Namespace,
    bench: Bench,
    rows: list[Row],
    seconds: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    """The section of RESULTS.md for this run: how it was made, its table and notes."""
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
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
        *setup_lines(args, bench.sizes, bench.servers.service_model),
        "",
        markdown_table(rows),
        "p95 is the worst 5%: the 95th percentile of a time, the 5th of a throughput. "
        "service/bare is the ratio of the medians; for rows measured both with fresh and with "
        "keep-alive connections (1/1k, 7/7k, 7w/7wk and their latencies), the next column "
        "divides by bare's better median of the two modes. CPU: user + system time of each "
        "server's process tree during its own turns, per operation, plus (PostgreSQL) that of "
        "the database backends connected to its own database (pg_stat_activity's pids, read "
        "with psutil); the budget is on the sum. Steadier than wall times on a shared machine. "
        "GitLab calls: those the service made during the workload, its set-up included.",
        "",
        *(f"- {note}" for note in bench.notes),
    ]
    return "\n".join(lines) + "\n"


def setup_lines(args: argparse.Namespace, sizes: Sizes, service_model: str) -> list[str]:
    """How the servers ran, how the client called them, and the sizes."""
    connections = "keep-alive connections" if args.keep_alive else "a fresh connection per request"
    return [
        f"- bare: `python -m mlflow server --backend-store-uri <{args.backend}> "
        "--artifacts-destination <dir> --serve-artifacts --host 127.0.0.1 --port <p> "
        f"--workers {WORKERS}` (uvicorn). service: `python manage.py serve` (gunicorn, "
        f"{service_model}, MEMBERSHIP_CACHE_TTL=3600, GitLab double, "
        "user Developer). "
        f"Both with {', '.join(f'{k}={v}' for k, v in COMMON_ENV.items())}.",
        f"- Client: Python requests with {connections} (except rows 1k, 7k, 7wk). The servers take "
        f"turns of {sizes.turn} calls (1 for log_batch, search_runs, transfers and page loads; "
        f"{sizes.bursts} bursts for 7), alternating which goes first.",
        "- Sizes: " + ", ".join(f"{f.name}={getattr(sizes, f.name):,}" for f in fields(sizes)),
    ]


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
