"""Benchmark: what metrics and traces cost a cached ``hook.get_token()`` and a ``hook.run(...)``, on against off.

"On" is what ``[metrics] statsd_on`` and ``[traces] otel_on`` give a task process: Airflow's StatsD client
sending UDP datagrams (to a socket on 127.0.0.1 that nobody reads: the kernel takes them) and an SDK
tracer provider with a batch span processor (its exporter drops the spans: exporting is the exporter's
thread, not the call's). "Off" is Airflow's default. The two alternate in stretches within one process,
so a change in the machine's load hits both alike: 60 stretches each of 50 API calls or 1,000 cached
calls, every call timed; the ratio is the median over the stretches of on against the off next to it.

Run: ``.venv/bin/python benchmarks/bench_telemetry.py [--quick]``. Exit status 1 when a ratio misses its
target (on at most 1.05 times off).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="jwt-bench-telemetry-"))
os.environ.setdefault("AIRFLOW_HOME", str(WORK / "airflow"))
SINK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
SINK.bind(("127.0.0.1", 0))
os.environ.update(
    {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(SINK.getsockname()[1]),
    }
)

from devserver import keystores as ks  # noqa: E402
from devserver.server import LocalAuthorizationServer  # noqa: E402

QUICK = "--quick" in sys.argv
STRETCHES = 10 if QUICK else 60
CACHED_PER_STRETCH = 1000
API_PER_STRETCH = 25 if QUICK else 50
TARGET = 1.05
PASSWORD = "bench-pass-1"


def _tracing() -> None:
    """An SDK tracer provider whose batch processor drops what it exports (what Airflow sets up, minus the network)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class _Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    trace.set_tracer_provider(provider)


def _stretches(call: Callable[[], object], per_stretch: int) -> tuple[list[float], list[float]]:
    """Per stretch of ``per_stretch`` calls: the median seconds per call, with telemetry off and on.

    Off and on alternate, neither always first, so that each on-stretch has an off-stretch next to
    it under the same load. Calls are timed one by one (the clock's resolution is far below a call).
    Switching is not timed and is not done call by call: turning telemetry on sends the counted hits
    and takes a tracer, which would disturb the next call and be measured as telemetry's cost.
    """
    from airflow_jwt_provider.common.telemetry import TELEMETRY

    medians: dict[bool, list[float]] = {False: [], True: []}
    for index in range(STRETCHES):
        for on in (False, True) if index % 2 else (True, False):
            TELEMETRY.enable(metrics=on, traces=on)
            call()  # the first call after a switch is not counted
            samples = []
            for _ in range(per_stretch):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            medians[on].append(statistics.median(samples))
    TELEMETRY.enable(metrics=False, traces=False)
    return medians[False], medians[True]


def _off_event_cost() -> float:
    """Seconds one event costs with telemetry off (a process-cache hit, the most frequent)."""
    from airflow_jwt_provider.common.telemetry import TELEMETRY

    TELEMETRY.enable(metrics=False, traces=False)
    count = 200_000
    start = time.perf_counter()
    for _ in range(count):
        TELEMETRY.cache_hit("bench")
    return (time.perf_counter() - start) / count


def main() -> int:
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    _tracing()
    store = ks.make_keystore_with_fallback(WORK, "bench", store_type="pkcs12", store_password=PASSWORD)
    missed = False
    with LocalAuthorizationServer() as server:
        server.register_client("bench-client", certificate_pem=store.certificate_pem)
        extra = {
            "auth_url": server.token_url,
            "subject": "bench-user",
            "key_file": str(store.path),
            "keystore_password": PASSWORD,
        }
        os.environ["AIRFLOW_CONN_BENCH_TELEMETRY"] = json.dumps(
            {"conn_type": "jwt_bearer", "login": "bench-client", "host": server.api_url, "extra": extra}
        )
        hook = JwtBearerHook("bench_telemetry")
        hook.run("whoami")  # token, key and session ready
        healthz = f"{server.url}/healthz"
        rows = [
            ("hook.get_token() (cached)", hook.get_token, CACHED_PER_STRETCH),
            ('hook.run("/healthz")', lambda: hook.run(healthz), API_PER_STRETCH),
            ('hook.run("whoami")', lambda: hook.run("whoami"), API_PER_STRETCH),
        ]
        print(
            f"Python {sys.version.split()[0]}; {STRETCHES} stretches each off and on per row, alternating; StatsD to "
            "a UDP socket on 127.0.0.1, spans through a batch processor\n"
        )
        print(f"{'call':30} {'calls':>7} {'off ms':>9} {'on ms':>9} {'ratio':>7}  target")
        for name, call, per_stretch in rows:
            off, on = _stretches(call, per_stretch)
            # the ratio: the median of each on-stretch against the off-stretch next to it (same load)
            ratio = statistics.median(b / a for a, b in zip(off, on, strict=True))
            ok = ratio <= TARGET
            missed = missed or not ok
            calls = per_stretch * STRETCHES * 2
            off_ms, on_ms = statistics.median(off) * 1000, statistics.median(on) * 1000
            verdict = f"≤ {TARGET}x {'ok' if ok else 'MISSED'}"
            print(f"{name:30} {calls:7d} {off_ms:9.4f} {on_ms:9.4f} {ratio:6.3f}x  {verdict}")
        print(f"\noff: one event (a process-cache hit) costs {_off_event_cost() * 1e9:.0f} ns, an attribute check")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
