"""Test-only DAG (tests/e2e/test_telemetry.py): tokens and API calls from a task and from the triggerer.

Run with Airflow's ``[metrics] statsd_on`` and ``[traces] otel_on``: the test reads the metrics from a
UDP listener and the spans from an in-memory exporter. The deferred call uses a connection of its own
(``jwt_telemetry_trigger``, another subject: another token), so that its token request is known to come
from the trigger.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("jwt_e2e_telemetry", schedule=None, start_date=START, tags=["test"]):

    @task
    def calls() -> dict[str, Any]:
        hook = JwtBearerHook("jwt_telemetry")
        hook.get_token()  # a miss: the token request
        for _ in range(4):
            hook.get_token()  # hits in the process cache
        first = hook.run("whoami", retry=True).json()  # the test makes the server answer 429 once
        second = hook.run("whoami").json()
        return {"first": first["sub"], "second": second["sub"]}

    deferred = JwtBearerHttpOperator(
        task_id="deferred", jwt_bearer_conn_id="jwt_telemetry_trigger", endpoint="whoami", deferrable=True
    )

    calls() >> deferred
