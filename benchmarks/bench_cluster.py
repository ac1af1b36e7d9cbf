"""Benchmark: the cluster DAG with each token cache (memory / file / redis), and the cost of an API call.

1. **Cluster.** Starts the docker compose topology as processes (``tests/cluster/harness.py``:
   PostgreSQL, the Celery broker's Redis, api-server, scheduler, dag-processor, triggerer, two Celery
   workers), then runs the cluster test's DAG (100 mapped API calls on the workers, a paginated
   deferrable call and four deferrable sensors on the triggerer) once per token cache, one after the
   other, each through its own connection (the compose connection with ``token_cache`` set). Prints
   the wall time of each DAG run and the token requests the authorization server received.
2. **Hot path.** In this process, against the local authorization server: the median time of an API
   call through the hook's session with each token cache (the token in memory), next to a plain
   ``requests.Session`` sending the same bearer header (through an auth object, as the hook does).
   A token in memory never touches the shared store, so the ratios must stay within 1.10.

Run: ``.venv/bin/python benchmarks/bench_cluster.py [--json PATH]`` (a few minutes; ``--hot-path-only``
skips the cluster). Needs what ``scripts/install-system-deps`` installs (PostgreSQL, redis-server,
keytool). ``--json PATH`` also writes both parts as data (``benchmarks/results.py``): ``hot_path`` (the
median milliseconds per session) and ``runs`` (one per token cache); the docs chart the file recorded
in ``docs/benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jwt-bench-"))

import requests

from benchmarks.results import write_results
from tests.cluster.dags.jwt_cluster import DEFERRED_JOBS, MAPPED_CALLS
from tests.cluster.harness import Cluster
from tests.cluster.test_cluster import run_dag

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHES = ("memory", "file", "redis")
HOT_PATH_CALLS = 400


def cluster_runs() -> tuple[float, list[dict[str, object]]]:
    """The stack's start-up seconds and one row per token cache (printed as a table too)."""
    workdir = Path(tempfile.mkdtemp(prefix="jwt-bench-cluster-"))
    cluster = Cluster(
        workdir,
        extra_dags=[REPO_ROOT / "tests/cluster/dags/jwt_cluster.py", REPO_ROOT / "benchmarks/dags/jwt_bench.py"],
        extra_connections={f"jwt_bench_{cache}": {"token_cache": cache} for cache in CACHES},
    )
    started = time.monotonic()
    rows = []
    try:
        cluster.start()
        cluster.compose_healthchecks()  # they start Airflow's CLI: not while a run is timed
        start_seconds = time.monotonic() - started
        print(f"stack started in {start_seconds:.0f} s", flush=True)
        for cache in CACHES:
            run = run_dag(cluster, cache, f"jwt_bench_{cache}")
            failed = [ti for ti in run.task_instances if ti["state"] != "success"]
            rows.append((cache, run.state, run.seconds, len(run.token_requests), len(run.task_instances), len(failed)))
            print(f"  {cache}: {run.state} in {run.seconds:.1f} s, {len(run.token_requests)} token requests")
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    tasks = MAPPED_CALLS + DEFERRED_JOBS + 2
    print(f"\nThe cluster DAG ({tasks} task instances: {MAPPED_CALLS} mapped API calls on 2 Celery workers x 4,")
    print("a paginated deferrable call and 4 deferrable sensors on the triggerer), one run per token cache:\n")
    print(f"| {'token_cache':<11} | {'state':<7} | {'DAG run wall time':>17} | {'token requests':>14} | failed tasks |")
    print(f"|{'-' * 13}|{'-' * 9}|{'-' * 19}|{'-' * 16}|{'-' * 14}|")
    for cache, state, seconds, token_requests, _, failed in rows:
        print(f"| {cache:<11} | {state:<7} | {seconds:>15.1f} s | {token_requests:>14} | {failed:>12} |")
    names = ("token_cache", "state", "seconds", "token_requests", "task_instances", "failed")
    return start_seconds, [dict(zip(names, row, strict=True)) for row in rows]


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def hot_path() -> dict[str, float]:
    """Milliseconds per API call: a plain session (``plain``) and the hook's with each token cache."""
    from devserver import keystores as ks
    from devserver.server import LocalAuthorizationServer
    from tests.redis_server import RedisServer

    work = Path(tempfile.mkdtemp(prefix="jwt-bench-hot-"))
    store = ks.make_keystore_with_fallback(work, "bench", store_type="pkcs12", store_password="bench-pass-1")
    server = LocalAuthorizationServer().start()
    redis_server = RedisServer(work / "redis").start()
    try:
        server.register_client("bench-client", certificate_pem=store.certificate_pem)
        os.environ["AIRFLOW_CONN_BENCH_REDIS"] = redis_server.url
        caches = {
            "memory": {},
            "file": {"token_cache_dir": str(work / "tokens")},
            "redis": {"token_cache_conn_id": "bench_redis"},
        }
        for cache, extra in caches.items():
            os.environ[f"AIRFLOW_CONN_BENCH_{cache.upper()}"] = json.dumps(
                {
                    "conn_type": "jwt_bearer",
                    "host": server.api_url,
                    "login": "bench-client",
                    "extra": {
                        "auth_url": server.token_url,
                        "key_file": str(store.path),
                        "keystore_password": "bench-pass-1",
                        "subject": "bench-user",
                        "token_cache": cache,
                        **extra,
                    },
                }
            )
        from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

        def per_call(session: requests.Session) -> float:
            for _ in range(20):
                session.get(f"{server.api_url}/whoami").raise_for_status()  # warm: token, connection
            samples = []
            for _ in range(HOT_PATH_CALLS):
                started = time.perf_counter()
                session.get(f"{server.api_url}/whoami").raise_for_status()
                samples.append(time.perf_counter() - started)
            return statistics.median(samples)

        hook_sessions = {cache: JwtBearerHook(f"bench_{cache}").get_conn() for cache in caches}
        token = JwtBearerHook("bench_memory").get_token()
        plain = requests.Session()
        plain.auth = _Bearer(token.access_token)  # an auth object, as the hook's: no ~/.netrc lookup per call
        timings: dict[str, list[float]] = {name: [] for name in ["plain", *caches]}
        for _ in range(3):  # interleaved rounds: the machine's noise hits every contender alike
            timings["plain"].append(per_call(plain))
            for cache, session in hook_sessions.items():
                timings[cache].append(per_call(session))
        base = min(timings["plain"])
        print(f"\nAn API call with the token in memory (median of {HOT_PATH_CALLS} GETs, best of 3 rounds):\n")
        print(f"| {'session':<32} | {'per call':>9} | ratio to plain |")
        print(f"|{'-' * 34}|{'-' * 11}|{'-' * 16}|")
        print(f"| {'requests.Session + bearer auth':<32} | {base * 1e3:>6.3f} ms | {1.0:>14.3f} |")
        for cache in caches:
            best = min(timings[cache])
            print(f"| {'hook session, token_cache ' + cache:<32} | {best * 1e3:>6.3f} ms | {best / base:>14.3f} |")
        return {name: min(rounds) * 1e3 for name, rounds in timings.items()}
    finally:
        redis_server.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hot-path-only", action="store_true", help="skip the cluster runs (minutes)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    per_call_ms = hot_path()
    start_seconds, runs = (None, []) if args.hot_path_only else cluster_runs()
    if args.json:
        figures = {"hot_path_calls": HOT_PATH_CALLS, "hot_path_ms": per_call_ms, "runs": runs}
        write_results(args.json, "bench_cluster", stack_start_seconds=start_seconds, **figures)


if __name__ == "__main__":
    main()
