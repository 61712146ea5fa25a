"""Running it for an organisation, live: usage per project, deleted projects, gc and quotas.

One gunicorn server with local artifacts, driven by the stock mlflow client and plain HTTP;
the operator's commands run against the server's own databases, each in a process of its own
(`LiveServer.manage`; artifacts on S3: test_s3_artifacts.py). In <g>/team/*: Olive owns every
project.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import pytest
import requests
import sqlalchemy
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.api import Api, seed_project
from tests.gitlab_double import GitLabDouble, Project, User
from tests.live import LiveServer, start_live_server, stop

HOOK_SECRET = "ops-hook-secret-0123456789"
QUOTA = 1_000_000
_names = itertools.count()


@pytest.fixture(scope="module")
def service_token(gitlab: GitLabDouble) -> str:
    return gitlab.add_user("ops-service", admin=True).token


@pytest.fixture(scope="module")
def server(tmp_path_factory, gitlab, service_token) -> LiveServer:
    server, process = start_live_server(
        tmp_path_factory.mktemp("ops"),
        gitlab.url,
        GITLAB_WEBHOOK_SECRET=HOOK_SECRET,
        GITLAB_SERVICE_TOKEN=service_token,
        PROJECT_ARTIFACT_QUOTA_BYTES=str(QUOTA),
        # A restored project is asked about again at once, not after a cached "no project".
        MEMBERSHIP_NEGATIVE_CACHE_TTL="0",
        DJANGO_SUPERUSER_PASSWORD="ops-admin-password",
    )
    yield server
    stop(process)


@pytest.fixture(scope="module")
def olive(gitlab: GitLabDouble) -> User:
    return gitlab.add_user("olive")


def new_project(gitlab: GitLabDouble, owner: User) -> Project:
    project = gitlab.add_project(f"ops/team/p{next(_names)}")
    project.direct[owner.id] = 50
    return project


def mlflow_client(server: LiveServer, project: Project, monkeypatch, token: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    uri = server.tracking_uri(project.path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def usage_rows(server: LiveServer, *arguments: str) -> dict[int, dict]:
    rows = json.loads(server.manage("usage", "--format", "json", *arguments))
    return {row["project_id"]: row for row in rows}


def mlflow_engine(server: LiveServer) -> sqlalchemy.Engine:
    default = f"sqlite:///{server.data_dir / 'mlflow.sqlite3'}"
    return sqlalchemy.create_engine(server.env.get("MLFLOW_BACKEND_STORE_URI", default))


def table_counts(server: LiveServer) -> dict[str, int]:
    engine = mlflow_engine(server)
    with engine.connect() as connection:
        names = sqlalchemy.inspect(connection).get_table_names()
        counts = {
            name: connection.execute(sqlalchemy.text(f'SELECT COUNT(*) FROM "{name}"')).scalar()
            for name in names
        }
    engine.dispose()
    return counts


def artifact_files(server: LiveServer, project: Project) -> dict[str, int]:
    root = server.data_dir / "artifacts" / "workspaces" / f"p-{project.id}"
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def write(path: Path, size: int) -> Path:
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return path


class TestUsage:
    def test_it_reports_what_was_logged_per_project(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        big, small = new_project(gitlab, olive), new_project(gitlab, olive)
        client = mlflow_client(server, big, monkeypatch, olive.token)
        experiment_id = client.create_experiment("usage")
        for size in (1000, 2345, 70_001):
            run_id = client.create_run(experiment_id).info.run_id
            client.log_artifact(run_id, str(write(tmp_path / f"f{size}.bin", size)))
        client.log_text(run_id, "hello", "notes/hello.txt")
        other = mlflow_client(server, small, monkeypatch, olive.token)
        other.log_artifact(other.create_run(other.create_experiment("usage")).info.run_id,
                           str(write(tmp_path / "s.bin", 500)))  # fmt: skip

        rows = usage_rows(server)

        # Its experiment; its empty Default is no data (as the portal counts).
        assert (rows[big.id]["runs"], rows[big.id]["experiments"]) == (3, 1)
        assert rows[big.id]["artifact_bytes"] == 1000 + 2345 + 70_001 + len("hello")
        assert rows[big.id]["artifact_files"] == 4
        assert rows[big.id]["path"] == big.path and rows[big.id]["last_activity"]
        assert (rows[small.id]["runs"], rows[small.id]["artifact_bytes"]) == (1, 500)
        ids = list(rows)
        assert ids.index(big.id) < ids.index(small.id)  # largest first

    def test_it_prints_a_table_and_csv_and_the_stored_figures_with_their_age(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        client.log_artifact(client.create_run(client.create_experiment("t")).info.run_id,
                            str(write(tmp_path / "t.bin", 4321)))  # fmt: skip

        table = server.manage("usage")
        stored = list(csv.DictReader(io.StringIO(server.manage("usage", "--cached", "--format",
                                                               "csv"))))  # fmt: skip

        line = next(line for line in table.splitlines() if project.path in line)
        assert "4.3 kB" in line
        assert re.search(r"^\d+ projects, .* of artifacts; figures measured \d+ s ago at most\.$",
                         table.splitlines()[-1])  # fmt: skip
        row = next(row for row in stored if row["path"] == project.path)
        assert (row["artifact_bytes"], row["runs"]) == ("4321", "1")
        assert row["measured_at"]

    def test_it_shows_the_figures_in_the_admin_project_list(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        client.log_artifact(client.create_run(client.create_experiment("a")).info.run_id,
                            str(write(tmp_path / "a.bin", 123_456)))  # fmt: skip
        server.manage("usage")

        page = admin_page(server, f"/admin/projects/gitlabproject/?q={project.path}")

        assert project.path in page
        assert "123.5 kB" in page
        assert "ago" in page  # the figures' age


def admin_page(server: LiveServer, path: str) -> str:
    """A page of the admin, as a new superuser (DJANGO_SUPERUSER_PASSWORD of the server)."""
    username = f"ops-admin-{next(_names)}"
    server.manage("createsuperuser", "--noinput", "--username", username,
                  "--email", "ops@example.com")  # fmt: skip
    session = requests.Session()
    session.get(f"{server.url}/admin/login/", timeout=30)
    response = session.post(
        f"{server.url}/admin/login/?next={path}",
        data={"username": username, "password": "ops-admin-password",
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{server.url}/admin/login/"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 200 and "/admin/logout/" in response.text, response.text[:500]
    return response.text


def destroy_hook(server: LiveServer, project: Project) -> requests.Response:
    """GitLab's system hook for a deleted project."""
    event = {"event_name": "project_destroy", "project_id": project.id, "name": "p",
             "path": project.path.rsplit("/", 1)[-1], "path_with_namespace": project.path,
             "owner_name": "olive", "owner_email": "olive@example.com",
             "project_visibility": "private", "created_at": "2026-11-01T10:00:00Z",
             "updated_at": "2026-11-30T10:00:00Z"}  # fmt: skip
    return requests.post(
        f"{server.url}/hooks/gitlab/",
        json=event,
        timeout=30,
        headers={"X-Gitlab-Token": HOOK_SECRET, "X-Gitlab-Event": "System Hook"},
    )


def listed(out: str, project: Project) -> dict[str, int]:
    """The rows `purge_projects` says it deletes (or would) for a project, by table."""
    line = next(line for line in out.splitlines() if f" p-{project.id} " in line)
    rows = line.split("): ", 1)[1].split("; ", 1)[0]
    return {table: int(count) for count, table in (item.split(" ") for item in rows.split(", "))}


def readable(api: Api, seeded: dict) -> dict:
    """What a seeded project serves: its run, artifact, model version and trace."""
    return {
        "run": api.get("runs/get", run_id=seeded["run_id"]).json()["run"]["data"],
        "artifact": api.call(
            "GET", "api/2.0/mlflow-artifacts/artifacts/" + seeded["artifact_path"]
        ).content,  # fmt: skip
        "version": api.get("model-versions/get", name=seeded["model"], version="1").json(),
        "trace": api.call("GET", f"api/3.0/mlflow/traces/{seeded['trace_id']}").status_code,
    }


class TestDeletedProjects:
    def test_it_orphans_then_purges_exactly_a_deleted_projects_data(self, server, gitlab, olive):
        by_hook, by_refresh, kept = (new_project(gitlab, olive) for _ in range(3))
        apis = {
            p.id: Api(server.tracking_uri(p.path), olive.token) for p in (by_hook, by_refresh, kept)
        }
        seeded = {project_id: seed_project(api) for project_id, api in apis.items()}
        kept_before = readable(apis[kept.id], seeded[kept.id])
        kept_files = artifact_files(server, kept)
        counts_before = table_counts(server)

        del gitlab.projects[by_hook.id]
        assert destroy_hook(server, by_hook).status_code == 200
        del gitlab.projects[by_refresh.id]
        server.manage("gitlab_refresh", "--per-second", "1000")
        dry_run = server.manage("purge_projects", "--orphaned-for", "0s", "--dry-run")

        for gone in (by_hook, by_refresh):
            assert apis[gone.id].get("experiments/search", max_results=10).status_code == 404
            assert artifact_files(server, gone)  # still there: orphaned, not deleted
        assert table_counts(server) == counts_before
        assert f"p-{kept.id}" not in dry_run
        listing = {p.id: listed(dry_run, p) for p in (by_hook, by_refresh)}
        rows = sum(sum(found.values()) for found in listing.values())
        assert dry_run.strip().endswith(
            f"Would delete 2 orphaned projects: {rows} rows, 2 artifact files (24 B)."
        )
        assert listing[by_hook.id]["experiments"] == 2 and listing[by_hook.id]["runs"] == 1
        assert listing[by_hook.id]["workspaces"] == 1 and listing[by_hook.id]["trace_info"] == 1

        out = server.manage("purge_projects", "--orphaned-for", "0s")

        assert listed(out, by_hook) == listing[by_hook.id]
        counts_after = table_counts(server)
        removed = {name: counts_before[name] - counts_after[name] for name in counts_before}
        expected = {name: listing[by_hook.id].get(name, 0) + listing[by_refresh.id].get(name, 0)
                    for name in counts_before}  # fmt: skip
        assert removed == expected
        for gone in (by_hook, by_refresh):
            assert not artifact_files(server, gone)
        assert readable(apis[kept.id], seeded[kept.id]) == kept_before
        assert artifact_files(server, kept) == kept_files
        assert "Would delete 0 orphaned projects" in server.manage(
            "purge_projects", "--orphaned-for", "0s", "--dry-run"
        )

    def test_it_restores_a_project_gitlab_brings_back(self, server, gitlab, olive):
        project = new_project(gitlab, olive)
        api = Api(server.tracking_uri(project.path), olive.token)
        seeded = seed_project(api)
        del gitlab.projects[project.id]
        destroy_hook(server, project)
        assert api.get("runs/get", run_id=seeded["run_id"]).status_code == 404

        gitlab.projects[project.id] = project  # restored within GitLab's retention
        server.manage("gitlab_refresh", "--per-second", "1000")

        assert api.get("runs/get", run_id=seeded["run_id"]).status_code == 200
        assert f"p-{project.id}" not in server.manage(
            "purge_projects", "--orphaned-for", "0s", "--dry-run"
        )


class TestGarbageCollection:
    def test_it_frees_a_deleted_run_in_one_project_only(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        mine, theirs = new_project(gitlab, olive), new_project(gitlab, olive)
        clients = {p.id: mlflow_client(server, p, monkeypatch, olive.token) for p in (mine, theirs)}
        deleted, kept = {}, {}
        for project in (mine, theirs):
            client = clients[project.id]
            experiment_id = client.create_experiment("gc")
            deleted[project.id] = client.create_run(experiment_id).info.run_id
            kept[project.id] = client.create_run(experiment_id).info.run_id
            for run_id in (deleted[project.id], kept[project.id]):
                client.log_artifact(run_id, str(write(tmp_path / "w.bin", 5000)))
            client.delete_run(deleted[project.id])
        before = {p.id: artifact_files(server, p) for p in (mine, theirs)}

        dry_run = server.manage("gc", "--project", mine.path, "--dry-run")
        assert {p.id: artifact_files(server, p) for p in (mine, theirs)} == before
        out = server.manage("gc", "--project", mine.path)

        assert f"runs {deleted[mine.id]};" in dry_run and f"runs {deleted[mine.id]};" in out
        assert out.strip().endswith("Freed 1 runs and 5.0 kB of artifacts.")
        assert not [f for f in artifact_files(server, mine) if deleted[mine.id] in f]
        assert [f for f in artifact_files(server, mine) if kept[mine.id] in f]
        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
            clients[mine.id].get_run(deleted[mine.id])
        assert artifact_files(server, theirs) == before[theirs.id]
        run = clients[theirs.id].get_run(deleted[theirs.id])
        assert run.info.lifecycle_stage == "deleted"

    def test_it_keeps_runs_deleted_more_recently_than_older_than(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        run_id = client.create_run(client.create_experiment("gc")).info.run_id
        client.log_artifact(run_id, str(write(tmp_path / "w.bin", 100)))
        client.delete_run(run_id)

        out = server.manage("gc", "--project", str(project.id), "--older-than", "30d")

        assert out.strip() == "Freed 0 runs and 0 B of artifacts."
        assert client.get_run(run_id).info.lifecycle_stage == "deleted"

    def test_it_collects_a_deleted_experiment_with_its_runs(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        experiment_id = client.create_experiment("gone")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_artifact(run_id, str(write(tmp_path / "w.bin", 300)))
        client.delete_experiment(experiment_id)

        out = server.manage("gc", "--project", project.path)

        assert f"experiments {experiment_id};" in out
        assert artifact_files(server, project) == {}
        with pytest.raises(MlflowException):
            client.get_experiment(experiment_id)


class TestQuota:
    def test_it_refuses_an_upload_beyond_the_quota_and_keeps_nothing_of_it(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        run_id = client.create_run(client.create_experiment("quota")).info.run_id
        client.log_artifact(run_id, str(write(tmp_path / "first.bin", 600_000)))

        # The mlflow client raises what the server said, message included.
        with pytest.raises(requests.HTTPError, match="413") as refused:
            client.log_artifact(run_id, str(write(tmp_path / "second.bin", 500_000)))

        message = str(refused.value)
        assert f"Artifact quota exceeded: {project.path} holds 600.0 kB (600000 bytes)" in message
        assert f"limit of 1.0 MB ({QUOTA} bytes, PROJECT_ARTIFACT_QUOTA_BYTES)" in message
        assert [f.path for f in client.list_artifacts(run_id)] == ["first.bin"]
        assert [name for name in artifact_files(server, project)] == [
            f"{client.get_run(run_id).info.experiment_id}/{run_id}/artifacts/first.bin"
        ]

    def test_it_answers_in_mlflows_json_and_still_reads_and_deletes(
        self, server, gitlab, olive, monkeypatch, tmp_path
    ):
        project = new_project(gitlab, olive)
        client = mlflow_client(server, project, monkeypatch, olive.token)
        run = client.create_run(client.create_experiment("quota"))
        client.log_artifact(run.info.run_id, str(write(tmp_path / "big.bin", 900_000)))
        api = Api(server.tracking_uri(project.path), olive.token)
        path = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"

        refused = api.call("PUT", f"api/2.0/mlflow-artifacts/artifacts/{path}/more.bin",
                           data=b"x" * 200_000)  # fmt: skip
        read = api.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{path}/big.bin")
        deleted = api.call("DELETE", f"api/2.0/mlflow-artifacts/artifacts/{path}/big.bin")
        after_delete = api.call("PUT", f"api/2.0/mlflow-artifacts/artifacts/{path}/more.bin",
                                data=b"x" * 200_000)  # fmt: skip

        assert refused.status_code == 413
        assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert (read.status_code, len(read.content)) == (200, 900_000)
        assert deleted.status_code == 200
        assert after_delete.status_code == 200
