"""Live gunicorn servers and stock-client scripts forked from one warm process per test
process (tests/live.py's `start_live_server` for servers started without `serve`, and
`run_python` for the scripts the tests run with `python -c`).

Each server is still a gunicorn master of its own with its own environment, log and workers,
and each script a process of its own with its own environment; but each is a fork of a
process that has already imported MLflow, Django, pandas, SQLAlchemy and gunicorn, as are the
workers a master forks: `python -m gunicorn`, each worker and each `python -c` would import
them again, about 3 s of CPU each on a two-core machine, for each of the dozens of servers and
scripts a run starts.

Only what reads nothing of a server's or a client's configuration when imported is loaded
before the fork: never `mlflow.server` (its import reads MLflow's server environment),
prometheus_client (it reads PROMETHEUS_MULTIPROC_DIR) nor anything that needs Django's
settings; MLflow's client reads its environment (MLFLOW_TRACKING_URI...) when it is used. The
warm process starts no thread and opens no connection.

The warm process is `python -m tests.warm_processes`: it reads one JSON request per line on
stdin, {"kind": "gunicorn" or "python", "argv": gunicorn's or python's arguments, "env": {...},
"stdout": path, "stderr": path, "exit": path}, forks a process that runs them, and answers
{"pid": n}; when the process ends, it writes its exit code into its "exit" file. It exits when
stdin closes (its test process ended); servers still running are their test's to stop.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

PRELOADED = (
    "mlflow", "mlflow.entities", "mlflow.models", "mlflow.tracing",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "pandas", "sqlalchemy", "alembic", "flask", "fastapi", "cryptography", "requests",
    "gunicorn.app.wsgiapp", "gunicorn.workers.gthread",
    "django.core.handlers.wsgi", "django.db.models",
)  # fmt: skip
# Modules whose import reads a server's configuration: a server must import them itself.
READ_CONFIGURATION_ON_IMPORT = ("mlflow.server", "prometheus_client")
ROOT = Path(__file__).resolve().parent.parent


# --- The warm process ----------------------------------------------------------------------
def main() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    from django.conf import settings

    early = [name for name in sys.modules if name.startswith(READ_CONFIGURATION_ON_IMPORT)]
    if early or settings.configured:
        raise RuntimeError(f"PRELOADED imported {early or 'settings'}: a server's own to import")
    gc.collect()
    gc.freeze()  # what each fork inherits: never walked by its garbage collector
    exit_files: dict[int, str] = {}
    while True:
        reap(exit_files)
        if not select.select([sys.stdin], [], [], 0.2)[0]:
            continue
        line = sys.stdin.readline()
        if not line:  # the test process closed its end
            return
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            in_the_fork(request)
        exit_files[pid] = request["exit"]
        print(json.dumps({"pid": pid}), flush=True)


def reap(exit_files: dict[int, str]) -> None:
    """Each process that ended: its exit code, written whole into its exit file."""
    while exit_files:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        written = Path(exit_files.pop(pid))
        scratch = written.with_name(written.name + ".part")
        scratch.write_text(str(os.waitstatus_to_exitcode(status)))
        scratch.rename(written)


def in_the_fork(request: dict) -> None:
    """The request's environment, input (none) and output files, then its program."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), fd)
    if request["kind"] == "gunicorn":
        run_gunicorn(request["argv"])
    run_code(request["argv"])


def run_gunicorn(argv: list[str]) -> None:
    """gunicorn with `argv`; never returns."""
    code = 1
    try:
        sys.argv = ["gunicorn", *argv]
        from gunicorn.app.wsgiapp import run

        run()
        code = 0
    except SystemExit as exit:  # gunicorn's own exit: 0 after a graceful stop
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:  # noqa: BLE001 - the server failed: its log says how
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_code(argv: list[str]) -> None:
    """`python -c <code> <arguments>`: the code, then the interpreter's own exit (MLflow's
    atexit handlers, threads joined, output flushed), with the code's exit status."""
    assert argv[0] == "-c", argv
    sys.argv = ["-c", *argv[2:]]
    try:
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - as Python itself: the traceback, then status 1
        traceback.print_exc()
        sys.exit(1)
    sys.exit(0)


# --- The test process's side ---------------------------------------------------------------
class ForkedProcess:
    """A process the warm process forked, waited for and stopped as a subprocess.Popen is
    (tests/live.py's `stop`): it is not this process's child, so its exit code comes from its
    exit file."""

    def __init__(self, pid: int, exit_file: Path, argv: list[str]):
        self.pid, self.exit_file, self.args = pid, exit_file, argv
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.exit_file.exists():
            self.returncode = int(self.exit_file.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # ended: its exit file is on its way
                os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_warm: subprocess.Popen | None = None


def forked(kind: str, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path,
           exit_file: Path) -> ForkedProcess:  # fmt: skip
    """A process the warm process forked (started at first need) to run `argv`."""
    global _warm
    if _warm is None or _warm.poll() is not None:
        _warm = subprocess.Popen(
            [sys.executable, "-m", "tests.warm_processes"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    request = {"kind": kind, "argv": argv, "env": env, "stdout": str(stdout),
               "stderr": str(stderr), "exit": str(exit_file)}  # fmt: skip
    _warm.stdin.write(json.dumps(request) + "\n")
    _warm.stdin.flush()
    answer = _warm.stdout.readline()
    assert answer, "the warm process that forks servers and scripts ended: see stderr"
    return ForkedProcess(json.loads(answer)["pid"], exit_file, argv)


def start_server(argv: list[str], env: dict[str, str], log: Path) -> ForkedProcess:
    """A gunicorn master with `argv` (gunicorn's arguments) and `env`, its output in `log`."""
    log.write_bytes(b"")
    return forked("gunicorn", argv, env, log, log, log.with_name(log.name + ".exit"))


def run_python(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """As subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
    timeout=timeout), `argv` being ["-c", code, arguments...]."""
    with tempfile.TemporaryDirectory(prefix="warm-python-") as directory:
        out, err, exit_file = (Path(directory) / name for name in ("out", "err", "exit"))
        process = forked("python", argv, env, out, err, exit_file)
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        return subprocess.CompletedProcess(
            [sys.executable, *argv], returncode, out.read_text(), err.read_text()
        )


if __name__ == "__main__":
    main()
