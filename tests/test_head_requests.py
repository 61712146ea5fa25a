"""An answer to HEAD leaves with headers only, whatever made it."""

from __future__ import annotations

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from sharinghub_mlflow.head_requests import HeadWithoutBodyMiddleware

BODY = b'{"error_code": "PERMISSION_DENIED", "message": "no"}'


def answer_with(response):
    return HeadWithoutBodyMiddleware(lambda request: response)


def test_it_drops_the_body_of_a_head_answer_and_keeps_its_length():
    response = answer_with(HttpResponse(BODY, status=403))(RequestFactory().head("/x"))

    assert response.status_code == 403
    assert response.content == b""
    assert response["Content-Length"] == str(len(BODY))


@pytest.mark.django_db  # a response's close() ends the request: Django closes old connections
def test_it_drops_a_streamed_head_answer_which_the_server_still_closes():
    closed = []

    class Stream:
        def __iter__(self):
            yield BODY

        def close(self):
            closed.append(True)

    response = answer_with(StreamingHttpResponse(Stream()))(RequestFactory().head("/x"))

    assert b"".join(response.streaming_content) == b""
    response.close()  # as the WSGI server does
    assert closed == [True]


def test_it_leaves_other_methods_alone():
    response = answer_with(HttpResponse(BODY))(RequestFactory().get("/x"))

    assert response.content == BODY
