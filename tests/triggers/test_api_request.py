"""The request description, retry rules and wire format shared by the operator, sensor and trigger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_jwt_provider.exceptions import ApiResponseError, JwtBearerConfigError, JwtBearerError, KeystoreError
from airflow_jwt_provider.triggers.api_request import (
    DONE,
    FAIL,
    WAIT,
    ApiRequest,
    PollSpec,
    RetryPolicy,
    callable_path,
    check_status,
    error_event,
    json_contains,
    parse_retry_after,
    response_body,
    response_from_event,
    response_from_wire,
    response_to_wire,
)
from tests.e2e.checks import job_is_done


def wire(status: int = 200, body: bytes = b'{"state": "done"}', **headers: str) -> dict:
    return response_to_wire(
        status=status,
        reason="OK",
        headers={"Content-Type": "application/json", **headers},
        url="https://api.example.com/v1/jobs/1?x=1",
        method="GET",
        body=body,
        encoding="utf-8",
    )


# -------------------------------------------------------------------------- ApiRequest


def test_pagination_changes_merge_dicts_and_replace_the_rest() -> None:
    first = ApiRequest(endpoint="items", query={"per_page": 5}, headers={"A": "1"}, subject="bob")
    second = first.with_changes({"query": {"page": 2}, "headers": {"B": "2"}})
    assert second == ApiRequest(
        endpoint="items", query={"per_page": 5, "page": 2}, headers={"A": "1", "B": "2"}, subject="bob"
    )
    assert first.with_changes({"endpoint": "https://next.example.com/p2", "query": None}).query is None
    assert ApiRequest(method="POST", data="x").with_changes({"json": {"a": 1}}) == ApiRequest(
        method="POST", json={"a": 1}
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"params": {}}, "unknown key"), (["page", 2], "must return a dict")],
)
def test_pagination_changes_are_checked(changes: object, message: str) -> None:
    with pytest.raises(JwtBearerConfigError, match=message):
        ApiRequest(endpoint="items").with_changes(changes)  # type: ignore[arg-type]


def test_request_normalises_method_and_get_data() -> None:
    assert ApiRequest(method="get", data={"page": 2}) == ApiRequest(method="GET", query={"page": 2})
    with pytest.raises(JwtBearerConfigError, match="json and data"):
        ApiRequest(method="POST", json={}, data="x")
    assert ApiRequest.from_dict(ApiRequest(endpoint="e", claims={"c": 1}).to_dict()) == ApiRequest(
        endpoint="e", claims={"c": 1}
    )


# -------------------------------------------------------------------------- RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "status", "method", "retry_after", "expected"),
    [
        (1, 429, "POST", "2", 2.0),  # Retry-After honoured, any method
        (1, 503, "GET", None, 1.0),  # backoff...
        (2, 503, "GET", None, 2.0),  # ...doubling
        (3, 502, "GET", None, 4.0),
        (4, 503, "GET", None, None),  # attempts exhausted
        (1, 500, "POST", None, None),  # may have been applied
        (1, 429, "GET", "61", None),  # beyond max_wait: give up
        (1, 404, "GET", None, None),  # not retryable
    ],
)
def test_retry_delay(attempt: int, status: int, method: str, retry_after: str | None, expected: float | None) -> None:
    policy = RetryPolicy(max_attempts=4, backoff=1.0, max_wait=60.0)
    assert policy.delay(attempt, status, method, retry_after) == expected


def test_backoff_is_capped_and_non_idempotent_retries_are_opt_in() -> None:
    assert RetryPolicy(max_attempts=10, backoff=1, max_wait=5).delay(8, 502, "GET", None) == 5
    assert RetryPolicy(retry_non_idempotent=True).delay(1, 500, "POST", None) == 1.0


def test_retry_argument_forms() -> None:
    assert RetryPolicy.coerce(None) == RetryPolicy.coerce(True) == RetryPolicy()
    assert RetryPolicy.coerce(False).max_attempts == 1
    assert RetryPolicy.coerce({"max_wait": 5}) == RetryPolicy(max_wait=5)
    with pytest.raises(JwtBearerConfigError, match="unknown key"):
        RetryPolicy.coerce({"attempts": 3})
    with pytest.raises(JwtBearerConfigError, match="at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(JwtBearerConfigError, match="RetryPolicy, a dict"):
        RetryPolicy.coerce(3)  # type: ignore[arg-type]


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# -------------------------------------------------------------------------- answers


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


def test_json_contains_and_poll_outcome() -> None:
    body = {"state": "done", "result": {"code": 0}}
    assert json_contains(body, {"state": "done", "result.code": 0})
    assert not json_contains(body, {"result.missing": None})
    assert not json_contains("text", {"state": "done"})
    spec = PollSpec(interval=1, expected_json={"state": "done"})
    assert spec.outcome(response_from_wire(wire())) == DONE
    assert spec.outcome(response_from_wire(wire(body=b'{"state": "running"}'))) == WAIT
    assert spec.outcome(response_from_wire(wire(404))) == WAIT
    assert spec.outcome(response_from_wire(wire(500))) == FAIL
    assert spec.outcome(response_from_wire(wire()), lambda response: False) == WAIT
    assert PollSpec.from_dict(spec.to_dict()) == spec


def test_callable_path_accepts_importable_functions_only() -> None:
    assert callable_path(job_is_done) == "tests.e2e.checks.job_is_done"
    assert callable_path("any.dotted.path") == "any.dotted.path"

    def nested(response: object) -> bool:
        return True

    for func in (nested, lambda response: True):
        with pytest.raises(JwtBearerConfigError, match="cannot run in the triggerer"):
            callable_path(func)
