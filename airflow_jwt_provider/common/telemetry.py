"""Metrics and traces of the token pipeline, through Airflow's own ``Stats`` and OpenTelemetry set-up.

Why one module: when tokens fail at night an operator has task logs only. Airflow asks providers to
emit through core's configuration, with no exporter of their own and no cost when it is off
(apache/airflow#67792). Everything the provider emits goes through :data:`TELEMETRY`, one call per
event at the place the event happens; no other module imports ``Stats`` or OpenTelemetry.

* **Metrics** go to ``airflow.sdk.observability.stats.Stats``, which every Airflow 3.3 process (task,
  triggerer, CLI) initialises from ``[metrics]``: StatsD (``statsd_on``), DogStatsD
  (``statsd_datadog_enabled``) or OpenTelemetry metrics (``otel_on``). Tags are always passed and
  Airflow's backend decides, as for core's own metrics: DogStatsD and OpenTelemetry send them,
  ``statsd_influxdb_enabled`` appends them to the name, plain StatsD drops them, and
  ``statsd_disabled_tags`` removes the ones listed. Names are fixed strings and enum values (a
  signer's registered name at most), never connection data: the connection id is a tag.
* **Traces**: ``[traces] otel_on`` makes Airflow install the process's tracer provider (and its
  exporter) and run each task inside a ``worker.<task_id>`` span, each trigger inside a
  ``trigger.<task_id>`` span. Spans started here take the current span as parent, so they hang
  under the task's; ``asyncio.to_thread`` copies the context, so the triggerer's threads do too.
* **Off** (the default): :meth:`Telemetry.configure` reads the two switches once per process, when the
  first credentials are built; after that every event is one attribute check, and nothing is
  imported or set up. Hits in the process cache, the one event on the hot path, are counted in
  memory and sent at most once a second (the clock is read at every 256th hit and at the other
  events) and at exit: a UDP datagram per hit would double a hit's cost.

Nothing secret is ever a metric name, a tag or a span attribute: values are enum members, status
codes, counts, durations, the connection id, and for API calls the method, scheme, host and port.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from types import TracebackType

#: Every metric name starts with this (after Airflow's ``[metrics] statsd_prefix``).
PREFIX = "jwt_bearer"
#: Seconds between two sends of the process-cache hit counts.
HIT_FLUSH_INTERVAL = 1.0
#: Span names.
TOKEN_SPAN = "jwt_bearer.token"
API_SPAN = "jwt_bearer.api_call"
_UNSAFE_TAG = re.compile(r"[^A-Za-z0-9_.-]")
#: Origins (scheme, host, port) whose span attributes are kept parsed.
_MAX_ORIGINS = 256


class CacheTier(str, Enum):
    """Where a token came from: this process's cache, the shared store, or the token endpoint (a miss)."""

    PROCESS = "process"
    SHARED = "shared"
    ENDPOINT = "endpoint"

    @property
    def metric(self) -> str:
        return _CACHE_METRICS[self]


class TokenResult(str, Enum):
    """How a token request ended: a token, an answer refusing it (4xx, an OAuth error), or no usable answer."""

    SUCCESS = "success"
    REFUSED = "refused"
    ERROR = "error"


class RetryCause(str, Enum):
    """Why a request was sent again."""

    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    CONNECTION_ERROR = "connection_error"
    USE_DPOP_NONCE = "use_dpop_nonce"


class RequestTarget(str, Enum):
    """Which kind of server a request went to (a tag of the retry metrics)."""

    TOKEN_ENDPOINT = "token_endpoint"
    API = "api"


class Degradation(str, Enum):
    """How the shared token cache failed a process, which then fetched its own token."""

    UNAVAILABLE = "unavailable"
    UNREADABLE_ENTRY = "unreadable_entry"


class LockWait(str, Enum):
    """How a wait on another process's token request ended (the shared cache's lock).

    ``token``: the other process stored its token; ``lock``: it left without storing one and this
    process took the lock; ``timed_out``: ``token_cache_wait`` ran out and this process fetched too;
    ``store_failed``: the store failed during the wait.
    """

    TOKEN = "token"
    LOCK = "lock"
    TIMED_OUT = "timed_out"
    STORE_FAILED = "store_failed"


class Metric(str, Enum):
    """Every metric name (``{}``: the member of the enum the event names)."""

    TOKEN_REQUEST = f"{PREFIX}.token_request.{{}}"  # TokenResult
    TOKEN_REQUEST_DURATION = f"{PREFIX}.token_request.duration"
    CACHE = f"{PREFIX}.cache.{{}}"  # hit_process / hit_shared / miss
    SIGN_DURATION = f"{PREFIX}.sign.{{}}"  # the signer's registered name
    ASSERTION_MINTED = f"{PREFIX}.assertion.minted"
    SHARED_CACHE = f"{PREFIX}.shared_cache.{{}}"  # Degradation
    LOCK_WAIT = f"{PREFIX}.shared_cache.lock_wait.{{}}"  # LockWait
    REFRESH_AFTER_401 = f"{PREFIX}.refresh_after_401"
    RETRY = f"{PREFIX}.retry.{{}}"  # RetryCause

    def named(self, part: str = "") -> str:
        return self.value.format(part) if "{}" in self.value else self.value


_CACHE_METRICS = {
    CacheTier.PROCESS: Metric.CACHE.named("hit_process"),
    CacheTier.SHARED: Metric.CACHE.named("hit_shared"),
    CacheTier.ENDPOINT: Metric.CACHE.named("miss"),
}

AttributeValue = str | bool | int | float


class SpanLike(Protocol):
    """What the pipeline does with a span: an OpenTelemetry ``Span``, or nothing when traces are off."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class _NoSpan:
    """The span of a process without traces: every call does nothing."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


class _Otel:
    """The few OpenTelemetry functions a span needs, imported once, when traces are turned on."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import Status, StatusCode

        from airflow_jwt_provider import __version__

        self.tracer = trace.get_tracer("airflow_jwt_provider", __version__)
        self.attach = context.attach
        self.detach = context.detach
        self.in_context = trace.set_span_in_context
        self.current_span = trace.get_current_span
        self._status, self._error_code = Status, StatusCode.ERROR

    def error(self, name: str) -> object:
        """An error status described by ``name`` (an exception's class)."""
        return self._status(self._error_code, name)


class _SpanScope:
    """An OpenTelemetry span made current for a block; an exception marks it failed by its type alone.

    OpenTelemetry would record the exception's message and traceback as a span event; messages here
    name URLs and servers' texts, so only the type goes (``error.type``, as the HTTP conventions say).
    The span is started, made current and ended here rather than through ``start_as_current_span``:
    the same calls without a generator, on a path where every microsecond counts against an API call.
    """

    __slots__ = ("_otel", "_span", "_token")

    def __init__(self, otel: _Otel, name: str, attributes: dict[str, AttributeValue]) -> None:
        self._otel = otel
        self._span: Any = otel.tracer.start_span(name, attributes=attributes)
        self._token: Any = None

    def __enter__(self) -> SpanLike:
        self._token = self._otel.attach(self._otel.in_context(self._span))
        return self._span  # type: ignore[no-any-return]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._span.set_attribute("error.type", exc_type.__name__)
            self._span.set_status(self._otel.error(exc_type.__name__))
        self._otel.detach(self._token)
        self._span.end()


SpanScope = _SpanScope | _NoSpan


class Telemetry:
    """The provider's metrics and spans in one process; see the module docstring.

    ``metrics`` and ``traces`` are plain attributes, read on every event: off, an event costs that read.
    """

    def __init__(self) -> None:
        self.metrics = False
        self.traces = False
        self._configured = False
        self._configure_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stats: Any = None
        self._otel: _Otel | None = None
        # Process-cache hits: a counter per connection, counted without a lock (``next`` on an
        # ``itertools.count`` is atomic), and what was sent of each.
        self._hit_counters: dict[str, itertools.count[int]] = {}
        self._hits_sent: dict[str, int] = {}
        self._next_flush = 0.0
        self._flush_at_exit = False
        self._origins: dict[str, dict[str, AttributeValue]] = {}

    # -- switches ------------------------------------------------------------------------------------

    def configure(self) -> None:
        """Read ``[metrics]`` and ``[traces]`` once per process (cheap after the first call)."""
        if self._configured:
            return
        with self._configure_lock:
            if self._configured:
                return
            metrics, traces = _airflow_switches()
            self.enable(metrics=metrics, traces=traces)
            self._configured = True

    def enable(self, *, metrics: bool, traces: bool) -> None:
        """Turn metrics and traces on or off (``configure`` does, from Airflow's settings; tests too)."""
        self.flush()
        self._stats = self._otel = None
        if metrics:
            from airflow.sdk.observability.stats import Stats

            self._stats = Stats
        if traces:
            self._otel = _Otel()
        self.metrics, self.traces = metrics, traces
        self._next_flush = 0.0  # the first hit is sent at once, and registers the flush at exit
        self._configured = True

    def reset(self) -> None:
        """Forget the switches: the next :meth:`configure` reads Airflow's settings again (tests)."""
        self.enable(metrics=False, traces=False)
        self._configured = False

    # -- metrics -------------------------------------------------------------------------------------

    def cache_hit(self, conn_id: str) -> None:
        """A token served from this process's cache (counted here; sent at most once a second, and at exit).

        The clock is looked at every 256th hit only, and on the other events: a hit costs a few
        microseconds, and this keeps its share to a dictionary lookup and a counter step.
        """
        if not self.metrics:
            return
        counter = self._hit_counters.get(conn_id)
        if counter is None:
            counter = self._hit_counters.setdefault(conn_id, itertools.count())
        if not next(counter) & 255:
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Send the process-cache hits counted since the last flush (also at exit)."""
        with self._flush_lock:
            self._next_flush = time.monotonic() + HIT_FLUSH_INTERVAL
            counted = [(conn_id, _count_of(counter)) for conn_id, counter in list(self._hit_counters.items())]
            news = [(conn_id, n - self._hits_sent.get(conn_id, 0)) for conn_id, n in counted]
            self._hits_sent.update(counted)
        if self._stats is None:
            return
        if not self._flush_at_exit:  # here, not at set-up: a forked task process registers its own
            atexit.register(self.flush)
            self._flush_at_exit = True
        for conn_id, count in news:
            if count > 0:
                self._stats.incr(CacheTier.PROCESS.metric, count, tags={"conn_id": _tag(conn_id)})

    def token_obtained(self, span: SpanLike, conn_id: str, tier: CacheTier) -> None:
        """A token the process cache did not have, from the shared store or the endpoint."""
        if self.metrics:
            self._stats.incr(tier.metric, tags={"conn_id": _tag(conn_id)})
            self._maybe_flush()
        span.set_attribute("jwt_bearer.cache", tier.value)

    def token_request(
        self,
        conn_id: str | None,
        grant: str,
        result: TokenResult,
        *,
        status: int | None,
        retries: int,
        seconds: float,
    ) -> None:
        """One token request ended (all its attempts): counted by result, timed, noted on the token span."""
        if self.metrics:
            tags = {"conn_id": _tag(conn_id), "grant": grant_name(grant)}
            self._stats.incr(Metric.TOKEN_REQUEST.named(result.value), tags=tags)
            self._stats.timing(Metric.TOKEN_REQUEST_DURATION.value, seconds * 1000.0, tags=tags)
        if self._otel is not None:
            span = self._otel.current_span()
            span.set_attribute("jwt_bearer.token_request", result.value)
            span.set_attribute("jwt_bearer.retries", retries)
            if status is not None:
                span.set_attribute("http.response.status_code", status)

    def signed(self, signer: str, conn_id: str | None, seconds: float) -> None:
        """An assertion was signed by a signer of the registered kind ``signer``, in ``seconds``."""
        if not self.metrics:
            return
        tags = {"conn_id": _tag(conn_id), "signer": _tag(signer)}
        self._stats.timing(Metric.SIGN_DURATION.named(tags["signer"].replace(".", "_")), seconds * 1000.0, tags=tags)
        self._stats.incr(Metric.ASSERTION_MINTED.value, tags=tags)

    def shared_cache_degraded(self, conn_id: str, store: str, how: Degradation) -> None:
        """The shared store failed this process, which fetches its own token."""
        if self.metrics:
            tags = {"conn_id": _tag(conn_id), "store": _tag(store)}
            self._stats.incr(Metric.SHARED_CACHE.named(how.value), tags=tags)

    def waited_for_lock(self, conn_id: str, store: str, seconds: float, outcome: LockWait) -> None:
        """This process waited ``seconds`` for another's token request (the store's lock); it ended as ``outcome``."""
        if self.metrics:
            tags = {"conn_id": _tag(conn_id), "store": _tag(store)}
            self._stats.timing(Metric.LOCK_WAIT.named(outcome.value), seconds * 1000.0, tags=tags)

    def refreshed_after_401(self, conn_id: str) -> None:
        """The API refused a token (401) and a fresh one is fetched."""
        if self.metrics:
            self._stats.incr(Metric.REFRESH_AFTER_401.value, tags={"conn_id": _tag(conn_id)})

    def retried(self, conn_id: str | None, target: RequestTarget, cause: RetryCause) -> None:
        """A request is sent again."""
        if self.metrics:
            tags = {"conn_id": _tag(conn_id), "target": target.value}
            self._stats.incr(Metric.RETRY.named(cause.value), tags=tags)

    # -- spans ---------------------------------------------------------------------------------------

    def token_span(self, conn_id: str, grant: str, source: str) -> SpanScope:
        """A span around a token the process cache did not have (the shared store, or a token request)."""
        if self._otel is None:
            return NO_SPAN
        attributes: dict[str, AttributeValue] = {
            "jwt_bearer.conn_id": conn_id,
            "jwt_bearer.grant": grant_name(grant),
            "jwt_bearer.assertion_source": source,
        }
        return _SpanScope(self._otel, TOKEN_SPAN, attributes)

    def api_span(self, conn_id: str, method: str, url: str) -> SpanScope:
        """A span around one API call: method, scheme, host and port; never the path, the query or a credential."""
        if self._otel is None:
            return NO_SPAN
        origin = url.split("/", 3)[:3]  # scheme, "", host[:port]: parsed once per origin
        key = "/".join(origin)
        server = self._origins.get(key)
        if server is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            server = self._origins[key] = _server_attributes(url)
        attributes: dict[str, AttributeValue] = {
            "jwt_bearer.conn_id": conn_id,
            "http.request.method": method.upper(),
            **server,
        }
        return _SpanScope(self._otel, API_SPAN, attributes)

    @staticmethod
    def api_answered(span: SpanLike, status: int, *, resent: int = 0) -> None:
        """The API call's final answer, on its span; ``resent``: sends before it (401 refresh, nonce, redirect)."""
        span.set_attribute("http.response.status_code", status)
        if resent:
            span.set_attribute("http.request.resend_count", resent)


def _server_attributes(url: str) -> dict[str, AttributeValue]:
    """``url.scheme``, ``server.address`` and ``server.port`` (when the URL names one) of ``url``."""
    parts = urlsplit(url)
    attributes: dict[str, AttributeValue] = {"url.scheme": parts.scheme, "server.address": parts.hostname or ""}
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _count_of(counter: itertools.count[int]) -> int:
    """How many times ``next`` was called on ``counter`` (started at 0): read from its ``repr``, not consumed."""
    return int(repr(counter)[6:-1])


def grant_name(grant: str) -> str:
    """``jwt-bearer`` for ``urn:ietf:params:oauth:grant-type:jwt-bearer``: a grant as a tag value may hold no colon."""
    return _tag(grant.rsplit(":", 1)[-1])


def _tag(value: str | None) -> str:
    """A tag value StatsD's InfluxDB form and Airflow's name check accept: ``[A-Za-z0-9_.-]`` (else ``_``)."""
    return _UNSAFE_TAG.sub("_", value) if value else "none"


def _airflow_switches() -> tuple[bool, bool]:
    """``([metrics] is on, [traces] otel_on)`` from Airflow's configuration (off outside Airflow)."""
    try:
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - the provider runs inside Airflow
        return False, False
    metrics = any(
        conf.getboolean("metrics", option, fallback=False)
        for option in ("statsd_on", "statsd_datadog_enabled", "otel_on")
    )
    return metrics, conf.getboolean("traces", "otel_on", fallback=False)


#: The process's telemetry: every event of the provider goes through it.
TELEMETRY = Telemetry()


def _after_fork() -> None:
    """A forked task process counts its own hits (its parent's are the parent's to send)."""
    TELEMETRY._hit_counters = {}
    TELEMETRY._hits_sent = {}
    TELEMETRY._flush_lock = threading.Lock()
    TELEMETRY._next_flush = 0.0
    TELEMETRY._flush_at_exit = False  # Airflow's task supervisor clears the parent's exit handlers


os.register_at_fork(after_in_child=_after_fork)
