"""One retry policy for every request the provider sends: token requests and API calls, sync and async.

Why one: a token request and an API call fail the same ways (a connection error, a 429 from a
rate limiter, a 503 from a gateway), and servers say how long to wait the same way
(``Retry-After``, RFC 9110 §10.2.3, as seconds or as an HTTP date). The decision ("retry? after
how long?") lives here; the loops that act on it (the token client, the sync hook, the async
hook) only sleep and send again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

from airflow_jwt_provider.common.telemetry import TELEMETRY, RequestTarget, RetryCause
from airflow_jwt_provider.exceptions import JwtBearerConfigError

#: Methods that may be re-sent after a 5xx or a broken connection (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Statuses that mean "not processed, come back later" whatever the method.
NOT_PROCESSED_STATUSES = frozenset({429, 503})


class RetryLog(Protocol):
    """Where retries are reported: a ``logging.Logger`` (token client) or a hook's or trigger's ``self.log``."""

    def warning(self, msg: str, /, *args: Any) -> object: ...


class Answer(Protocol):
    """What the retry loop reads of an answer (a ``requests.Response`` on every path)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def close(self) -> None: ...


AnswerT = TypeVar("AnswerT", bound=Answer)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before re-sending a request that failed in a retryable way.

    * 429 and 503 mean the request was not processed and are retried for every method;
      other 5xx answers and connection errors only for idempotent methods, unless
      ``retry_non_idempotent`` (a POST that got a 500 may have been applied). A token
      request may always be retried: each attempt carries a new assertion.
    * ``Retry-After`` (seconds or an HTTP date) is honoured. When the server asks for more
      than ``max_wait``, the request is not retried: the caller gets the server's answer and
      Airflow's own task retries (``retries``/``retry_delay``) take over, rather than the task
      sleeping in a worker slot for an unbounded time.
    * Without ``Retry-After``: ``backoff`` seconds, doubling each retry, capped at ``max_wait``.

    :param max_attempts: sends of one request in all, the first included (1 = no retry).
    """

    max_attempts: int = 4
    backoff: float = 1.0
    max_wait: float = 60.0
    retry_non_idempotent: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise JwtBearerConfigError(
                f"retry.max_attempts must be a whole number, at least 1, got {self.max_attempts!r}", field="retry"
            )
        for name in ("backoff", "max_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise JwtBearerConfigError(
                    f"retry.{name} must be a finite number of seconds, not negative, got {value!r}", field="retry"
                )

    @classmethod
    def coerce(cls, value: RetryPolicy | Mapping[str, Any] | bool | None) -> RetryPolicy:
        """Operator argument → policy: ``True``/``None`` default, ``False`` no retry, or a dict."""
        if isinstance(value, RetryPolicy):
            return value
        if value is None or value is True:
            return DEFAULT_RETRY
        if value is False:
            return NO_RETRY
        if isinstance(value, Mapping):
            names = [f.name for f in fields(cls)]
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise JwtBearerConfigError(
                    f"retry has unknown key(s) {', '.join(unknown)}; use {', '.join(names)}", field="retry"
                )
            return cls(**value)
        raise JwtBearerConfigError(
            f"retry must be a RetryPolicy, a dict, True or False, not {type(value).__name__}", field="retry"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def may_resend(self, method: str) -> bool:
        """Whether a request of ``method`` may be sent again after it may have been processed."""
        return method.upper() in IDEMPOTENT_METHODS or self.retry_non_idempotent

    def retryable(self, status: int, method: str) -> bool:
        if status in NOT_PROCESSED_STATUSES:
            return True
        return 500 <= status <= 599 and self.may_resend(method)

    def delay(self, attempt: int, status: int, method: str, retry_after: str | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after answer ``status``; ``None``: keep the answer."""
        if attempt >= self.max_attempts or not self.retryable(status, method):
            return None
        asked = parse_retry_after(retry_after)
        if asked is None:
            return self.backoff_delay(attempt)
        return asked if asked <= self.max_wait else None

    def delay_after_error(self, attempt: int, method: str) -> float | None:
        """Seconds to wait after a connection error or timeout on attempt ``attempt``; ``None``: give up."""
        if attempt >= self.max_attempts or not self.may_resend(method):
            return None
        return self.backoff_delay(attempt)

    def longest(self, timeout: float) -> float:
        """The longest one request can take under this policy: every attempt timing out, every wait the longest."""
        return self.max_attempts * timeout + (self.max_attempts - 1) * self.max_wait

    def backoff_delay(self, attempt: int) -> float:
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_wait))

    def call(
        self,
        send: Callable[[], AnswerT],
        *,
        what: str,
        method: str,
        log: RetryLog,
        transient: tuple[type[BaseException], ...],
        conn_id: str | None = None,
        target: RequestTarget = RequestTarget.API,
    ) -> AnswerT:
        """``send()`` until its answer is final per this policy; the last answer whatever its status.

        An exception of a ``transient`` type (a refused connection, a timeout) is retried like a
        retryable answer, or raised when the policy says stop. A retried answer is closed. Each retry
        is counted by cause for ``conn_id``'s ``target`` (:mod:`~airflow_jwt_provider.common.telemetry`).
        """
        attempts = self.start(what, method, log, conn_id=conn_id, target=target)
        while True:
            try:
                answer = send()
            except transient as exc:
                wait = attempts.after_error(exc)
                if wait is None:
                    raise
            else:
                wait = attempts.after_answer(answer.status_code, answer.headers.get("Retry-After"))
                if wait is None:
                    return answer
                answer.close()
            time.sleep(wait)

    async def acall(
        self,
        send: Callable[[], Awaitable[AnswerT]],
        *,
        what: str,
        method: str,
        log: RetryLog,
        transient: tuple[type[BaseException], ...],
        conn_id: str | None = None,
        target: RequestTarget = RequestTarget.API,
    ) -> AnswerT:
        """:meth:`call` for a coroutine ``send``: the waits are ``asyncio.sleep``, the event loop keeps running."""
        attempts = self.start(what, method, log, conn_id=conn_id, target=target)
        while True:
            try:
                answer = await send()
            except transient as exc:
                wait = attempts.after_error(exc)
                if wait is None:
                    raise
            else:
                wait = attempts.after_answer(answer.status_code, answer.headers.get("Retry-After"))
                if wait is None:
                    return answer
                answer.close()
            await asyncio.sleep(wait)

    def start(
        self,
        what: str,
        method: str,
        log: RetryLog,
        *,
        conn_id: str | None = None,
        target: RequestTarget = RequestTarget.API,
    ) -> RetryState:
        """The state of one request's attempts; the sender's loop asks it after each attempt."""
        return RetryState(self, what, method.upper(), log, conn_id=conn_id, target=target)


class RetryState:
    """Counts the attempts of one request and says, after each, how long to wait before the next.

    Every sending loop (token client, sync hook, async hook) is the same few lines around it:
    send; on an answer ask :meth:`after_answer`, on a connection error :meth:`after_error`;
    ``None`` means stop (return the answer, or raise the error); else sleep that long.
    Each retry is logged here, in the same words on every path.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        method: str,
        log: RetryLog,
        *,
        conn_id: str | None = None,
        target: RequestTarget = RequestTarget.API,
    ) -> None:
        self.policy = policy
        self.what = what
        self.method = method
        self.log = log
        self.conn_id = conn_id
        self.target = target
        self.attempt = 1

    def after_answer(self, status: int, retry_after: str | None) -> float | None:
        wait = self.policy.delay(self.attempt, status, self.method, retry_after)
        cause = RetryCause.HTTP_429 if status == 429 else RetryCause.HTTP_5XX
        return self._next(wait, f"answered HTTP {status}", cause)

    def after_error(self, error: BaseException) -> float | None:
        wait = self.policy.delay_after_error(self.attempt, self.method)
        return self._next(wait, f"failed ({error})", RetryCause.CONNECTION_ERROR)

    def _next(self, wait: float | None, problem: str, cause: RetryCause) -> float | None:
        if wait is not None:
            TELEMETRY.retried(self.conn_id, self.target, cause)
            self.log.warning(
                "%s %s; retrying in %.1f s (attempt %d of %d)",
                self.what,
                problem,
                wait,
                self.attempt + 1,
                self.policy.max_attempts,
            )
            self.attempt += 1
        return wait


#: The policy of ``retry=True`` (and of operators by default), and of ``retry=False``.
DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
#: Token requests: a few quick attempts, each with a new assertion (never the same ``jti``).
TOKEN_REQUEST_RETRY = RetryPolicy(max_attempts=3, backoff=0.5, max_wait=30.0, retry_non_idempotent=True)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (RFC 9110 §5.6.7) as an aware UTC datetime; ``None`` if absent or invalid."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date); ``None`` if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
