"""What the telemetry tests share: a real StatsD listener on loopback, and spans kept in memory.

The listener is a UDP socket, as a StatsD daemon is: Airflow's own StatsD client (``[metrics]
statsd_on``) sends it datagrams, and :func:`parse_statsd` reads them back. Spans are collected by
OpenTelemetry's ``InMemorySpanExporter`` on the tracer provider Airflow uses.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: ``name[,tag=value…]:value|type[|@rate]`` (InfluxDB-style tags when ``statsd_influxdb_enabled``).
_LINE = re.compile(r"^(?P<name>[^:,]+)(?P<tags>(?:,[^:]*)?):(?P<value>[^|]+)\|(?P<type>[a-z]+)")


@dataclass(frozen=True)
class Datagram:
    name: str
    tags: dict[str, str]
    value: float
    type: str  # c (counter), ms (timer), g (gauge)
    raw: str


@dataclass
class StatsdListener:
    """A UDP socket on 127.0.0.1 that keeps every StatsD line it receives.

    Read on demand (:meth:`drain`), or all along by a thread (:meth:`draining`): an Airflow stack
    sends many metrics, and a full receive buffer would drop some.
    """

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    lines: list[str] = field(default_factory=list)
    #: ``time.time()`` when each line of :attr:`lines` arrived.
    arrived: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _receiver: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _receive_once(self, timeout: float) -> bool:
        """Keep one datagram's lines, if one comes within ``timeout``; whether one came."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        now = time.time()
        with self._lock:
            for line in data.decode("utf-8").split("\n"):
                if line:
                    self.lines.append(line)
                    self.arrived.append(now)
        return True

    def drain(self, quiet: float = 0.3) -> list[Datagram]:
        """Every line received so far (after ``quiet`` seconds without one, or of waiting for the thread), parsed."""
        if self._receiver is not None:
            time.sleep(quiet)
        else:
            while self._receive_once(quiet):
                pass
        with self._lock:
            return [parse_statsd(line) for line in self.lines]

    def airflow_env(self) -> dict[str, str]:
        """The environment that points every Airflow process at this listener, InfluxDB-style tags on."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        }

    def received(self) -> list[tuple[float, Datagram]]:
        """Every line so far with its arrival time (``time.time()``), parsed."""
        with self._lock:
            return [(at, parse_statsd(line)) for line, at in zip(self.lines, self.arrived, strict=True)]

    @contextlib.contextmanager
    def draining(self) -> Iterator[StatsdListener]:
        """Receive all along in a thread until the block ends; the socket is closed then."""
        stop = threading.Event()

        def receive() -> None:
            while not stop.is_set():
                self._receive_once(0.2)

        self._receiver = threading.Thread(target=receive, name="statsd-listener", daemon=True)
        self._receiver.start()
        try:
            yield self
        finally:
            stop.set()
            self._receiver.join()
            self._receiver = None
            self.close()

    def close(self) -> None:
        self.sock.close()


def parse_statsd(line: str) -> Datagram:
    match = _LINE.match(line)
    assert match is not None, f"not a StatsD line: {line!r}"
    tags = dict(part.split("=", 1) for part in match["tags"].split(",") if part)
    return Datagram(match["name"], tags, float(match["value"]), match["type"], line)


def total(datagrams: list[Datagram], name: str, **tags: str) -> float:
    """The sum of the values of ``name`` whose tags include ``tags``."""
    return sum(d.value for d in datagrams if d.name == name and all(d.tags.get(k) == v for k, v in tags.items()))


def span_dicts(spans: Any) -> list[dict[str, Any]]:
    """Finished spans as JSON-able dicts: name, ids, parent, attributes, status."""
    out = []
    for span in spans:
        context = span.get_span_context()
        out.append(
            {
                "name": span.name,
                "trace_id": format(context.trace_id, "032x"),
                "span_id": format(context.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
                "events": [dict(e.attributes or {}) for e in span.events],
            }
        )
    return out
