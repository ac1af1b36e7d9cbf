"""RetryPolicy: one policy for token requests and API calls, sync and async."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.retry import RetryPolicy, parse_retry_after


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
