"""DAG runs on the stack through its REST API: what tests/cluster and tests/chaos both read and wait for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.harness import Cluster, ClusterError

FINISHED = frozenset({"success", "failed"})


def task_instances(cluster: Cluster, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, mapped ones included (the API pages by 100 at most)."""
    found: list[dict[str, Any]] = []
    while True:
        page = cluster.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found), "order_by": "map_index"},
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def state_counts(tis: list[dict[str, Any]]) -> Counter[str]:
    """``task_id:state`` → how many task instances."""
    return Counter(f"{ti['task_id']}:{ti['state']}" for ti in tis)


def wait_for_dag(cluster: Cluster, dag_id: str, timeout: float) -> None:
    """Until the dag-processor has parsed the DAG (the api-server answers 404 before)."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        try:
            cluster.api("GET", f"/api/v2/dags/{dag_id}")
            return
        except ClusterError as exc:
            if "HTTP 404" not in str(exc):
                raise
        if time.monotonic() > deadline:
            errors = cluster.api("GET", "/api/v2/importErrors")
            pytest.fail(f"{dag_id} was not parsed within {timeout:.0f} s; import errors: {errors}")
        time.sleep(1)


def wait_for_end(
    cluster: Cluster,
    dag_id: str,
    run_id: str,
    timeout: float,
    started: float,
    during: Callable[[], object] | None = None,
) -> str:
    """The run's final state; ``during`` is called at every poll. Fails with the task states on time-out."""
    while (state := cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]) not in FINISHED:
        cluster.check_alive()
        if during is not None:
            during()
        if time.monotonic() - started > timeout:
            counts = dict(state_counts(task_instances(cluster, dag_id, run_id)))
            pytest.fail(
                f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s; task states {counts}\n\n"
                f"{cluster.log_tails()}",
                pytrace=False,
            )
        time.sleep(2)
    return str(state)


def wait_for_tasks(
    cluster: Cluster, dag_id: str, run_id: str, what: str, check: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> None:
    """Until ``check(task_instances)`` holds, failing with the task states and log tails on time-out."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        tis = task_instances(cluster, dag_id, run_id)
        if check(tis):
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}; task states {dict(state_counts(tis))}\n\n"
                f"{cluster.log_tails()}",
                pytrace=False,
            )
        time.sleep(2)
