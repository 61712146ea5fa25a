"""A live server's `manage.py` commands, each run in a process of its own, forked from one that
has loaded Django, MLflow and every command once (tests/live.py's `LiveServer.manage`).

An operator's command is a new process against the server's databases and storage; so is each
one here, but it starts from loaded modules: a `python manage.py` imports MLflow again, seconds
of CPU per command. Nothing is connected before a fork (Django and MLflow connect on first
use), so each command opens its own connections, as it would when run by hand.

Run as `python -m tests.forked_commands` with the server's environment: it reads one JSON
request per line on stdin, {"argv": [...], "environ": {...}, "stdout": path, "stderr": path},
runs `manage.py <argv>` in a fork, with `environ` added to its environment, writing to those
files, and answers {"returncode": n}; it exits when stdin closes (the test process ended).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import django
from django.core.management import execute_from_command_line, get_commands, load_command_class


def main() -> None:
    django.setup()
    for name, app in get_commands().items():
        load_command_class(app, name)
    for line in sys.stdin:
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            run(request)
        _, status = os.waitpid(child, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


def run(request: dict) -> None:
    """In the fork: the command, its output in the request's files; never returns."""
    code = 1
    with open(request["stdout"], "w") as out, open(request["stderr"], "w") as err:
        # The descriptors too: this process's stdout answers the test process.
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err
        os.environ.update(request["environ"])
        try:
            execute_from_command_line(["manage.py", *request["argv"]])
            code = 0
        except SystemExit as exit:  # sys.exit(None) is a success, sys.exit("why") a failure
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except Exception:  # noqa: BLE001 - the command failed: its stderr says how
            traceback.print_exc()
        out.flush()
        err.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
