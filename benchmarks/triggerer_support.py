"""What ``benchmarks/bench_triggerer.py`` shares with its DAG file and the triggerer: names, and a lag probe.

The names (DAG ids, exports, connections) are here so that the benchmark, its DAG file and its seeding
step agree without importing one another.

The probe: a trigger that measures its own triggerer's event-loop lag.

A trigger shares the triggerer's event loop with every other trigger of the process: whatever one of
them does on the loop (parsing an answer, logging, a blocking call) delays the others. This trigger
sleeps a fixed interval again and again and records how late each wake-up is; the lag a real trigger
sees when it wants to run is the same. It never fires: the benchmark ends it with the stack.

It is imported by the triggerer from the repository (the benchmark puts the repository on the
components' ``PYTHONPATH``), like any trigger class of an installed package.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

CLASSPATH = "benchmarks.triggerer_support.LagProbeTrigger"
JWT_CONN = "jwt_bench"
HTTP_CONN = "bench_http"
#: The export each contender's sensors poll: 404 until the benchmark publishes it.
GATES = {"jwt": "bench-gate-jwt", "http": "bench-gate-http"}
#: The export the watcher number ``i`` polls.
WATCH_EXPORT = "bench-watch-{}"
DAG_IDS = {
    "jwt": "bench_triggerer_jwt",
    "http": "bench_triggerer_http",
    "watchers": "bench_triggerer_watchers",
    "probe": "bench_triggerer_probe",
}


class LagProbeTrigger(BaseTrigger):
    """Sleep ``interval`` seconds in a loop; append ``<wall time> <lag in seconds>`` lines to ``path``.

    Lines are written in batches (about one a second) so the probe's own file writes stay a negligible
    part of what it measures.
    """

    def __init__(self, path: str, interval: float = 0.1) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path = path
        self.interval = interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"path": self.path, "interval": self.interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        pending: list[str] = []
        with open(self.path, "a", encoding="utf-8") as out:  # one open; small batched writes
            while True:
                before = loop.time()
                await asyncio.sleep(self.interval)
                lag = loop.time() - before - self.interval
                pending.append(f"{time.time():.3f} {lag:.6f}\n")
                if len(pending) >= 10:
                    out.write("".join(pending))
                    out.flush()
                    pending.clear()
        yield TriggerEvent(None)  # pragma: no cover - never reached; makes run() an async generator
