"""What the operator, the sensor and the trigger share: the request, the retry rules, the answer.

The operator and the sensor run on a worker with ``requests``; the trigger runs in the
triggerer with ``aiohttp``. Everything that must behave the same on both sides lives here,
once, so that a deferred task and a synchronous one send the same request, retry the same
way, and judge the answer by the same rules:

* :class:`ApiRequest` describes one API call (and how ``pagination_function`` changes it).
  It is also what the trigger's serialized kwargs carry, so it holds no secret: the token is
  fetched where the request is sent.
* :class:`RetryPolicy` decides whether a 429/5xx answer is retried, and after how long.
* :class:`PollSpec` is what the deferrable sensor hands the trigger to decide "done".
* :func:`response_to_wire` / :func:`response_from_wire` carry an answer from the triggerer
  back to the worker as a JSON-able dict, rebuilt there as a ``requests.Response`` so that
  ``response_check`` and friends see the same object type in every mode.
* :func:`send_with_retries` is the synchronous sender.

It lives in the ``triggers`` package because the trigger is the lowest layer: the triggerer
imports it without importing operator modules.
"""

from __future__ import annotations

import base64
import importlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from requests.structures import CaseInsensitiveDict

from airflow_jwt_provider.exceptions import (
    ApiResponseError,
    JwtBearerConfigError,
    JwtBearerError,
    KeystoreError,
    TokenEndpointError,
)

if TYPE_CHECKING:
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

#: Methods that may be re-sent after a 5xx (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Statuses that mean "not processed, come back later" whatever the method.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: Keys a ``pagination_function`` may return.
PAGINATION_KEYS = ("endpoint", "query", "json", "data", "headers")
_BODY_LOG_EXCERPT = 1000
#: Outcomes of one poll (:meth:`PollSpec.outcome`).
WAIT, DONE, FAIL = "wait", "done", "fail"


#: Provider errors a trigger event can name, raised again as themselves on the worker.
_EVENT_ERRORS: dict[str, type[JwtBearerError]] = {
    cls.__name__: cls for cls in (JwtBearerConfigError, KeystoreError, TokenEndpointError)
}


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class ApiRequest:
    """One API call: everything but the token, which is added when it is sent.

    ``subject``, ``scope`` and ``claims`` select the token (impersonation), the others the
    HTTP request. ``query`` becomes the URL's query string.
    """

    endpoint: str | None = None
    method: str = "GET"
    query: Mapping[str, Any] | None = None
    json: Any = None
    data: Any = None
    headers: Mapping[str, str] | None = None
    subject: str | None = None
    scope: str | None = None
    claims: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", (self.method or "GET").upper())
        if self.json is not None and self.data is not None:
            raise JwtBearerConfigError("json and data are both set; send one body only", field="json")
        if self.method in ("GET", "HEAD") and self.query is None and isinstance(self.data, Mapping):
            # HttpHook sends a GET's data as the query string; done here so aiohttp does the same.
            object.__setattr__(self, "query", self.data)
            object.__setattr__(self, "data", None)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (trigger kwargs); ``None`` fields are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ApiRequest:
        return cls(**values)

    def with_changes(self, changes: Mapping[str, Any]) -> ApiRequest:
        """The next page's request: ``pagination_function``'s answer applied to this one.

        ``HttpOperator`` semantics: a dict merges into a dict (its items win), anything else
        replaces. ``json`` replaces ``data`` and the other way round.
        """
        if not isinstance(changes, Mapping):
            raise JwtBearerConfigError(
                f"pagination_function must return a dict (or None to stop), got {type(changes).__name__}",
                field="pagination_function",
            )
        unknown = sorted(set(changes) - set(PAGINATION_KEYS))
        if unknown:
            raise JwtBearerConfigError(
                f"pagination_function returned unknown key(s) {', '.join(unknown)}; use {', '.join(PAGINATION_KEYS)}",
                field="pagination_function",
            )
        merged: dict[str, Any] = {}
        for key, value in changes.items():
            current = getattr(self, key)
            merged[key] = {**current, **value} if isinstance(current, Mapping) and isinstance(value, Mapping) else value
        if "json" in merged and "data" not in merged:
            merged["data"] = None
        if "data" in merged and "json" not in merged:
            merged["json"] = None
        return replace(self, **merged)

    def describe(self) -> str:
        """``GET items``: method and endpoint, without query string or body, for log lines."""
        return f"{self.method} {self.endpoint or ''}"


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before re-sending a request that got 429 or 5xx.

    * ``Retry-After`` (seconds or an HTTP date) is honoured. When the server asks for more
      than ``max_wait``, the request is not retried: the task fails with the server's answer
      and Airflow's own task retries (``retries``/``retry_delay``) take over, rather than the
      task sleeping in a worker slot for an unbounded time.
    * Without ``Retry-After``: ``backoff`` seconds, doubling each retry, capped at ``max_wait``.
    * 429 and 503 mean the request was not processed and are retried for every method;
      other 5xx only for idempotent methods, unless ``retry_non_idempotent`` (a POST that
      got a 500 may have been applied).

    :param max_attempts: sends of one request in all, the first included (1 = no retry).
    """

    max_attempts: int = 4
    backoff: float = 1.0
    max_wait: float = 60.0
    retry_non_idempotent: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise JwtBearerConfigError("retry.max_attempts must be at least 1", field="retry")
        if self.backoff < 0 or self.max_wait < 0:
            raise JwtBearerConfigError("retry.backoff and retry.max_wait must not be negative", field="retry")

    @classmethod
    def coerce(cls, value: RetryPolicy | Mapping[str, Any] | bool | None) -> RetryPolicy:
        """Operator argument → policy: ``True``/``None`` default, ``False`` no retry, or a dict."""
        if isinstance(value, RetryPolicy):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(max_attempts=1)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise JwtBearerConfigError(
                    f"retry has unknown key(s) {', '.join(unknown)}; use {', '.join(f.name for f in fields(cls))}",
                    field="retry",
                )
            return cls(**value)
        raise JwtBearerConfigError(
            f"retry must be a RetryPolicy, a dict, True or False, not {type(value).__name__}", field="retry"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def retryable(self, status: int, method: str) -> bool:
        if status in NOT_PROCESSED_STATUSES:
            return True
        return 500 <= status <= 599 and (method.upper() in IDEMPOTENT_METHODS or self.retry_non_idempotent)

    def delay(self, attempt: int, status: int, method: str, retry_after: str | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to stop and keep the answer."""
        if attempt >= self.max_attempts or not self.retryable(status, method):
            return None
        asked = parse_retry_after(retry_after)
        if asked is None:
            return min(self.backoff * 2 ** (attempt - 1), self.max_wait)
        return asked if asked <= self.max_wait else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3: delay-seconds or an HTTP date); ``None`` if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def send_with_retries(hook: JwtBearerHook, request: ApiRequest, retry: RetryPolicy, log: Any) -> requests.Response:
    """Send ``request`` through ``hook`` (bearer token; one refresh and re-send on 401), retrying per ``retry``.

    Returns the last answer whatever its status: judging it is the caller's business.
    """
    attempt = 1
    while True:
        response = hook.run(
            request.endpoint,
            data=request.data,
            headers=request.headers,
            method=request.method,
            params=request.query,
            json=request.json,
            subject=request.subject,
            scope=request.scope,
            claims=request.claims,
            check_response=False,
        )
        wait = retry.delay(attempt, response.status_code, request.method, response.headers.get("Retry-After"))
        if wait is None:
            return response
        log_retry(log, request, response.status_code, attempt, retry, wait)
        response.close()
        time.sleep(wait)
        attempt += 1


def log_retry(log: Any, request: ApiRequest, status: int, attempt: int, retry: RetryPolicy, wait: float) -> None:
    log.warning(
        "%s answered HTTP %s; retrying in %.1f s (attempt %d of %d)",
        request.describe(),
        status,
        wait,
        attempt + 1,
        retry.max_attempts,
    )


# --------------------------------------------------------------------------- polling


@dataclass(frozen=True)
class PollSpec:
    """How the sensor tells "not yet" from "done": on the worker when it pokes, in the trigger when deferred.

    Each poll: a status in ``waiting_statuses`` means not yet; a status that is not accepted
    ends the wait (the worker then fails the task with the answer); an accepted answer is done
    when its JSON contains ``expected_json`` and ``response_check`` (a dotted import path,
    resolved in the triggerer) returns true.
    """

    interval: float
    waiting_statuses: tuple[int, ...] = (404,)
    accepted_statuses: tuple[int, ...] | None = None
    expected_json: Mapping[str, Any] | None = None
    response_check: str | None = None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["waiting_statuses"] = list(self.waiting_statuses)
        if self.accepted_statuses is not None:
            values["accepted_statuses"] = list(self.accepted_statuses)
        return values

    def outcome(self, response: requests.Response, check: Callable[[requests.Response], Any] | None = None) -> str:
        """:data:`WAIT`, :data:`DONE`, or :data:`FAIL` (a status that is neither waiting nor accepted)."""
        if response.status_code in self.waiting_statuses:
            return WAIT
        if not status_accepted(response.status_code, self.accepted_statuses):
            return FAIL
        if not json_contains(response_body(response), self.expected_json):
            return WAIT
        if check is not None and not check(response):
            return WAIT
        return DONE

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PollSpec:
        values = dict(values)
        values["waiting_statuses"] = tuple(values.get("waiting_statuses") or ())
        if values.get("accepted_statuses") is not None:
            values["accepted_statuses"] = tuple(values["accepted_statuses"])
        return cls(**values)


# --------------------------------------------------------------------------- answers


def response_to_wire(
    *,
    status: int,
    reason: str | None,
    headers: Mapping[str, str],
    url: str,
    method: str,
    body: bytes,
    encoding: str | None,
) -> dict[str, Any]:
    """A JSON-able answer for a trigger event. The request's headers (the token) are not in it."""
    return {
        "status": status,
        "reason": reason or "",
        "headers": dict(headers),
        "url": url,
        "method": method,
        "body": base64.b64encode(body).decode("ascii"),
        "encoding": encoding,
    }


def response_from_wire(wire: Mapping[str, Any]) -> requests.Response:
    """Rebuild a ``requests.Response`` (with a ``request`` naming method and URL) from the wire form."""
    response = requests.Response()
    response.status_code = int(wire["status"])
    response.reason = wire.get("reason") or ""
    response.headers = CaseInsensitiveDict(wire.get("headers") or {})
    response.url = wire.get("url") or ""
    response._content = base64.b64decode(wire.get("body") or "")
    response.encoding = wire.get("encoding")
    response.request = requests.Request(wire.get("method") or "GET", response.url or "http://unknown/").prepare()
    return response


def success_event(wire: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": "success", "response": dict(wire)}


def error_event(exc: BaseException) -> dict[str, Any]:
    """A trigger failure as an event; the message is redacted (provider errors carry no secret anyway)."""
    from airflow.sdk.log import redact

    return {"status": "error", "error_type": type(exc).__name__, "message": str(redact(str(exc)))}


def response_from_event(event: Mapping[str, Any]) -> requests.Response:
    """The answer a trigger event carries, or the trigger's error raised again on the worker."""
    if event.get("status") == "success":
        return response_from_wire(event["response"])
    error_type = event.get("error_type") or "Error"
    error_class = _EVENT_ERRORS.get(error_type, JwtBearerError)
    message = event.get("message") or "no message"
    if error_class is JwtBearerError:
        message = f"{error_type}: {message}"
    raise error_class(f"The trigger failed: {message}")


def status_accepted(status: int, accepted: Collection[int] | None) -> bool:
    """``accepted`` if given, else every status below 400."""
    return status in accepted if accepted else status < 400


def check_status(response: requests.Response, accepted: Collection[int] | None) -> None:
    """Raise :class:`ApiResponseError` (naming method, URL and status) for an unaccepted answer."""
    if status_accepted(response.status_code, accepted):
        return
    if response.status_code >= 400:
        from airflow_jwt_provider.hooks.jwt_bearer import raise_for_status

        raise_for_status(response)
    request = response.request
    url = (response.url or "").split("?", 1)[0]
    raise ApiResponseError(
        f"{request.method if request else ''} {url} answered HTTP {response.status_code} {response.reason}, "
        f"which is not one of the accepted statuses {sorted(accepted or ())}",
        status=response.status_code,
        response=response,
    )


def response_body(response: requests.Response) -> Any:
    """The answer's JSON if it is JSON, else its text; ``None`` when empty (204)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def body_excerpt(response: requests.Response) -> str:
    """The start of the body, for ``log_response``."""
    text = response.text or ""
    return text if len(text) <= _BODY_LOG_EXCERPT else text[:_BODY_LOG_EXCERPT] + f"... ({len(text)} characters)"


_MISSING = object()


def json_contains(body: Any, expected: Mapping[str, Any] | None) -> bool:
    """Whether ``body[key] == value`` for every item of ``expected``; ``a.b`` reaches into objects."""
    if not expected:
        return True
    for path, wanted in expected.items():
        value: Any = body
        for part in str(path).split("."):
            value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
        if value is _MISSING or value != wanted:
            return False
    return True


# --------------------------------------------------------------------------- callables by path


def callable_path(func: Callable[..., Any] | str) -> str:
    """The dotted import path of ``func``, checked to import back to the same object.

    The triggerer runs no DAG file: a condition it evaluates must be importable from an
    installed module or the plugins folder. Lambdas, nested functions and functions defined
    in a DAG file are refused here, at defer time, with advice, rather than in the triggerer.
    """
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    problem = None
    if not module or "<" in qualname:
        problem = "lambdas and nested functions cannot be imported by the triggerer"
    elif module.startswith("unusual_prefix_") or module == "__main__":
        problem = "functions defined in a DAG file cannot be imported by the triggerer"
    else:
        try:
            found = import_callable(f"{module}.{qualname}")
        except (ImportError, AttributeError):
            found = None
        if found is not func:
            problem = f"{module}.{qualname} does not import back to this function"
    if problem:
        raise JwtBearerConfigError(
            f"response_check {qualname or func!r} cannot run in the triggerer: {problem}. Define it in an "
            "installed module or the plugins folder and pass it (or its dotted path), or use expected_json, "
            "or deferrable=False",
            field="response_check",
        )
    return f"{module}.{qualname}"


def import_callable(path: str) -> Callable[..., Any]:
    """``package.module.function`` (or ``package.module.Class.method``) → the object."""
    module_name, _, attribute = path.rpartition(".")
    parts: list[str] = [attribute]
    while module_name:
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
            continue
        for part in parts:
            target = getattr(target, part)
        return target
    raise ImportError(f"cannot import {path!r}")


__all__ = [
    "DONE",
    "FAIL",
    "PAGINATION_KEYS",
    "WAIT",
    "ApiRequest",
    "PollSpec",
    "RetryPolicy",
    "body_excerpt",
    "callable_path",
    "check_status",
    "error_event",
    "import_callable",
    "json_contains",
    "parse_retry_after",
    "response_body",
    "response_from_event",
    "response_from_wire",
    "response_to_wire",
    "send_with_retries",
    "status_accepted",
    "success_event",
]
