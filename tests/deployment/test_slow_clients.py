"""Slow clients stop nobody (mlflow_bridge/workers.py), live on `serve`'s gunicorn: 2 gthread
workers of 4 threads, the defaults `make serve`, the Docker image and compose run.

200 connections that each send one byte and then nothing must not delay a member's request;
the server closes them once HEAD_TIMEOUT passes; an upload that keeps sending, slowly, for
longer than HEAD_TIMEOUT still succeeds. Loopback only; every wait is bounded."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.live import LiveServer, start_live_server, stop

# Gunicorn's sockets, not the database, are under test (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

SLOW_CONNECTIONS = 200
HEAD_TIMEOUT = 10  # the default: the server is run as `make serve` runs it


@pytest.fixture(scope="module")
def server(tmp_path_factory, gitlab) -> Iterator[LiveServer]:
    server, process = start_live_server(
        tmp_path_factory.mktemp("slow"), gitlab.url, workers=2, serve=True
    )
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module")
def member(server, gitlab) -> tuple[str, dict]:
    """(tracking URI, headers) of Dave, Developer of ml/slow/churn."""
    project = gitlab.add_project("ml/slow/churn")
    dave = gitlab.add_user("dave-slow")
    project.direct[dave.id] = 30
    return server.tracking_uri(project.path), {"Authorization": f"Bearer {dave.token}"}


def one_byte_connections(url: str, count: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"G")
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_it_answers_a_member_while_200_connections_send_one_byte_each(server, member):
    uri, headers = member
    sockets = one_byte_connections(server.url, SLOW_CONNECTIONS)
    try:
        search = requests.get(f"{uri}api/2.0/mlflow/experiments/search",
                              params={"max_results": 1}, headers=headers, timeout=20)  # fmt: skip
        health = requests.get(f"{server.url}/healthz", timeout=20)

        assert search.status_code == 200, search.text
        assert health.status_code == 200
        # The server closes them once HEAD_TIMEOUT passes (generous bound: no timing claim).
        assert closed_by_server(sockets[0], within=HEAD_TIMEOUT + 20)
        assert all(closed_by_server(sock, within=5) for sock in sockets[1:])
    finally:
        for sock in sockets:
            sock.close()


def test_it_lets_an_upload_that_keeps_sending_take_longer_than_the_head_timeout(server, member):
    uri, headers = member
    experiment_id = requests.post(
        f"{uri}api/2.0/mlflow/experiments/create",
        headers=headers,
        json={"name": "slow-upload"},
        timeout=20,
    ).json()["experiment_id"]
    run = requests.post(f"{uri}api/2.0/mlflow/runs/create", headers=headers, timeout=20,
                        json={"experiment_id": experiment_id}).json()["run"]["info"]  # fmt: skip
    chunks = [b"x" * 100] * (HEAD_TIMEOUT + 3)
    path = f"{experiment_id}/{run['run_id']}/artifacts/slow.bin"
    url = urlsplit(f"{uri}api/2.0/mlflow-artifacts/artifacts/{path}")

    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.putrequest("PUT", url.path)
        for name, value in {**headers, "Content-Length": str(sum(map(len, chunks)))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for chunk in chunks:  # one chunk a second: longer, in all, than HEAD_TIMEOUT
            connection.send(chunk)
            time.sleep(1)
        put = connection.getresponse()
        put_status, put_body = put.status, put.read()
    finally:
        connection.close()
    read = requests.get(url.geturl(), headers=headers, timeout=20)

    assert put_status == 200, put_body
    assert read.content == b"".join(chunks)


def answers(sock: socket.socket, count: int) -> list[bytes]:
    """The status lines of `count` whole answers read from `sock` (bounded by its timeout)."""
    data = b""
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def test_it_still_serves_kept_alive_requests_and_refuses_huge_heads(server):
    host, port = server.url.removeprefix("http://").split(":")
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(request)
        first = answers(sock, 1)
        sock.sendall(request[:10])  # the same connection, kept alive, its head in two parts
        time.sleep(0.5)
        sock.sendall(request[10:])
        second = answers(sock, 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"x" * 70_000)
        huge = answers(sock, 1)

    assert first == [b"HTTP/1.1 200 OK"]
    assert second == [b"HTTP/1.1 200 OK"]
    assert huge == [b"HTTP/1.1 431 Request Header Fields Too Large"]


def test_it_reads_past_a_body_the_application_left_unread_on_a_kept_alive_connection(
    server, member
):
    """A refused upload (401 here, 413 beyond the quota) leaves its body unread; the client
    has sent it all, as the stock client does, and asks again on the same connection."""
    uri, _ = member
    host, port = server.url.removeprefix("http://").split(":")
    path = urlsplit(uri).path + "api/2.0/mlflow-artifacts/artifacts/run/big.bin"
    body = b"x" * 300_000
    upload = (f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
              ).encode() + body  # fmt: skip
    health = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(upload)
        refused = answers(sock, 1)
        sock.sendall(health)
        then = answers(sock, 1)

    assert refused == [b"HTTP/1.1 401 Unauthorized"]
    assert then == [b"HTTP/1.1 200 OK"]
