"""Answers and errors carried from the triggerer to the worker, and judged there."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.exceptions import ApiResponseError, JwtBearerError, KeystoreError
from airflow_jwt_provider.http.response import check_status, response_body
from airflow_jwt_provider.http.wire import (
    build_response,
    error_event,
    response_from_event,
    response_from_wire,
    response_to_wire,
)


def wire(status: int = 200, body: bytes = b'{"state": "done"}', **headers: str) -> dict:
    return response_to_wire(
        build_response(
            status=status,
            reason="OK",
            headers={"Content-Type": "application/json", **headers},
            url="https://api.example.com/v1/jobs/1?x=1",
            method="GET",
            body=body,
            encoding="utf-8",
        )
    )


def test_wire_round_trip_gives_a_requests_response() -> None:
    response = response_from_wire(wire(201, b'{"a": 1}', **{"Retry-After": "3"}))
    assert (response.status_code, response.json(), response.headers["retry-after"]) == (201, {"a": 1}, "3")
    assert (response.request.method, response.request.url) == ("GET", "https://api.example.com/v1/jobs/1?x=1")
    assert response_body(response_from_wire(wire(204, b""))) is None
    assert response_body(response_from_wire(wire(200, b"plain"))) == "plain"


def test_check_status_names_the_request() -> None:
    check_status(response_from_wire(wire(201)), None)
    check_status(response_from_wire(wire(404)), [404])
    with pytest.raises(ApiResponseError, match=r"GET https://api.example.com/v1/jobs/1 failed: HTTP 500") as raised:
        check_status(response_from_wire(wire(500, b"boom")), None)
    assert raised.value.status == 500
    with pytest.raises(
        ApiResponseError, match=r"answered HTTP 201 OK, which is not one of the accepted statuses \[200\]"
    ):
        check_status(response_from_wire(wire(201)), [200])


def test_events_carry_answers_and_errors() -> None:
    assert response_from_event({"status": "success", "response": wire()}).json() == {"state": "done"}
    with pytest.raises(KeystoreError, match="The trigger failed: bad password"):
        response_from_event(error_event(KeystoreError("bad password")))
    with pytest.raises(JwtBearerError, match="The trigger failed: TimeoutError: slow"):
        response_from_event(error_event(TimeoutError("slow")))
