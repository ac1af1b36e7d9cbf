"""Many processes asking for the same token at the same instant: ``python -m tests.shared_cache_clients``.

Prints one line ``RESULTS <json>``: for each process its pid, a digest of the token it got (never
the token), how long ``get_token()`` took, and the wall-clock time it finished, or the error.
The connection (and the ``redis`` connection it names) come from ``AIRFLOW_CONN_…`` variables.

The modules are imported once, then the processes are forked from this one, so that they all
start within milliseconds: each builds its own hook (its own per-process cache, its own Redis
client), waits at a barrier until every one is ready, then asks for the token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from typing import Any

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook


def client(conn_id: str, barrier: Any, results: Any) -> None:
    try:
        hook = JwtBearerHook(conn_id)
        hook.credentials  # connection read, key loaded: only the token is left to get  # noqa: B018
        barrier.wait(timeout=120)
        started = time.monotonic()
        token = hook.get_token()
        results.put(
            {
                "pid": os.getpid(),
                "token": hashlib.sha256(token.access_token.encode()).hexdigest()[:16],
                "seconds": time.monotonic() - started,
                "finished": time.time(),
            }
        )
    except BaseException as exc:
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn-id", required=True)
    parser.add_argument("--processes", type=int, default=16)
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.processes)
    results = context.SimpleQueue()
    processes = [context.Process(target=client, args=(args.conn_id, barrier, results)) for _ in range(args.processes)]
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join(timeout=60)
    print("RESULTS " + json.dumps(collected), flush=True)


if __name__ == "__main__":
    main()
