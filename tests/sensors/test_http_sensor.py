"""JwtBearerHttpSensor without a run: what it hands the trigger in deferrable mode.

(End to end: ``tests/e2e/test_sensors.py`` and the demo DAG.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.polling import PollSpec
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor
from tests.e2e.checks import job_is_done


def test_deferrable_sensor_hands_the_whole_wait_to_the_trigger() -> None:
    sensor = JwtBearerHttpSensor(
        task_id="s",
        endpoint="jobs/1",
        response_check=job_is_done,
        expected_json={"state": "done"},
        waiting_statuses=[404, 409],
        accepted_statuses=[200],
        poke_interval=7,
        timeout=300,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    assert deferred.value.timeout == timedelta(seconds=300)
    poll = PollSpec.from_dict(deferred.value.trigger.serialize()[1]["poll"])
    assert poll == PollSpec(
        interval=7,
        waiting_statuses=(404, 409),
        accepted_statuses=(200,),
        expected_json={"state": "done"},
        response_check="tests.e2e.checks.job_is_done",
    )


def test_deferrable_sensor_refuses_a_check_the_triggerer_cannot_import() -> None:
    sensor = JwtBearerHttpSensor(
        task_id="s", endpoint="jobs/1", response_check=lambda r: True, poke_interval=1, deferrable=True
    )
    with pytest.raises(JwtBearerConfigError, match="use expected_json, or deferrable=False"):
        sensor.execute({})  # type: ignore[arg-type]


def test_sensor_templates_the_request_and_the_expected_json() -> None:
    assert {"endpoint", "query", "subject", "expected_json"} <= set(JwtBearerHttpSensor.template_fields)
