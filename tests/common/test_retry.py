"""RetryPolicy: one policy for token requests and API calls, sync and async."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_jwt_provider.common.retry import RetryPolicy, parse_retry_after
from airflow_jwt_provider.exceptions import JwtBearerConfigError


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


# --------------------------------------------------------------------------- RetryState: one request's attempts

LOG = logging.getLogger("tests.retry_state")


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_attempts_are_counted_and_each_retry_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    state = RetryPolicy(max_attempts=3, backoff=1.0).start("GET items", "get", LOG)
    assert (state.method, state.attempt) == ("GET", 1)

    assert state.after_answer(503, None) == 1.0
    assert state.attempt == 2
    assert state.after_answer(503, None) == 2.0
    assert state.attempt == 3
    assert state.after_answer(503, None) is None  # the third answer is the last
    assert state.attempt == 3

    assert retry_lines(caplog) == [
        "GET items answered HTTP 503; retrying in 1.0 s (attempt 2 of 3)",
        "GET items answered HTTP 503; retrying in 2.0 s (attempt 3 of 3)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOG.name)


def test_a_final_answer_is_neither_retried_nor_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    state = RetryPolicy().start("POST results", "POST", LOG)
    for status in (200, 201, 400, 401, 404):
        assert state.after_answer(status, "1") is None
    assert state.after_answer(500, None) is None  # a POST that got a 500 may have been applied
    assert state.attempt == 1
    assert retry_lines(caplog) == []


def test_after_error_only_for_idempotent_methods(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    error = ConnectionError("connection refused")
    for method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
        assert RetryPolicy(backoff=0.5).start(f"{method} x", method, LOG).after_error(error) == 0.5
    for method in ("POST", "PATCH"):
        assert RetryPolicy(backoff=0.5).start(f"{method} x", method, LOG).after_error(error) is None
        opted_in = RetryPolicy(backoff=0.5, retry_non_idempotent=True).start(f"{method} x", method, LOG)
        assert opted_in.after_error(error) == 0.5
    lines = retry_lines(caplog)
    assert len(lines) == 7
    assert lines[0] == "GET x failed (connection refused); retrying in 0.5 s (attempt 2 of 4)"
    assert not any(line.startswith(("POST x failed", "PATCH x failed")) for line in lines[:5])


def test_after_error_gives_up_when_attempts_are_spent() -> None:
    state = RetryPolicy(max_attempts=2, backoff=0.25).start("GET x", "GET", LOG)
    assert state.after_error(TimeoutError("slow")) == 0.25
    assert state.after_error(TimeoutError("slow")) is None
    assert state.attempt == 2
    assert RetryPolicy(max_attempts=1).start("GET x", "GET", LOG).after_error(OSError("x")) is None


def test_answers_and_errors_share_one_attempt_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    state = RetryPolicy(max_attempts=3, backoff=0.1).start("GET x", "GET", LOG)
    assert state.after_error(OSError("reset")) == pytest.approx(0.1)
    assert state.after_answer(503, None) == pytest.approx(0.2)
    assert state.after_error(OSError("reset")) is None
    assert [line.rsplit("(", 1)[1] for line in retry_lines(caplog)] == ["attempt 2 of 3)", "attempt 3 of 3)"]


def test_retry_after_as_an_http_date() -> None:
    state = RetryPolicy(max_wait=60).start("GET x", "GET", LOG)
    in_five_seconds = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=5), usegmt=True)
    wait = state.after_answer(503, in_five_seconds)
    assert wait is not None
    assert 3.0 <= wait <= 5.0
    past = format_datetime(datetime.now(timezone.utc) - timedelta(minutes=5), usegmt=True)
    assert state.after_answer(429, past) == 0.0  # already due: send again at once


def test_retry_after_beyond_max_wait_keeps_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    policy = RetryPolicy(max_attempts=5, backoff=1, max_wait=10)
    assert policy.start("GET x", "GET", LOG).after_answer(429, "10") == 10.0
    state = policy.start("GET x", "GET", LOG)
    assert state.after_answer(429, "11") is None
    in_an_hour = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    assert state.after_answer(503, in_an_hour) is None
    assert state.attempt == 1
    assert retry_lines(caplog) == ["GET x answered HTTP 429; retrying in 10.0 s (attempt 2 of 5)"]
    # without Retry-After the backoff is capped at max_wait rather than refused
    assert RetryPolicy(max_attempts=10, backoff=4, max_wait=10).delay(5, 503, "GET", None) == 10.0


@pytest.mark.parametrize("value", ["-5", "1.5", "nan", "inf", "", "  ", "5 s", "٣"])
def test_unusable_retry_after_falls_back_to_the_backoff(value: str) -> None:
    assert parse_retry_after(value) is None
    assert RetryPolicy(backoff=0.75).start("GET x", "GET", LOG).after_answer(503, value) == 0.75


def test_retry_after_seconds_with_spaces() -> None:
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("0") == 0.0


@pytest.mark.parametrize("name", ["backoff", "max_wait"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -1, -0.5, True, "1", None])
def test_non_finite_or_negative_waits_are_refused(name: str, value: object) -> None:
    with pytest.raises(JwtBearerConfigError, match=rf"retry\.{name} must be a finite number of seconds") as info:
        RetryPolicy(**{name: value})  # type: ignore[arg-type]
    assert info.value.field == "retry"


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_max_attempts_must_be_a_whole_number_from_one(value: object) -> None:
    with pytest.raises(JwtBearerConfigError, match=r"retry\.max_attempts must be a whole number") as info:
        RetryPolicy(max_attempts=value)  # type: ignore[arg-type]
    assert info.value.field == "retry"


def test_zero_waits_are_allowed() -> None:
    policy = RetryPolicy(backoff=0, max_wait=0)
    assert policy.delay(1, 503, "GET", None) == 0.0
    assert policy.delay(1, 503, "GET", "1") is None  # the server asks for more than max_wait


def test_the_token_client_logs_retries_in_the_same_words(
    credentials_for: Callable[..., Any], auth_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_jwt_provider.tokens.endpoint")
    auth_server.fail_next("/oauth2/token", 503)
    assert credentials_for().get_token().valid
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_jwt_provider.tokens.endpoint"]
    assert lines == [f"Token endpoint {auth_server.token_url} answered HTTP 503; retrying in 0.5 s (attempt 2 of 3)"]
