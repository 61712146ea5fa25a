"""The bench's sizes, and the Bench that gives both servers alternating turns and reads the
CPU time each server's process tree spends in its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import (
    BARE,
    SERVICE,
    Servers,
    Target,
    database_cpu_seconds,
    tree_cpu_seconds,
)


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


# --- Measuring --------------------------------------------------------------------------------
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
        turn (bare service, service bare...). Each server's CPU time (its process tree's) and
        its database's (the PostgreSQL backends it is connected to) are read around its own
        turns only."""
        samples = Samples({BARE: [], SERVICE: []})
        cpu = dict.fromkeys(samples, 0.0)
        database = dict.fromkeys(samples, 0.0)
        for index, count in enumerate(schedule):
            order = self.targets if index % 2 == 0 else self.targets[::-1]
            for target in order:
                started = tree_cpu_seconds(target.pid)
                backends = database_cpu_seconds(target.database)
                samples[target.name].extend(step(target, count))
                cpu[target.name] += tree_cpu_seconds(target.pid) - started
                database[target.name] += sum(
                    seconds - backends.get(pid, 0.0)
                    for pid, seconds in database_cpu_seconds(target.database).items()
                )
        operations = sum(schedule) * calls_per_unit
        samples.cpu_ms_per_op = {name: 1000 * seconds / operations for name, seconds in cpu.items()}
        samples.database_ms_per_op = {
            name: 1000 * seconds / operations for name, seconds in database.items()
        }
        return samples


class Samples(dict):
    """Samples per server, and the CPU time each operation cost (ms), when measured: the
    server's, and its database server's (0 for SQLite, whose work is in the server's)."""

    cpu_ms_per_op: dict[str, float] | None = None
    database_ms_per_op: dict[str, float] | None = None
