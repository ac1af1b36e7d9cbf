"""The demo DAG end to end: ``dag.test()`` against the local authorization server and API."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ALL_TASKS = {
    "whoami",
    "list_items",
    "summarize",
    "post_result",
    "wait_for_job",
    "list_items_deferred",
    "wait_for_job_deferred",
    "whoami_as[0]",
    "whoami_as[1]",
    "whoami_as[2]",
}


def test_demo_dag_runs_every_task_against_the_server(run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    result = run_dag("jwt_bearer_demo")

    assert result.states == dict.fromkeys(ALL_TASKS, "success"), result.output[-3000:]
    assert result.xcom("whoami")["sub"] == "alice"
    ids = list(range(1, 24))
    assert [i for page in result.xcom("list_items") for i in page] == ids
    assert [i for page in result.xcom("list_items_deferred") for i in page] == ids
    assert auth_server.results == [{"pages": 3, "items_fetched": 23, "first": 1, "last": 23}]
    assert result.xcom("wait_for_job")["state"] == "done"
    assert result.xcom("wait_for_job_deferred") == {"job_id": "demo-job-deferred", "state": "done", "polls": 3}

    item_pages = [r["query"].get("page") for r in auth_server.api_requests if r["path"] == "/api/items"]
    assert sorted(item_pages) == ["1", "1", "2", "2", "3", "3"]
    polls = Counter(r["path"] for r in auth_server.api_requests if r["path"].startswith("/api/jobs/"))
    assert polls == {"/api/jobs/demo-job": 3, "/api/jobs/demo-job-deferred": 3}


def test_mapped_tasks_impersonate_one_subject_each(run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    result = run_dag("jwt_bearer_demo")

    assert [result.xcom("whoami_as", i)["sub"] for i in range(3)] == ["alice", "bob", "carol"]
    whoami_subjects = [r["subject"] for r in auth_server.api_requests if r["path"] == "/api/whoami"]
    assert Counter(whoami_subjects) == {"alice": 2, "bob": 1, "carol": 1}  # alice: the TaskFlow task too
    issued = Counter(r["issued_sub"] for r in auth_server.token_requests if r["success"])
    # one token per subject: the cache is per subject, and shared by every task of the process
    assert issued == {"alice": 1, "bob": 1, "carol": 1}
