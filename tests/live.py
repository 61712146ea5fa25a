"""Live gunicorn servers for the tests that need a real one (streaming, chunked bodies,
gunicorn's own refusals, worker kills, replicas, S3, the stock client, the browser).

Each server stops deterministically: SIGTERM, `GRACEFUL_TIMEOUT` seconds for requests in
flight (short here: a test server has none worth waiting for), then SIGKILL.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests import testenv, warm_processes

ROOT = Path(__file__).resolve().parent.parent
# A test server's graceful shutdown (GRACEFUL_TIMEOUT): `stop` waits this long, plus a margin
# for a loaded machine, and then kills.
GRACEFUL_TIMEOUT = 3
STOP_MARGIN = 10
# What an operator's command may take here before the test fails (LiveServer.manage).
COMMAND_TIMEOUT = 300
# What `manage.py upgrade` writes into a DATA_DIR on SQLite (sharinghub_mlflow/settings.py).
SQLITE_FILES = ("django.sqlite3", "mlflow.sqlite3")
# The settings `serve` turns into gunicorn's arguments (sharinghub_mlflow/settings.py).
SERVE_SETTINGS = {"BIND", "WORKERS", "THREADS", "GUNICORN_TIMEOUT", "GRACEFUL_TIMEOUT",
                  "KEEPALIVE"}  # fmt: skip


# Ports for servers the tests start: below Linux's ephemeral range (32768-60999), where the
# kernel never hands one out to a client socket or a bind to port 0, and a block of its own for
# each pytest-xdist worker (PYTEST_XDIST_WORKER=gw<n>) of each half of `make test` (the halves
# run side by side, tests/testenv.py), so that two workers never pick the same port between
# one's check and its server's bind.
PORTS_PER_WORKER = 400
WORKERS_PER_HALF = 25
FIRST_PORT = 12000
EPHEMERAL_PORTS_START = 32768
_next_port = itertools.count()


def free_port() -> int:
    """A port of this worker's block that nothing listens on now (checked by binding it)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    if worker >= WORKERS_PER_HALF:
        raise RuntimeError(f"worker gw{worker}: too many workers for the test ports (make test)")
    first = FIRST_PORT + (testenv.HALF * WORKERS_PER_HALF + worker) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = first + next(_next_port) % PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or still closing (TIME_WAIT)
                continue
        return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


def wait_until(condition, what: str, limit: float = 120) -> None:
    """Poll `condition` until it holds; fail (rather than hang) once `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting, after {limit}s, for {what}")
        time.sleep(0.05)


def gunicorn_workers(master: int) -> set[int]:
    """The process ids of a gunicorn master's workers (Linux: its children)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


# A server's gunicorn master: forked by tests/warm_processes.py, or `manage.py serve` (which
# execs gunicorn) as a child of this process.
Process = subprocess.Popen | warm_processes.ForkedProcess


def stop(process: Process, grace: float = GRACEFUL_TIMEOUT) -> None:
    """Stop a server (or any child process) for sure: SIGTERM, wait `grace` seconds and a
    margin, then SIGKILL. A loaded machine makes a shutdown slow, never a test fail."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace + STOP_MARGIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_migrated: dict[str, object] = {}


def migrated_template() -> dict[str, object]:
    """Databases migrated once per run of pytest (`manage.py upgrade`), which each new server
    starts from a copy of, so that it finds nothing to migrate: on SQLite the files of a
    template DATA_DIR, on PostgreSQL two template databases; and the admin's static files,
    collected once (`manage.py collectstatic`) for every server started without `serve`. The
    first worker of the run to need them makes them; the others wait for it."""
    if not _migrated:
        directory = testenv.RUN_DIRECTORY / "template"
        directory.mkdir(exist_ok=True)
        made = directory / "template.json"
        with (directory / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not made.exists():
                made.write_text(json.dumps(make_template(directory / "data")))
        template = json.loads(made.read_text())
        data_dir = Path(template["data_dir"])
        _migrated.update(data_dir=data_dir, databases=template["databases"],
                         static=data_dir / "static")  # fmt: skip
    return _migrated


def make_template(data_dir: Path) -> dict[str, object]:
    """Migrated databases and collected static files in `data_dir` (and on PostgreSQL, new
    databases); where they are."""
    data_dir.mkdir(parents=True, exist_ok=True)
    databases = testenv.database_env("template")
    env = {**os.environ, "DATA_DIR": str(data_dir), **databases,
           "DJANGO_SETTINGS_MODULE": "sharinghub_mlflow.settings"}  # fmt: skip
    for command in (["upgrade"], ["collectstatic", "--noinput", "--verbosity", "0"]):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return {"data_dir": str(data_dir), "databases": databases}


def fresh_databases(data_dir: Path) -> dict[str, str]:
    """A new server's databases, already migrated: SQLite files copied into its DATA_DIR, or
    (TEST_DATABASE=postgresql) new databases made from the templates; their settings."""
    template = migrated_template()
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in SQLITE_FILES:
        if (template["data_dir"] / name).exists():
            shutil.copyfile(template["data_dir"] / name, data_dir / name)
    return testenv.database_env(templates=template["databases"])


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # the server's, for its manage.py commands
    process: Process | None = None  # gunicorn's master
    command_runner: subprocess.Popen | None = None  # tests/forked_commands.py, once needed
    commands_run: int = 0

    def tracking_uri(self, path: str) -> str:
        return f"{self.url}/mlflow/{path}/tracking/"

    def session(self) -> requests.Session:
        return requests.Session()

    def manage(self, *arguments: str, **environ: str) -> str:
        """Run a management command against this server's databases and storage, in a process
        of its own (tests/forked_commands.py), with `environ` for what the command reads from
        the environment as it runs (createsuperuser's password; the settings are the
        server's); its stdout."""
        self.commands_run += 1
        out, err = (self.log.with_name(f"command-{self.commands_run}.{s}") for s in ("out", "err"))
        runner = self.started_command_runner()
        request = {"argv": arguments, "environ": environ, "stdout": str(out), "stderr": str(err)}
        runner.stdin.write(json.dumps(request) + "\n")
        runner.stdin.flush()
        answered = select.select([runner.stdout], [], [], COMMAND_TIMEOUT)[0]
        answer = runner.stdout.readline() if answered else ""
        if not answer:  # a command that hangs, or a runner gone: the next one starts afresh
            stop(runner, grace=0)
            self.command_runner = None
        assert answer, (arguments, f"no answer: {self.log.with_name('commands.log')}", err)
        stdout, stderr = out.read_text(), err.read_text()
        assert json.loads(answer)["returncode"] == 0, (arguments, stdout, stderr[-3000:])
        return stdout

    def started_command_runner(self) -> subprocess.Popen:
        if self.command_runner is None:
            self.command_runner = subprocess.Popen(
                [sys.executable, "-m", "tests.forked_commands", str(self.process.pid)],
                cwd=ROOT, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.log.with_name("commands.log").open("ab"), text=True,
            )  # fmt: skip
        return self.command_runner


def start_live_server(
    tmp: Path, gitlab_url: str, *, workers: int = 1, serve: bool = False, **extra_env: str
) -> tuple[LiveServer, Process]:
    """A gunicorn server of its own: its DATA_DIR under `tmp`, and with TEST_DATABASE=postgresql
    fresh databases (tests/testenv.py), unless `extra_env` names them: migrated ones
    (`fresh_databases`, `testenv.database_env` from the template), or empty ones with `serve`,
    which migrates them. Stop it with `stop`.

    With `serve`, started as an operator starts it
    (`manage.py serve`: its checks, migrations, static files and printed configuration, then
    gunicorn); otherwise gunicorn is forked at once from a warm process (tests/warm_processes.py)
    with the arguments `serve` gives it, from migrated databases and static files collected
    once (`migrated_template`): `serve` imports MLflow once more than gunicorn's worker does,
    and each of these imports costs seconds of CPU per server. One worker unless the test is
    about several."""
    own_databases = bool({"DATABASE_URL", "MLFLOW_BACKEND_STORE_URI"} & extra_env.keys())
    if not serve and SERVE_SETTINGS & extra_env.keys():
        raise ValueError(f"{sorted(SERVE_SETTINGS & extra_env.keys())} are `serve`'s to apply: "
                         "start this server with serve=True")  # fmt: skip
    data_dir, log, bind = tmp / "data", tmp / "server.log", f"127.0.0.1:{free_port()}"
    env = server_environment(data_dir, gitlab_url, fresh=not own_databases) | extra_env
    if serve:
        argv = [sys.executable, "manage.py", "serve", "--bind", bind, "--workers", str(workers)]
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
    else:
        environment = env | prepared_as_serve_does(data_dir)
        process = warm_processes.start_server(gunicorn_arguments(bind, workers), environment, log)
    server = LiveServer(f"http://{bind}", data_dir, log, env, process)
    wait_until_healthy(server)
    return server, process


def server_environment(data_dir: Path, gitlab_url: str, fresh: bool) -> dict[str, str]:
    """A live server's environment (and its commands'): the tests' own, its DATA_DIR and
    GitLab, and fresh migrated databases if `fresh`."""
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "GITLAB_URL": gitlab_url,
        "MEMBERSHIP_CACHE_TTL": "60",
        "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "DJANGO_SETTINGS_MODULE": "sharinghub_mlflow.settings",
    }
    # Never the in-process tests' databases.
    for name in ("DATABASE_URL", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI"):
        env.pop(name, None)
    if fresh:
        env |= fresh_databases(data_dir)
    return env


def gunicorn_arguments(bind: str, workers: int) -> list[str]:
    """The arguments `serve` would give gunicorn (after `python -m gunicorn`), with the
    settings' defaults but the tests' GRACEFUL_TIMEOUT."""
    from django.conf import settings

    from mlflow_bridge.embedded import serving

    argv = serving.gunicorn_argv({
        "bind": bind, "workers": workers, "threads": settings.SERVE_THREADS,
        "timeout": settings.SERVE_TIMEOUT, "graceful_timeout": GRACEFUL_TIMEOUT,
    })  # fmt: skip
    assert argv[:3] == [sys.executable, "-m", "gunicorn"], argv
    return argv[3:]


def prepared_as_serve_does(data_dir: Path) -> dict[str, str]:
    """What `serve` prepares before gunicorn starts, for gunicorn's environment only (as
    `serve` sets it in its own process): static files (the template's, collected once) and an
    empty metrics directory."""
    metrics = data_dir / "prometheus"
    metrics.mkdir(parents=True, exist_ok=True)
    static = migrated_template()["static"]
    return {"STATIC_ROOT": str(static), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


def wait_until_healthy(server: LiveServer) -> None:
    """Until the server answers /healthz; fail with its log if it exits or never does."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log.read_text()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.3)
    stop(server.process)
    raise RuntimeError(f"server did not start:\n{server.log.read_text()}")
