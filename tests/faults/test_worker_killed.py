"""A gunicorn worker is killed (SIGKILL) in the middle of a large artifact upload: the other
requests are unaffected, gunicorn replaces the worker, the uploading client gets a connection
error it can retry, and the half-written artifact is never listed or served. MLflow's local
artifact repository writes an upload to a hidden staging file (".artifact.uploading.*") in
the destination directory and renames it over the target once complete; this test holds the
service to that."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tests.api import Api
from tests.live import gunicorn_workers, wait_until

# A worker and the artifact store, not the database, are under test (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

CHUNK = 64 * 1024
SIZE = 64 * CHUNK  # 4 MiB
STAGING_PREFIX = ".artifact.uploading."


@pytest.fixture
def server_with_workers(gunicorn_server):
    """The shared live server (2 workers): gunicorn replaces the killed one, and the test waits
    for the replacement, so the server serves on as before."""
    return gunicorn_server, gunicorn_server.process


class StalledBody:
    """An upload body that sends its first half, then waits until `release` is set."""

    def __init__(self, byte: bytes, release: threading.Event):
        self.sent = 0
        self.byte = byte
        self.release = release
        self.half_sent = threading.Event()

    def __len__(self) -> int:
        return SIZE

    def read(self, size: int = -1) -> bytes:
        if self.sent >= SIZE:
            return b""
        if self.sent >= SIZE // 2:
            self.half_sent.set()
            self.release.wait(timeout=60)
        self.sent += CHUNK
        return self.byte * CHUNK


def pid_writing(directory: Path, workers: set[int]) -> int:
    """The worker holding a staging file open below `directory`."""
    for _ in range(200):
        for pid in workers:
            for descriptor in Path(f"/proc/{pid}/fd").iterdir():
                target = Path(os.readlink(descriptor))
                if target.name.startswith(STAGING_PREFIX) and directory in target.parents:
                    return pid
        time.sleep(0.05)
    raise AssertionError("no worker is writing a staging file")


def test_it_replaces_a_killed_worker_and_never_shows_its_half_upload(
    server_with_workers, cast, monkeypatch, tmp_path
):
    server, process = server_with_workers
    uri = server.tracking_uri(cast.project.path)
    api = Api(uri, cast.dave.token)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("through-a-killed-worker")).info
    (tmp_path / "model.bin").write_bytes(b"1" * SIZE)
    client.log_artifact(run.run_id, str(tmp_path / "model.bin"))  # the version to keep
    experiment_path = f"api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.run_id}"
    workers_before = gunicorn_workers(process.pid)

    outcomes = {}
    release = threading.Event()
    body = StalledBody(b"2", release)

    def upload() -> None:
        try:
            outcomes["upload"] = api.call("PUT", f"{experiment_path}/artifacts/model.bin",
                                          data=body)  # fmt: skip
        except requests.ConnectionError as exc:
            outcomes["upload"] = exc

    uploading = threading.Thread(target=upload)
    uploading.start()
    body.half_sent.wait(timeout=30)
    killed = pid_writing(server.data_dir / "artifacts", workers_before)
    meanwhile = api.get("runs/get", run_id=run.run_id)  # the other worker serves
    os.kill(killed, signal.SIGKILL)
    release.set()
    uploading.join(timeout=60)
    wait_until(lambda: len(gunicorn_workers(process.pid) - {killed}) == 2, "a new worker")
    listed = api.get("artifacts/list", run_id=run.run_id).json()["files"]
    kept = client.download_artifacts(run.run_id, "model.bin", str(tmp_path / "kept"))

    assert meanwhile.status_code == 200
    assert isinstance(outcomes["upload"], requests.ConnectionError)
    assert killed not in gunicorn_workers(process.pid)
    assert [(f["path"], int(f["file_size"])) for f in listed] == [("model.bin", SIZE)]
    assert Path(kept).read_bytes() == b"1" * SIZE  # the complete earlier version, not half
    assert STAGING_PREFIX not in str(listed)

    (tmp_path / "model.bin").write_bytes(b"3" * SIZE)
    client.log_artifact(run.run_id, str(tmp_path / "model.bin"))  # the retry
    retried = client.download_artifacts(run.run_id, "model.bin", str(tmp_path / "retried"))

    assert Path(retried).read_bytes() == b"3" * SIZE
