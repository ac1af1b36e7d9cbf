"""Test-only DAGs (tests/e2e): the sensor in reschedule mode and in deferrable mode."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor
from tests.e2e.checks import job_is_done

START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("jwt_e2e_sensors", schedule=None, start_date=START, tags=["test"]):
    JwtBearerHttpSensor(
        task_id="reschedule",
        endpoint="jobs/reschedule-job",
        response_check=lambda response, ti: response.json()["state"] == "done" and ti.task_id == "reschedule",
        mode="reschedule",
        poke_interval=1,
        timeout=60,
    )
    JwtBearerHttpSensor(
        task_id="deferred_with_check",
        endpoint="jobs/deferred-job",
        response_check=job_is_done,  # importable: evaluated in the triggerer
        subject="bob",
        poke_interval=0.2,
        timeout=60,
        deferrable=True,
    )

with DAG("jwt_e2e_sensor_refusals", schedule=None, start_date=START, tags=["test"]):
    JwtBearerHttpSensor(
        task_id="deferred_lambda",
        endpoint="jobs/never-polled",
        response_check=lambda response: True,
        poke_interval=1,
        deferrable=True,
    )
    JwtBearerHttpSensor(
        task_id="bad_request_sync",
        endpoint="items",
        query={"page": 0},
        poke_interval=1,
        timeout=10,
    )
    JwtBearerHttpSensor(
        task_id="bad_request_deferred",
        endpoint="items",
        query={"page": 0},
        poke_interval=1,
        timeout=10,
        deferrable=True,
    )
