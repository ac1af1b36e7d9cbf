"""Event-driven scheduling in the compose topology: an asset-scheduled DAG runs exactly once per change.

The stack of ``tests/cluster`` (real scheduler, dag-processor, triggerer, Celery workers, api-server,
PostgreSQL, the broker's Redis) with one DAG, ``jwt_cluster_events``
(``tests/cluster/dags/events/``): scheduled on an asset whose watcher is
``JwtBearerHttpEventTrigger``, polling the authserver's ``/api/exports/cluster`` every 2 s through
``jwt_bearer_default`` (whose tokens and marks live in the broker's Redis).

Every Airflow service sends its metrics to a StatsD listener of the test (``[metrics] statsd_on``, with
InfluxDB-style tags so that the connection id is visible): the DAG's task calls no API, so the
``jwt_bearer.*`` metrics that arrive are the triggerer's.

The test changes the export three times, waiting for each DAG run, and restarts the triggerer
process between the second and the third change: the re-created trigger finds what it fired for in
Redis (its first request is already conditional on the second state's ETag) and fires nothing
until the third change. Three changes, three runs, each run triggered by its own state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cluster.dags.events.jwt_cluster_events import DAG_ID, EXPORT, POLL_INTERVAL
from tests.cluster.harness import Cluster, ClusterError
from tests.e2e.conftest import JWT_PATTERN
from tests.telemetry_support import Datagram, StatsdListener, total

pytestmark = pytest.mark.cluster

DAG_FILES = [Path(__file__).resolve().parent / "dags" / "events" / "jwt_cluster_events.py"]
EXPORT_PATH = f"/api/exports/{EXPORT}"
TRIGGERER = "airflow-triggerer"
RUN_TIMEOUT = 240.0
#: Polls to watch, after the last change or the restart, for a run that must not come.
QUIET_POLLS = 4

#: Bound when the module is imported, so that the stack's services are started pointing at it.
STATSD = StatsdListener()
EXTRA_ENV = STATSD.airflow_env()


@pytest.fixture
def metrics() -> Iterator[Callable[[], list[Datagram]]]:
    """The provider's metrics received so far."""
    with STATSD.draining():
        yield lambda: [d for d in STATSD.drain(quiet=0.1) if d.name.startswith("airflow.jwt_bearer.")]


def export_polls(cluster: Cluster) -> list[dict[str, Any]]:
    assert cluster.authserver is not None
    return [r for r in cluster.authserver.api_requests() if r["path"] == EXPORT_PATH]


def dag_runs(cluster: Cluster) -> list[dict[str, Any]]:
    answer = cluster.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100})
    return sorted(answer["dag_runs"], key=lambda run: run["run_after"])


def wait(cluster: Cluster, what: str, check: Callable[[], Any], timeout: float = RUN_TIMEOUT) -> Any:
    try:
        return cluster.wait_for(what, check, timeout=timeout)
    except ClusterError as exc:
        pytest.fail(f"{exc}\n\nruns: {safe_runs(cluster)}\n\n{cluster.log_tails(40)}", pytrace=False)


def safe_runs(cluster: Cluster) -> Any:
    try:
        return [(run["dag_run_id"], run["state"], run["run_type"]) for run in dag_runs(cluster)]
    except ClusterError as exc:
        return str(exc)


def wait_for_polls(cluster: Cluster, after: int, count: int) -> list[dict[str, Any]]:
    """Until ``count`` polls of the export were answered after the first ``after``; those polls."""
    wait(cluster, f"{count} polls of {EXPORT_PATH}", lambda: len(export_polls(cluster)) >= after + count, 120)
    return export_polls(cluster)[after:]


def wait_for_runs(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    """Until the DAG has ``count`` runs, all finished; fails at once on a failed run."""

    def finished() -> list[dict[str, Any]] | None:
        runs = dag_runs(cluster)
        if any(run["state"] == "failed" for run in runs):
            raise ClusterError(f"a run failed: {[(r['dag_run_id'], r['state']) for r in runs]}")
        return runs if len(runs) >= count and all(run["state"] == "success" for run in runs) else None

    runs: list[dict[str, Any]] = wait(cluster, f"{count} finished run(s) of {DAG_ID}", finished)
    return runs


def run_identities(cluster: Cluster, run: dict[str, Any]) -> list[str]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/handle_export/xcomEntries/return_value"
    value: list[str] = cluster.api("GET", path)["value"]
    return value


def start_watching(cluster: Cluster) -> None:
    """The DAG is unpaused at creation, so its first parse registers the watcher; else unpause and re-parse it."""
    wait(cluster, f"{DAG_ID} to be parsed", lambda: cluster.api("GET", f"/api/v2/dags/{DAG_ID}"), 120)
    cluster.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    try:
        cluster.wait_for("the watcher's first poll", lambda: export_polls(cluster), timeout=45)
    except ClusterError:  # registered on the next parse of an unpaused DAG: ask for one now
        file_token = cluster.api("GET", f"/api/v2/dags/{DAG_ID}/details")["file_token"]
        cluster.api("PUT", f"/api/v2/parseDagFile/{file_token}")
        wait(cluster, "the watcher's first poll after a re-parse", lambda: export_polls(cluster), 120)


def test_an_asset_scheduled_dag_runs_once_per_change_across_a_triggerer_restart(
    cluster: Cluster, summary: list[str], metrics: Callable[[], list[Datagram]]
) -> None:
    assert cluster.authserver is not None
    authserver = cluster.authserver
    started = time.monotonic()
    start_watching(cluster)
    first_polls = export_polls(cluster)
    assert first_polls[0]["status"] == 404  # no export yet: "not there", neither a run nor a failure
    assert dag_runs(cluster) == []
    tokens_before = len(authserver.token_requests())

    for change in (1, 2):
        authserver.update_export(EXPORT, status="ready", day=f"day-{change}")
        runs = wait_for_runs(cluster, change)
        assert len(runs) == change

    # Unchanged, the export is answered 304 to the watcher's If-None-Match: no run.
    seen = len(export_polls(cluster))
    quiet = wait_for_polls(cluster, seen, QUIET_POLLS)
    assert all(poll["status"] == 304 and poll["if_none_match"] == '"v2"' for poll in quiet), quiet

    # Restart the triggerer between two polls: the trigger is created anew in a new process.
    shared_hits_before = total(metrics(), "airflow.jwt_bearer.cache.hit_shared", conn_id="jwt_bearer_default")
    cluster.restart(TRIGGERER)
    seen = len(export_polls(cluster))  # every poll from now on is the new triggerer process's
    resumed = wait_for_polls(cluster, seen, QUIET_POLLS)
    # Its very first request is conditional on the state fired for: that came from Redis, not from memory.
    assert [(poll["status"], poll["if_none_match"]) for poll in resumed] == [(304, '"v2"')] * len(resumed)
    assert len(dag_runs(cluster)) == 2, "the restarted triggerer fired again for a state it had fired for"

    authserver.update_export(EXPORT, status="ready", day="day-3")
    runs = wait_for_runs(cluster, 3)
    seen = len(export_polls(cluster))
    wait_for_polls(cluster, seen, QUIET_POLLS)
    time.sleep(POLL_INTERVAL * 2)  # and a scheduler loop or two for a run that must not come
    runs = dag_runs(cluster)
    summary.append(
        f"event watcher: {len(runs)} runs of {DAG_ID} for 3 changes and a triggerer restart, "
        f"{len(export_polls(cluster))} polls, in {time.monotonic() - started:.0f} s"
    )
    assert len(runs) == 3, safe_runs(cluster)
    assert all(run["run_type"] == "asset_triggered" and run["state"] == "success" for run in runs)
    assert [run_identities(cluster, run) for run in runs] == [['"v1"'], ['"v2"'], ['"v3"']]

    # Through the shared cache: no token request since the first poll, restart included (the new triggerer
    # process found the token in Redis), and the marks are there, named by digests, expiring.
    assert len(authserver.token_requests()) == tokens_before
    client = redis.Redis(host="127.0.0.1", port=cluster.ports["redis"], socket_timeout=10)
    try:
        marks = [key.decode() for key in client.keys("jwt_bearer:*:mark")]
        assert len(marks) == 4, marks  # three fired states and the last ETag
        assert all(0 < client.pttl(key) <= 7 * 86400 * 1000 for key in marks)
    finally:
        client.close()

    # The triggerer's metrics: the new process took the token from Redis (a shared hit, no token request).
    received = metrics()
    assert total(received, "airflow.jwt_bearer.cache.hit_shared", conn_id="jwt_bearer_default") > shared_hits_before
    # and its token requests are the authserver's, one for one (none since the first poll)
    assert total(received, "airflow.jwt_bearer.token_request.success") <= tokens_before
    names = sorted({d.name for d in received})
    summary.append(f"event watcher: the triggerer's metrics: {', '.join(n.removeprefix('airflow.') for n in names)}")
    for datagram in received:
        assert JWT_PATTERN.search(datagram.raw) is None, datagram.raw
        assert set(datagram.tags) <= {"conn_id", "grant", "signer", "store", "target"}, datagram.raw

    logs = [cluster.component(TRIGGERER).log]
    logs += [path for path in cluster.host_path("/opt/airflow/logs").rglob("*.log") if path.is_file()]
    texts = [path.read_text(errors="replace") for path in logs]
    firings = sum(text.count("new state (etag ") for text in texts)
    summary.append(f"event watcher: {firings} firing lines in the triggerer's output and the log folder")
    assert firings == 3, "the logs do not show three firings"
    for path, text in zip(logs, texts, strict=True):
        assert JWT_PATTERN.search(text) is None, f"{path} holds a JWT"
