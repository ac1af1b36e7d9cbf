"""Test-only DAG (tests/e2e): bound tokens (DPoP or mTLS) from tasks, the trigger and a deferred sensor.

The ``jwt_bound`` connection is pointed by the test at the local server with ``dpop`` or ``mtls``: the
DAG does not know which. A synchronous call, a paginated call that defers once per page (each page
sent from the triggerer, with its own proof), and a deferrable sensor polling a job.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor
from tests.e2e.checks import job_is_done


def next_page(response: requests.Response) -> dict[str, Any] | None:
    page = response.json().get("next_page")
    return {"query": {"page": page}} if page else None


def item_ids(response: requests.Response) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


with DAG("jwt_e2e_binding", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["test"]):
    JwtBearerHttpOperator(task_id="whoami_sync", jwt_bearer_conn_id="jwt_bound", endpoint="whoami")
    JwtBearerHttpOperator(
        task_id="items_deferred",
        jwt_bearer_conn_id="jwt_bound",
        endpoint="items",
        query={"page": 1, "per_page": 10},
        pagination_function=next_page,
        response_filter=item_ids,
        deferrable=True,
    )
    JwtBearerHttpSensor(
        task_id="job_deferred",
        jwt_bearer_conn_id="jwt_bound",
        endpoint="jobs/bound-job",
        response_check=job_is_done,
        poke_interval=0.2,
        timeout=60,
        deferrable=True,
    )
