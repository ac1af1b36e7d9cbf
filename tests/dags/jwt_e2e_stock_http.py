"""Test-only DAGs: the http provider's own ``HttpOperator`` with a ``jwt_bearer`` connection.

``jwt_e2e_stock_http``: synchronous mode, where Airflow builds the hook from the connection
type (``conn.get_hook``), i.e. ``JwtBearerHook``: supported.

``jwt_e2e_stock_http_deferred``: deferrable mode, where ``HttpTrigger``/``HttpAsyncHook``
read the connection themselves; the test shows what reaches the API (not supported).
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def next_page(response: requests.Response) -> dict[str, Any] | None:
    page = response.json().get("next_page")
    return {"data": {"page": page}} if page else None


with DAG("jwt_e2e_stock_http", schedule=None, start_date=START, tags=["test"]):
    HttpOperator(
        task_id="whoami",
        http_conn_id="jwt_bearer_default",
        method="GET",
        endpoint="whoami",
        response_filter=lambda response: response.json(),
    )
    HttpOperator(
        task_id="list_items",
        http_conn_id="jwt_bearer_default",
        method="GET",
        endpoint="items",
        data={"page": 1, "per_page": 10},
        pagination_function=next_page,
        response_filter=lambda responses: [item["id"] for r in responses for item in r.json()["items"]],
    )
    HttpOperator(
        task_id="post_result",
        http_conn_id="jwt_bearer_default",
        method="POST",
        endpoint="results",
        data='{"from": "HttpOperator"}',
        headers={"Content-Type": "application/json"},
        response_check=lambda response: response.status_code == 201,
    )

with DAG("jwt_e2e_stock_http_deferred", schedule=None, start_date=START, tags=["test"]):
    HttpOperator(
        task_id="echo_headers",
        http_conn_id="jwt_stock_deferred",
        method="GET",
        endpoint="echo-headers",
        deferrable=True,
    )
