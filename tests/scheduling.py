"""How `make test` spreads the suite over its pytest-xdist workers (the Makefile's WORKERS): a
file at a time, as `--dist loadfile` does, except that the files of one ONE_WORKER group run
one after another on the same worker.

The group's files each hold many PostgreSQL connections at once (measured at their peak, with
the machine's 5 idle ones: test_concurrency 52, its 4 gunicorn workers serving 16 clients;
test_replicas 37, two servers), and side by side with the other worker's they came within 14
of PostgreSQL's default max_connections (100): "too many clients already" for whichever test
asked next.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

MANY_CONNECTIONS = "files holding many PostgreSQL connections"
ONE_WORKER = {
    "tests/deployment/test_concurrency.py": MANY_CONNECTIONS,
    "tests/deployment/test_replicas.py": MANY_CONNECTIONS,
}

# A renamed file would silently leave its group.
ROOT = Path(__file__).resolve().parent.parent
assert all((ROOT / path).exists() for path in ONE_WORKER), "tests/scheduling.py: ONE_WORKER"


class FilesOrGroups(LoadFileScheduling):
    """`--dist loadfile`, with each ONE_WORKER group as one file."""

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        return ONE_WORKER.get(scope, scope)


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` runs the suite without it
def pytest_xdist_make_scheduler(config, log) -> FilesOrGroups | None:
    if config.getoption("dist") == "loadfile":
        return FilesOrGroups(config, log)
    return None
