"""Test-only DAGs (tests/e2e): requests that would carry the token to a host the connection does not trust.

The tests point ``endpoint`` (or the "next page" link, through ``JWT_E2E_NEXT_URL``) at a
recording server on another loopback address before the run.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")
#: Replaced by the tests with the other host's URL.
ELSEWHERE = "https://placeholder.invalid/set-by-the-test"


def next_page_elsewhere(response: requests.Response) -> dict[str, Any] | None:
    """Follow an absolute "next" link to another host, as an API answer could make a DAG do."""
    url = os.environ.get("JWT_E2E_NEXT_URL")
    return {"endpoint": url, "query": None} if response.json().get("page") == 1 and url else None


with DAG("jwt_e2e_trusted_hosts", schedule=None, start_date=START, tags=["test"]):
    for mode, deferrable in (("sync", False), ("deferred", True)):
        JwtBearerHttpOperator(task_id=f"absolute_{mode}", endpoint=ELSEWHERE, deferrable=deferrable, retry=False)
        JwtBearerHttpOperator(
            task_id=f"paginate_away_{mode}",
            endpoint="items",
            query={"per_page": 5},
            pagination_function=next_page_elsewhere,
            deferrable=deferrable,
            retry=False,
        )
        JwtBearerHttpSensor(
            task_id=f"sensor_{mode}",
            endpoint=ELSEWHERE,
            expected_json={"state": "done"},
            poke_interval=0.2,
            timeout=20,
            deferrable=deferrable,
            retry=False,
        )
