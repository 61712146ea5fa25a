"""Database work does not grow with the data (issue 12): with 10,000 cached memberships and
2,000 projects, a tracking call and a portal page make as many queries as with a handful.
Counts, not timings: Django's queries and the SQL MLflow's store sends."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import responses
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from sqlalchemy import event

from projects.models import GitLabProject, GitLabUser, Membership
from tests.inprocess import Tracking
from tests.sessions import logged_in_client

pytestmark = pytest.mark.django_db

PROJECTS = 2_000
MEMBERSHIPS = 10_000
_first_ids = itertools.count(7_000_000, 100_000)


def crowd_the_database(members: list[GitLabUser]) -> None:
    """PROJECTS other projects and MEMBERSHIPS fresh memberships in them, spread over
    `members` and as many other users as make up the count."""
    first = next(_first_ids)
    projects = GitLabProject.objects.bulk_create(
        GitLabProject(id=first + i, path=f"crowd{first}/team/p{i}") for i in range(PROJECTS)
    )
    others = -(-MEMBERSHIPS // PROJECTS) - len(members)
    users = members + GitLabUser.objects.bulk_create(
        GitLabUser(id=first + i, username=f"crowd-{first + i}") for i in range(others)
    )
    expires = timezone.now() + timedelta(hours=1)
    Membership.objects.bulk_create(
        Membership(user=user, project=project, access_level=30, expires_at=expires)
        for user, project in itertools.product(users, projects)
    )
    assert Membership.objects.count() >= MEMBERSHIPS


@contextlib.contextmanager
def mlflow_statements() -> Iterator[list[str]]:
    """The SQL statements MLflow's tracking store sends while the block runs."""
    from mlflow.server.handlers import _get_tracking_store

    engine = _get_tracking_store().engine
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def work_of(call: Callable[[], object]) -> tuple[int, int]:
    """(Django queries, MLflow SQL statements) of one call."""
    with CaptureQueriesContext(connection) as django, mlflow_statements() as mlflow:
        call()
    return len(django.captured_queries), len(mlflow)


def test_it_makes_as_many_queries_for_a_tracking_call_with_2000_projects(settings, gitlab, client):
    settings.GITLAB_URL = gitlab.url
    settings.MEMBERSHIP_CACHE_TTL = 3600
    settings.MEMBERSHIP_MEMO_TTL = 0  # the database's lookup itself (memoized: test_memo.py)
    user = gitlab.add_user("grower")
    project = gitlab.add_project("growth/team/churn")
    project.direct[user.id] = 30
    tracking = Tracking(client, project.path, user.token)
    _, run_id = tracking.new_run("growth")  # the token and membership are cached from here on

    metric = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}

    def log_metric() -> None:
        assert tracking.post("runs/log-metric", metric)[0] == 200

    log_metric()
    small = work_of(log_metric)
    crowd_the_database([GitLabUser.objects.get(id=user.id)])
    large = work_of(log_metric)

    assert large == small
    assert small[0] == 1  # the caller's token and membership, in one query


def gitlab_lists(count: int) -> None:
    """GitLab's answer: the user is a Developer of `count` projects."""
    responses.get("https://gitlab.example.com/api/v4/user", json={"id": 7, "username": "dave"})
    listed = [{"id": 9_000_000 + i, "path_with_namespace": f"ml/p{i}", "name": f"p{i}",
               "topics": [], "web_url": f"https://gitlab.example.com/ml/p{i}",
               "permissions": {"project_access": {"access_level": 30}, "group_access": None}}
              for i in range(count)]  # fmt: skip
    responses.get("https://gitlab.example.com/api/v4/projects", json=listed)


@responses.activate
def test_it_makes_as_many_queries_for_the_portal_with_2000_projects(settings, client):
    settings.GITLAB_URL = "https://gitlab.example.com"
    settings.GITLAB_MANDATORY_TOPICS = []
    cache.clear()
    gitlab_lists(3)
    browser = logged_in_client(client)

    def portal() -> None:
        assert browser.get("/mlflow/").status_code == 200

    portal()
    small = work_of(portal)
    crowd_the_database([GitLabUser.objects.get_or_create(id=7, defaults={"username": "dave"})[0]])
    large = work_of(portal)

    assert large == small


@responses.activate
@pytest.mark.parametrize("page", ["1", "5"])
def test_it_makes_as_many_queries_for_any_portal_page_of_a_member_of_400_projects(
    settings, client, page
):
    """Counts and recent runs for every project of the list in one query per kind, and a
    page of at most 50 rows, whatever the page: a member of 3 or of 400 projects alike."""
    settings.GITLAB_URL = "https://gitlab.example.com"
    settings.GITLAB_MANDATORY_TOPICS = []
    crowd_the_database([GitLabUser.objects.get_or_create(id=7, defaults={"username": "dave"})[0]])
    browser = logged_in_client(client)

    def portal() -> None:
        assert browser.get("/mlflow/", {"page": page}).status_code == 200

    work = []
    for count in (3, 400):
        cache.clear()
        responses.reset()
        gitlab_lists(count)
        portal()  # GitLab's list is cached from here on
        work.append(work_of(portal))

    assert work[1] == work[0]
