"""The DAG that ``tests/chaos`` runs while it injects faults into the stack.

One connection (the compose file's ``jwt_bearer_default``, ``token_cache = redis`` for the whole
stack) used by:

* ``whoami``: ``CHAOS_MAPPED`` mapped ``JwtBearerHttpOperator`` tasks, at most ``CHAOS_PARALLEL``
  at a time, so that tasks are in flight during every fault; Airflow retries a failed one
  (``retries``) after a short delay;
* ``subjects``: what the mapped tasks saw (the XCom the test checks for completeness);
* ``jobs_deferred``: ``CHAOS_SENSORS`` mapped deferrable sensors, first in line: they stay deferred
  on the triggerer until the test lets the authserver's jobs finish.

Sizes come from the environment (the stack's ``EXTRA_ENV``), read when the file is parsed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

DAG_ID = "jwt_chaos"
CONN_ID = "jwt_bearer_default"
MAPPED_CALLS = int(os.environ.get("CHAOS_MAPPED", "40"))
SENSORS = int(os.environ.get("CHAOS_SENSORS", "10"))
PARALLEL = int(os.environ.get("CHAOS_PARALLEL", "2"))
#: Airflow's own retries of a task: a task killed with its worker, or whose retry policy ran out.
TASK_RETRIES = 3
#: Between them: four tries span more than a minute, as long as the token endpoint's outage in the full-size run.
RETRY_DELAY = timedelta(seconds=20)
FIRST = {"priority_weight": 1000, "weight_rule": "absolute"}

with DAG(
    dag_id=DAG_ID,
    description="Token users on Celery workers and the triggerer while faults are injected (tests/chaos)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=max(PARALLEL, 1) + SENSORS,
    tags=["jwt-bearer", "test"],
    doc_md=__doc__,
) as dag:
    whoami = JwtBearerHttpOperator.partial(
        task_id="whoami",
        jwt_bearer_conn_id=CONN_ID,
        endpoint="whoami",
        retries=TASK_RETRIES,
        retry_delay=RETRY_DELAY,
        max_active_tis_per_dag=PARALLEL,
    ).expand(query=[{"call": index} for index in range(MAPPED_CALLS)])

    @task
    def subjects(answers: list[dict[str, Any]]) -> dict[str, Any]:
        """One subject and one client across every mapped call."""
        answers = list(answers)
        return {
            "calls": len(answers),
            "subjects": sorted({answer["sub"] for answer in answers}),
            "clients": sorted({answer["client_id"] for answer in answers}),
        }

    subjects(whoami.output)

    JwtBearerHttpSensor.partial(
        task_id="jobs_deferred",
        jwt_bearer_conn_id=CONN_ID,
        expected_json={"state": "done"},
        poke_interval=2,
        timeout=1800,
        deferrable=True,
        retries=TASK_RETRIES,  # a trigger whose retry policy ran out (a long outage) fails its try
        retry_delay=RETRY_DELAY,
        **FIRST,
    ).expand(endpoint=[f"jobs/chaos-{index}" for index in range(SENSORS)])
