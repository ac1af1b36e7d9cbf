"""``JwtBearerHttpEventTrigger``: an asset watcher that fires once per change of a vendor API's resource.

Airflow 3 schedules a DAG on an ``Asset`` whose ``AssetWatcher`` runs an event trigger in the
triggerer; every event the trigger yields becomes an asset event, and so a DAG run. Airflow 3.3's
triggerer keeps iterating an event trigger for as long as it yields (each event is submitted, the
trigger keeps running), and creates the trigger anew from its serialized arguments whenever it
returns or raises, when the triggerer restarts, or when another triggerer takes it over
(``triggerer_job_runner.update_triggers``: the trigger's row stays while an active DAG watches the
asset, so a finished trigger is "missing" and started again).

So this trigger never returns: it polls, yields an event for each *new* state of the resource for
which the condition holds, and goes on polling. What it fired for is kept outside the trigger
object (:class:`~airflow_jwt_provider.tokens.fired_marks.FiredMarks`: the connection's shared
token store, else the triggerer's memory), under a key derived from its serialized arguments, so a
re-created trigger does not fire again for the state it finds (also after a change of its polling
arguments in the DAG file: the key covers what it watches, not how often).

Requests go through :class:`~airflow_jwt_provider.hooks.jwt_bearer_async.JwtBearerAsyncHook`
(shared token cache, 401 refresh, trusted hosts, retry policy, DPoP). The serialized trigger holds
the connection id and the request description: no token, assertion, proof or key.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import random
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import requests
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_jwt_provider.common.imports import import_callable
from airflow_jwt_provider.common.redaction import redact_text
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.common.seconds import finite_seconds
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.polling import PollOutcome, PollSpec
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.response import response_body
from airflow_jwt_provider.http.watch import (
    AnswerIdentity,
    ConditionKind,
    IdentitySource,
    WatchCondition,
    answer_identity,
)
from airflow_jwt_provider.triggers._hook import async_hook_class

if TYPE_CHECKING:
    from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
    from airflow_jwt_provider.tokens.fired_marks import FiredMarks

CLASSPATH = "airflow_jwt_provider.triggers.event.JwtBearerHttpEventTrigger"
_FIRED_MARKS_MODULE = "airflow_jwt_provider.tokens.fired_marks"
DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_JITTER = 0.1
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
#: What the trigger fired for is remembered this long (a week): a state seen again later fires again.
DEFAULT_STATE_TTL = 7 * 86400.0
MAX_POLL_INTERVAL = 86400.0
MAX_STATE_TTL = 90 * 86400.0
#: An answer's JSON goes into the event (and the asset event's extra) only up to this size.
MAX_EVENT_BODY = 64 * 1024
NOT_MODIFIED = 304
#: How the trigger polls, not what it watches: left out of :attr:`JwtBearerHttpEventTrigger.watch_key`.
_TUNING_ARGUMENTS = frozenset({"poll_interval", "jitter", "max_consecutive_failures", "retry", "state_ttl"})


class WatchEventStatus(Enum):
    """The ``status`` of an event of :class:`JwtBearerHttpEventTrigger`."""

    #: A new state of the resource for which the condition holds.
    CHANGED = "changed"
    #: ``max_consecutive_failures`` polls in a row failed (once per outage); the trigger keeps watching.
    ERROR = "error"


class WatchPollError(Exception):
    """An answer with a status that is neither accepted nor waiting (after the 401 refresh and the retries)."""


class JwtBearerHttpEventTrigger(BaseEventTrigger):
    """Poll an endpoint with the connection's token; fire once per new state for which ``condition`` holds.

    Use it in an ``AssetWatcher`` (``airflow.sdk``) of an asset a DAG is scheduled on::

        export_ready = Asset(
            "vendor_export",
            watchers=[AssetWatcher(name="vendor_export_watcher", trigger=JwtBearerHttpEventTrigger(
                jwt_bearer_conn_id="vendor_api", endpoint="exports/daily",
                condition={"path": "status", "equals": "ready"}, identity_path="export_id",
            ))],
        )

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection.
    :param endpoint: the resource (relative to the connection's Host, or an absolute URL it trusts).
    :param condition: when the resource is ready (see :class:`~airflow_jwt_provider.http.watch.WatchCondition`):
        ``None`` (every new state), an importable function or its dotted path, or
        ``{"path": ..., "equals": ...}`` / ``{"path": ..., "present": true}``.
    :param identity_path: where the answer's JSON names its state (a cursor, ``items.*.id``), used when
        the answer has no ``ETag``; without either, a SHA-256 digest of the body.
    :param query: the URL query. :param headers: more request headers.
    :param subject: :param scope: :param claims: which token (impersonation, scope, claims).
    :param waiting_statuses: statuses that mean "not there yet" (default 404), neither ready nor a failure.
    :param poll_interval: seconds between two polls.
    :param jitter: each pause is ``poll_interval`` times a random factor in ``[1 - jitter, 1 + jitter]``,
        and the first poll waits up to ``jitter * poll_interval``, so watchers started together drift apart.
    :param max_consecutive_failures: failed polls in a row (errors, refused answers) after which one
        ``error`` event is fired; the trigger goes on polling, and fires again only after a success.
    :param retry: :class:`~airflow_jwt_provider.common.retry.RetryPolicy` (or its dict) of each poll.
    :param state_ttl: seconds what the trigger fired for is remembered.
    """

    def __init__(
        self,
        jwt_bearer_conn_id: str,
        endpoint: str,
        *,
        condition: Callable[[requests.Response], Any] | str | Mapping[str, Any] | None = None,
        identity_path: str | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        waiting_statuses: Collection[int] = (404,),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        jitter: float = DEFAULT_JITTER,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = None,
        state_ttl: float = DEFAULT_STATE_TTL,
    ) -> None:
        # BaseTrigger.__init__ is unannotated, and mypy's untyped_calls_exclude does not reach super() calls.
        super().__init__()  # type: ignore[no-untyped-call]
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self.condition = WatchCondition.parse(condition)
        self.identity_path = identity_path or None
        self.request = ApiRequest(
            endpoint=endpoint, query=query, headers=headers, token=TokenParameters.of(subject, scope, claims)
        )
        self.waiting_statuses = tuple(int(status) for status in waiting_statuses)
        self.poll_interval = _bounded("poll_interval", poll_interval, 0.0, MAX_POLL_INTERVAL)
        self.jitter = _bounded("jitter", jitter, 0.0, 1.0, include_low=True, include_high=False)
        if isinstance(max_consecutive_failures, bool) or not isinstance(max_consecutive_failures, int):
            raise JwtBearerConfigError(
                f"max_consecutive_failures must be a whole number, not {max_consecutive_failures!r}",
                field="max_consecutive_failures",
            )
        if max_consecutive_failures < 1:
            raise JwtBearerConfigError(
                f"max_consecutive_failures must be at least 1, not {max_consecutive_failures}",
                field="max_consecutive_failures",
            )
        self.max_consecutive_failures = max_consecutive_failures
        self.retry = RetryPolicy.coerce(retry)
        self.state_ttl = _bounded("state_ttl", state_ttl, self.poll_interval, MAX_STATE_TTL)
        self._poll_spec = PollSpec(interval=self.poll_interval, waiting_statuses=self.waiting_statuses)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        token = self.request.token
        return (
            CLASSPATH,
            {
                "jwt_bearer_conn_id": self.jwt_bearer_conn_id,
                "endpoint": self.request.endpoint,
                "condition": self.condition.to_value(),
                "identity_path": self.identity_path,
                "query": dict(self.request.query) if self.request.query is not None else None,
                "headers": dict(self.request.headers) if self.request.headers is not None else None,
                "subject": token.subject,
                "scope": token.scope,
                "claims": dict(token.claims) if token.claims else None,
                "waiting_statuses": list(self.waiting_statuses),
                "poll_interval": self.poll_interval,
                "jitter": self.jitter,
                "max_consecutive_failures": self.max_consecutive_failures,
                "retry": self.retry.to_dict(),
                "state_ttl": self.state_ttl,
            },
        )

    @property
    def watch_key(self) -> str:
        """What identifies this watcher wherever and whenever it runs: a digest of what it watches.

        The connection, the request, the condition and how states are told apart; not how often or how
        patiently it polls (``poll_interval``, ``jitter``, ``max_consecutive_failures``, ``retry``,
        ``state_ttl``), so that tuning those in the DAG file does not fire again for the current state.
        """
        _, kwargs = self.serialize()
        watched = {name: value for name, value in kwargs.items() if name not in _TUNING_ARGUMENTS}
        text = json.dumps([CLASSPATH, watched], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def describe(self) -> str:
        """How log lines name this watcher (no query, no secret)."""
        return f"{self.request.describe()} on {self.jwt_bearer_conn_id!r}"

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook_class = await async_hook_class()
        async with hook_class(self.jwt_bearer_conn_id) as hook:
            watch = _Watch(self, hook)
            await asyncio.sleep(self.poll_interval * self.jitter * random.random())
            while True:
                payload = await watch.poll()
                if payload is not None:
                    yield TriggerEvent(payload)
                await asyncio.sleep(self.next_pause())

    def next_pause(self) -> float:
        """``poll_interval`` spread by ``jitter``."""
        return self.poll_interval * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


class _Watch:
    """One running trigger's state: the imported condition, the marks, the failure streak."""

    def __init__(self, trigger: JwtBearerHttpEventTrigger, hook: JwtBearerAsyncHook) -> None:
        self.trigger = trigger
        self.hook = hook
        self.log = trigger.log
        self.check: Callable[[requests.Response], Any] | None = None
        self.marks: FiredMarks | None = None
        self.failures = 0
        self.failure_reported = False
        self.polls = 0
        self.warned_identity_path = False

    async def poll(self) -> dict[str, Any] | None:
        """One poll: a ``changed`` payload, an ``error`` payload (once per streak of failures), or None."""
        self.polls += 1
        try:
            payload = await self._poll()
        except Exception as exc:
            return self._failed(exc)
        if self.failures:
            self.log.info("%s: polling works again after %d failure(s)", self.trigger.describe(), self.failures)
        self.failures, self.failure_reported = 0, False
        return payload

    async def _poll(self) -> dict[str, Any] | None:
        trigger = self.trigger
        marks = await self._marks()
        check = await self._check()
        etag = await asyncio.to_thread(marks.last_etag)
        request = trigger.request
        if etag:
            request = replace(request, headers={**(request.headers or {}), "If-None-Match": etag})
        response = await self.hook.asend(request, retry=trigger.retry)
        if response.status_code == NOT_MODIFIED:
            self.log.debug("%s: not modified (HTTP 304)", trigger.describe())
            return None
        outcome = await asyncio.to_thread(trigger._poll_spec.outcome, response, check)  # user code: in a thread
        if outcome is PollOutcome.FAIL:
            raise WatchPollError(f"HTTP {response.status_code} {response.reason or ''}".strip())
        payload = None
        if outcome is PollOutcome.DONE:
            payload = await self._fire_if_new(marks, response)
        else:
            self.log.debug("%s: not ready (HTTP %s)", trigger.describe(), response.status_code)
        new_etag = response.headers.get("ETag")
        if new_etag and new_etag != etag:  # after the identity: a crash in between does not fire twice
            await asyncio.to_thread(marks.remember_etag, new_etag)
        return payload

    async def _fire_if_new(self, marks: FiredMarks, response: requests.Response) -> dict[str, Any] | None:
        trigger = self.trigger
        identity = answer_identity(response, trigger.identity_path)
        if trigger.identity_path and identity.source is IdentitySource.DIGEST and not self.warned_identity_path:
            self.warned_identity_path = True  # once per trigger: the answer's shape does not change per poll
            self.log.warning(
                "%s: the answer has no ETag and nothing at identity_path %r; its identity is the body's digest",
                trigger.describe(),
                trigger.identity_path,
            )
        if await asyncio.to_thread(marks.fired, identity.value):
            source, value = identity.source.value, identity.value
            self.log.debug("%s: ready, already fired for %s %s", trigger.describe(), source, value)
            return None
        # Remembered before the event is handed over: a restart in between loses this event rather
        # than firing it twice (at most once per state).
        await asyncio.to_thread(marks.remember, identity.value)
        self.log.info(
            "%s: ready, new state (%s %s): firing (state in %s)",
            trigger.describe(),
            identity.source.value,
            identity.value,
            marks.location.value,
        )
        return _changed_payload(response, identity, self.polls)

    async def _marks(self) -> FiredMarks:
        if self.marks is None:
            credentials = await self.hook.aget_credentials()
            module = await _import_in_thread(_FIRED_MARKS_MODULE)
            marks: FiredMarks = module.FiredMarks(
                self.trigger.watch_key,
                self.trigger.describe(),
                credentials.settings.token_cache,
                ttl=self.trigger.state_ttl,
            )
            location = await asyncio.to_thread(lambda: marks.location)  # opens the store, warns once without one
            self.log.info(
                "%s: watching every %g s (what it fired for is kept in %s)",
                self.trigger.describe(),
                self.trigger.poll_interval,
                location.value,
            )
            self.marks = marks
        return self.marks

    async def _check(self) -> Callable[[requests.Response], Any] | None:
        """The condition's function, imported once per trigger (in a thread: imports read files)."""
        condition = self.trigger.condition
        if self.check is None and condition.kind is ConditionKind.CALLABLE:
            try:
                function = await asyncio.to_thread(import_callable, str(condition.path))
            except (ImportError, AttributeError) as exc:
                raise JwtBearerConfigError(
                    f"condition {condition.path!r} cannot be imported in the triggerer ({exc}); define the "
                    "function in an installed module or the plugins folder",
                    field="condition",
                ) from None
            self.check = lambda response: condition.holds(response, function)
        elif self.check is None:
            self.check = condition.holds
        return self.check

    def _failed(self, exc: BaseException) -> dict[str, Any] | None:
        trigger = self.trigger
        self.failures += 1
        problem = redact_text(f"{type(exc).__name__}: {exc}")[:500]
        self.log.error(
            "%s: poll failed (%d in a row, max_consecutive_failures %d): %s",
            trigger.describe(),
            self.failures,
            trigger.max_consecutive_failures,
            problem,
        )
        if self.failures < trigger.max_consecutive_failures or self.failure_reported:
            return None
        self.failure_reported = True
        self.log.error(
            "%s: %d polls in a row failed: firing an error event; still watching", trigger.describe(), self.failures
        )
        return {
            "status": WatchEventStatus.ERROR.value,
            "error_type": type(exc).__name__,
            "message": problem,
            "consecutive_failures": self.failures,
            "endpoint": trigger.request.endpoint,
        }


def _changed_payload(response: requests.Response, identity: AnswerIdentity, polls: int) -> dict[str, Any]:
    """The event of a new state: its identity, the answer's status and (when small) JSON; no request header."""
    body = response_body(response)  # the sent credential blanked, should the API repeat it
    if len(json.dumps(body, default=str)) > MAX_EVENT_BODY:
        body = None
    return {
        "status": WatchEventStatus.CHANGED.value,
        "identity": identity.value,
        "identity_source": identity.source.value,
        "http_status": response.status_code,
        "url": response.url.split("?", 1)[0],
        "body": body,
        "polls": polls,
    }


async def _import_in_thread(name: str) -> Any:
    """A module imported off the event loop (the token stores' code is not needed to parse a DAG file)."""
    return await asyncio.to_thread(importlib.import_module, name)


def _bounded(
    argument: str,
    value: object,
    low: float,
    high: float,
    *,
    include_low: bool = False,
    include_high: bool = True,
) -> float:
    """``value`` as a finite number within the bounds, or an error naming ``argument``."""
    number = finite_seconds(value)
    above = number is not None and (number > low or (include_low and number == low))
    below = number is not None and (number < high or (include_high and number == high))
    if number is not None and above and below:
        return number
    low_text = f"at least {low:g}" if include_low else f"more than {low:g}"
    high_text = f"at most {high:g}" if include_high else f"less than {high:g}"
    raise JwtBearerConfigError(f"{argument} must be a number {low_text} and {high_text}, not {value!r}", field=argument)
