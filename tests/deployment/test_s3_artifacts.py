"""Artifacts on S3-compatible storage: MLFLOW_ARTIFACTS_DESTINATION=s3://bucket/prefix.

moto's standalone server speaks the real S3 API over HTTP on 127.0.0.1; the service reaches
it through MLFLOW_S3_ENDPOINT_URL, as it would MinIO or Ceph.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest
from mlflow import MlflowClient
from moto.server import ThreadedMotoServer

from tests.api import Api
from tests.live import LiveServer, free_port, start_live_server, stop
from tests.security.test_foreign_traces import start_trace, store_location, trace_artifact
from tests.test_trace_locations import otlp_span

# The artifact store, not the database, is under test (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

BUCKET = "mlflow"
PREFIX = "tenant/artifacts"
SECRET = "only-in-project-a"
# A trace's data in project A (issue 22).
TRACES = b'{"spans": [], "request": "only-in-project-a"}'
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    bucket(endpoint).create()
    yield endpoint
    server.stop()


def bucket(endpoint: str):
    session = boto3.session.Session(
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS["AWS_DEFAULT_REGION"],
    )
    return session.resource("s3", endpoint_url=endpoint).Bucket(BUCKET)


@pytest.fixture(scope="module")
def server(tmp_path_factory, gitlab, s3_endpoint) -> LiveServer:
    server, process = start_live_server(
        tmp_path_factory.mktemp("s3"),
        gitlab.url,
        MLFLOW_ARTIFACTS_DESTINATION=f"s3://{BUCKET}/{PREFIX}",
        MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        **AWS,
    )
    yield server
    stop(process)


@pytest.fixture
def client(server, cast, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
    uri = server.tracking_uri(cast.project.path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def keys(endpoint: str, prefix: str) -> list[str]:
    return sorted(item.key for item in bucket(endpoint).objects.filter(Prefix=prefix))


class TestArtifactsOnS3:
    def test_it_logs_lists_downloads_and_deletes_through_the_project_uri(
        self, client, server, cast, s3_endpoint, tmp_path
    ):
        experiment_id = client.create_experiment("s3-artifacts")
        run_id = client.create_run(experiment_id).info.run_id
        (tmp_path / "notes.txt").write_text("kept on S3")
        (tmp_path / "weights").mkdir()
        (tmp_path / "weights" / "w.bin").write_bytes(bytes(range(256)) * 4096)

        client.log_artifact(run_id, str(tmp_path / "notes.txt"))
        client.log_artifacts(run_id, str(tmp_path / "weights"), artifact_path="weights")

        assert [f.path for f in client.list_artifacts(run_id)] == ["notes.txt", "weights"]
        assert [f.path for f in client.list_artifacts(run_id, "weights")] == ["weights/w.bin"]
        downloaded = client.download_artifacts(run_id, "", str(tmp_path / "out"))
        assert (tmp_path / "out" / "notes.txt").read_text() == "kept on S3"
        assert (tmp_path / "out" / "weights" / "w.bin").read_bytes() == bytes(range(256)) * 4096
        assert downloaded
        where = f"{PREFIX}/workspaces/p-{cast.project.id}/{experiment_id}/{run_id}/artifacts/"
        assert keys(s3_endpoint, where) == [where + "notes.txt", where + "weights/w.bin"]

        api = Api(server.tracking_uri(cast.project.path), cast.dave.token)
        path = f"{experiment_id}/{run_id}/artifacts/notes.txt"
        api.ok("DELETE", f"api/2.0/mlflow-artifacts/artifacts/{path}")

        assert [f.path for f in client.list_artifacts(run_id)] == ["weights"]
        assert keys(s3_endpoint, where) == [where + "weights/w.bin"]

    def test_it_keeps_another_project_out_of_the_bucket(self, client, server, cast):
        experiment_id = client.create_experiment("s3-private")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_text(run_id, SECRET, "secret.txt")
        otto = Api(server.tracking_uri(cast.other_project.path), cast.otto.token)

        path = f"{experiment_id}/{run_id}/artifacts/secret.txt"
        response = otto.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{path}")

        # Otto's request is read in his own workspace, where no such key exists.
        assert response.status_code == 404
        assert SECRET.encode() not in response.content

    def test_it_answers_a_missing_artifact_with_a_json_404(self, client, server, cast):
        experiment_id = client.create_experiment("s3-missing")
        run_id = client.create_run(experiment_id).info.run_id
        api = Api(server.tracking_uri(cast.project.path), cast.dave.token)

        proxied = api.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/"
                           "artifacts/missing.txt")  # fmt: skip
        from_ui = api.call("GET", "get-artifact", params={"run_id": run_id, "path": "missing.txt"})

        for response in (proxied, from_ui):
            assert response.status_code == 404, response.text[:300]
            assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            assert PREFIX not in response.text


def owned_project(gitlab, owner, name: str):
    project = gitlab.add_project(f"s3ops/{name}/p{len(gitlab.projects)}")
    project.direct[owner.id] = 50
    return project


def project_client(server, project, token, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    uri = server.tracking_uri(project.path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def sizes(endpoint: str, prefix: str) -> dict[str, int]:
    return {item.key: item.size for item in bucket(endpoint).objects.filter(Prefix=prefix)}


class TestOperationsOnS3:
    def test_it_measures_usage_from_the_bucket(
        self, server, gitlab, cast, s3_endpoint, monkeypatch, tmp_path
    ):
        project = owned_project(gitlab, cast.dave, "usage")
        client = project_client(server, project, cast.dave.token, monkeypatch)
        experiment_id = client.create_experiment("usage")
        for size in (10_000, 2_500):
            run_id = client.create_run(experiment_id).info.run_id
            (tmp_path / f"{size}.bin").write_bytes(b"u" * size)
            client.log_artifact(run_id, str(tmp_path / f"{size}.bin"))

        rows = json.loads(server.manage("usage", "--format", "json"))

        row = next(row for row in rows if row["project_id"] == project.id)
        assert (row["runs"], row["artifact_files"], row["artifact_bytes"]) == (2, 2, 12_500)
        stored = sizes(s3_endpoint, f"{PREFIX}/workspaces/p-{project.id}/")
        assert sum(stored.values()) == 12_500

    def test_it_collects_garbage_in_one_project_only(
        self, server, gitlab, cast, s3_endpoint, monkeypatch, tmp_path
    ):
        mine, theirs = (owned_project(gitlab, cast.dave, "gc") for _ in range(2))
        deleted = {}
        (tmp_path / "w.bin").write_bytes(b"w" * 3000)
        for project in (mine, theirs):
            client = project_client(server, project, cast.dave.token, monkeypatch)
            run_id = client.create_run(client.create_experiment("gc")).info.run_id
            client.log_artifact(run_id, str(tmp_path / "w.bin"))
            client.delete_run(run_id)
            deleted[project.id] = run_id
        theirs_before = sizes(s3_endpoint, f"{PREFIX}/workspaces/p-{theirs.id}/")

        out = server.manage("gc", "--project", mine.path)

        assert out.strip().endswith("Freed 1 runs and 3.0 kB of artifacts.")
        assert sizes(s3_endpoint, f"{PREFIX}/workspaces/p-{mine.id}/") == {}
        assert sizes(s3_endpoint, f"{PREFIX}/workspaces/p-{theirs.id}/") == theirs_before
        assert len(theirs_before) == 1


class TestArtifactStoreOnS3:
    def test_it_never_deletes_a_project_whose_id_starts_like_another(
        self, s3_endpoint, settings, monkeypatch
    ):
        """workspaces/p-1 must not reach workspaces/p-10: prefixes end with "/"."""
        from mlflow_bridge.embedded import artifact_store

        settings.MLFLOW_ARTIFACTS_DESTINATION = f"s3://{BUCKET}/prefixes"
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
        for name, value in AWS.items():
            monkeypatch.setenv(name, value)
        for key in ("prefixes/workspaces/p-1/1/a.txt", "prefixes/workspaces/p-10/1/b.txt"):
            bucket(s3_endpoint).put_object(Key=key, Body=b"12345")

        assert artifact_store.size("workspaces/p-1") == (5, 1)
        assert artifact_store.delete("workspaces/p-1") == 1

        assert list(sizes(s3_endpoint, "prefixes/")) == ["prefixes/workspaces/p-10/1/b.txt"]


class TestTraceLocationsOnS3:
    """Issue 22: a trace's stored location never leads Otto (project B) to project A's
    traces.json in the bucket, nor into another bucket the server's credentials reach."""

    @pytest.fixture(scope="class")
    def victim(self, server, cast, s3_endpoint) -> tuple[str, str]:
        """Project A's trace with its traces.json on S3, read back by Dave: its s3:// directory
        and its proxied location."""
        api = Api(server.tracking_uri(cast.project.path), cast.dave.token)
        experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                               json={"name": "s3-traced"})["experiment_id"]  # fmt: skip
        status, created = start_trace(api, experiment_id)
        assert status == 200, created
        info = created["trace"]["trace_info"]
        location = info["tags"]["mlflow.artifactLocation"]
        relative = location.split(f"workspaces/p-{cast.project.id}/", 1)[1]
        api.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{relative}/traces.json", data=TRACES)

        response = trace_artifact(api, info["trace_id"])

        assert (response.status_code, response.content) == (200, TRACES)
        key = f"{PREFIX}/workspaces/p-{cast.project.id}/{relative}/traces.json"
        assert keys(s3_endpoint, key) == [key]
        return f"s3://{BUCKET}/{key.removesuffix('/traces.json')}", location

    @pytest.fixture(scope="class")
    def other_bucket(self, s3_endpoint) -> str:
        """A bucket outside MLFLOW_ARTIFACTS_DESTINATION, holding a traces.json."""
        s3 = bucket(s3_endpoint).meta.client
        s3.create_bucket(Bucket="elsewhere")
        s3.put_object(Bucket="elsewhere", Key="x/artifacts/traces.json", Body=TRACES)
        return "s3://elsewhere/x/artifacts"

    def test_it_refuses_a_span_that_points_at_project_a_on_s3(self, server, cast, victim):
        s3_location, _ = victim
        otto = Api(server.tracking_uri(cast.other_project.path), cast.otto.token)
        body = otlp_span(os.urandom(16), {
            "mlflow.traceTag.mlflow.artifactLocation": s3_location,
            "mlflow.traceTag.mlflow.trace.spansLocation": "ARTIFACT_REPO"})  # fmt: skip

        response = otto.call("POST", "v1/traces", data=body, headers={
            "Content-Type": "application/x-protobuf", "X-Mlflow-Experiment-Id": "0"})  # fmt: skip

        assert response.status_code == 400, response.text[:500]
        assert "mlflow.traceTag.mlflow.artifactLocation" in response.json()["message"]

    @pytest.mark.parametrize("where", ["project A's key", "proxied", "another bucket"])
    def test_it_never_reads_project_as_traces_whatever_the_stored_tag_says(
        self, where, server, cast, victim, other_bucket
    ):
        s3_location, proxied = victim
        otto = Api(server.tracking_uri(cast.other_project.path), cast.otto.token)
        name = f"s3-otto-{os.urandom(4).hex()}"
        experiment_id = otto.ok("POST", "api/2.0/mlflow/experiments/create",
                                json={"name": name})["experiment_id"]  # fmt: skip
        status, created = start_trace(otto, experiment_id)
        assert status == 200, created
        trace_id = created["trace"]["trace_info"]["trace_id"]
        location = {"project A's key": s3_location, "proxied": proxied,
                    "another bucket": other_bucket}[where]  # fmt: skip
        store_location(server, trace_id, location)

        response = trace_artifact(otto, trace_id)

        assert TRACES not in response.content
        assert response.status_code == 404, response.text[:500]
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
