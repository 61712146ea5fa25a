"""A live server's `manage.py` commands, each run in a process of its own, forked from one that
has loaded Django, MLflow and every command once (tests/live.py's `LiveServer.manage`).

An operator's command is a new process against the server's databases and storage; so is each
one here, but it starts from loaded modules: a `python manage.py` imports MLflow again, seconds
of CPU per command. Nothing is connected before a fork (Django and MLflow connect on first
use), so each command opens its own connections, as it would when run by hand.

Run as `python -m tests.forked_commands <pid of the server's gunicorn master>` with the
server's environment: it reads one JSON request per line on stdin, {"argv": [...], "environ":
{...}, "stdout": path, "stderr": path}, runs `manage.py <argv>` in a fork, with `environ` added
to its environment, writing to those files, and answers {"returncode": n}, one request at a
time; it exits when stdin closes (the test process ended) or the server stops.
"""

from __future__ import annotations

import json
import os
import select
import sys
import traceback
from pathlib import Path

import django
from django.core.management import execute_from_command_line, get_commands, load_command_class


def main() -> None:
    server = int(sys.argv[1])
    django.setup()
    for name, app in get_commands().items():
        load_command_class(app, name)
    while server_runs(server):
        if not select.select([sys.stdin], [], [], 1.0)[0]:
            continue
        line = sys.stdin.readline()
        if not line:  # the test process closed its end
            return
        child = os.fork()
        if child == 0:
            run(json.loads(line))
        _, status = os.waitpid(child, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


def server_runs(pid: int) -> bool:
    """Whether the server's gunicorn master still runs (not a zombie its test has yet to reap):
    once it is stopped, nobody runs its commands any more."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def run(request: dict) -> None:
    """In the fork: the command, its output in the request's files; never returns."""
    code = 1
    try:
        with open(request["stdout"], "w") as out, open(request["stderr"], "w") as err:
            # The descriptors too: this process's stdout answers the test process, and its
            # stdin brings the next request.
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = out, err
            os.environ.update(request["environ"])
            code = command(request["argv"])
            out.flush()
            err.flush()
    finally:
        os._exit(code)


def command(argv: list[str]) -> int:
    """`manage.py <argv>`; its exit code."""
    try:
        execute_from_command_line(["manage.py", *argv])
    except SystemExit as exit:  # sys.exit(None) is a success, sys.exit("why") a failure
        return exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except Exception:  # noqa: BLE001 - the command failed: its stderr says how
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    main()
