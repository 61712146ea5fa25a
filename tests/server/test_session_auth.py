"""Browser sessions on a live server: gunicorn workers racing to refresh one GitLab token.
The rest of the session behaviour runs in-process: tests/test_session_auth.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.sessions import due_for_refresh

SEARCH = "ajax-api/2.0/mlflow/experiments/search?max_results=5"


def test_it_lets_exactly_one_of_two_racing_workers_refresh(gunicorn_server, gitlab, cast):
    uri = gunicorn_server.tracking_uri(cast.project.path)
    session = due_for_refresh(gunicorn_server, gitlab, cast.mark)
    calls_before = gitlab.oauth.refresh_calls
    gitlab.oauth.refresh_delay = 1.0  # both workers see the old token while one refreshes

    def search(_: int) -> int:
        racer = requests.Session()
        racer.cookies.update(session.cookies)
        return racer.get(uri + SEARCH, timeout=60,
                         headers={"Accept": "application/json"}).status_code  # fmt: skip

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(search, range(4)))
    finally:
        gitlab.oauth.refresh_delay = 0.0

    assert statuses == [200, 200, 200, 200]
    assert gitlab.oauth.refresh_calls - calls_before == 1
