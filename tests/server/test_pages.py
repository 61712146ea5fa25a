"""The connect page's shell check, run with curl against a live server. The pages themselves
are specified in-process: tests/test_pages.py."""

from __future__ import annotations

import re
import subprocess

from tests.sessions import log_in


def test_its_shell_check_works_with_a_token(gunicorn_server, gitlab, cast, project_a):
    session = log_in(gunicorn_server.url, gitlab, cast.dave)
    page = session.get(f"{gunicorn_server.url}/mlflow/{cast.project.path}/connect/", timeout=30)
    assert page.status_code == 200
    command = re.search(r'<pre id="snippet-check"><code>(.*?)</code>', page.text, re.S).group(1)
    command = command.replace("\\\n", " ")

    env = {"MLFLOW_TRACKING_TOKEN": cast.dave.token, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=60, env=env
    )

    assert done.returncode == 0, done.stderr
    assert '"experiments"' in done.stdout
