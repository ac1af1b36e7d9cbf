"""The sensor end to end: reschedule mode, deferrable mode (condition in the triggerer), refusals."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_sensor_waits_in_reschedule_and_deferrable_modes(run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    result = run_dag("jwt_e2e_sensors")

    assert result.states == {"reschedule": "success", "deferred_with_check": "success"}, result.output[-3000:]
    assert result.xcom("reschedule")["state"] == "done"
    assert result.xcom("deferred_with_check") == {"job_id": "deferred-job", "state": "done", "polls": 3}
    polls = [(r["path"], r["subject"]) for r in auth_server.api_requests]
    assert sorted(polls) == sorted(
        [("/api/jobs/reschedule-job", "alice")] * 3 + [("/api/jobs/deferred-job", "bob")] * 3
    )
    assert "Rescheduling task" in result.output or "up_for_reschedule" in result.output.lower()


def test_sensor_refusals_fail_the_task_clearly(run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    result = run_dag("jwt_e2e_sensor_refusals")

    assert result.states == dict.fromkeys(["deferred_lambda", "bad_request_sync", "bad_request_deferred"], "failed")
    assert "response_check '<lambda>' cannot run in the triggerer" in result.output
    assert "/api/jobs/never-polled" not in [r["path"] for r in auth_server.api_requests]
    assert result.output.count(f"GET {auth_server.api_url}/items failed: HTTP 400") >= 2
