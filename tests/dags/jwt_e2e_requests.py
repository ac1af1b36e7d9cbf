"""Test-only DAGs (tests/e2e): pagination with revocation and retries, checks that fail, secrets.

Each scenario exists in a synchronous and a deferrable variant, as ``<dag_id>_sync`` and
``<dag_id>_deferred``. They use the ``jwt_bearer_default`` connection, which the tests point
at the local authorization server.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG, task

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
MODES = {"sync": False, "deferred": True}
#: Short waits, so that the retry tests take seconds.
FAST_RETRY = {"max_attempts": 3, "backoff": 0.2, "max_wait": 5}


def next_page(response: requests.Response) -> dict[str, Any] | None:
    page = response.json().get("next_page")
    return {"query": {"page": page}} if page else None


def item_ids(response: requests.Response) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


for mode, deferrable in MODES.items():
    # Paging through /items 5 at a time (5 pages); tests revoke tokens or inject 429/503 on the way.
    with DAG(f"jwt_e2e_pages_{mode}", schedule=None, start_date=START, tags=["test"]):
        JwtBearerHttpOperator(
            task_id="list_items",
            endpoint="items",
            query={"per_page": 5},
            pagination_function=next_page,
            response_filter=item_ids,
            retry=FAST_RETRY,
            deferrable=deferrable,
        )

    # Answers the task must refuse, each with a clear message.
    with DAG(f"jwt_e2e_refusals_{mode}", schedule=None, start_date=START, tags=["test"]):
        JwtBearerHttpOperator(
            task_id="check_fails",
            endpoint="whoami",
            response_check=lambda response: response.json()["sub"] == "nobody",
            deferrable=deferrable,
        )
        JwtBearerHttpOperator(
            task_id="bad_request",
            endpoint="items",
            query={"page": 0},
            deferrable=deferrable,
        )
        JwtBearerHttpOperator(
            task_id="unexpected_status",
            method="POST",
            endpoint="results",
            json={"n": 1},
            accepted_statuses=[200],  # the API answers 201
            deferrable=deferrable,
        )

    # Where a secret could show: logged answers, XCom, rendered fields, headers the API received.
    with DAG(f"jwt_e2e_secrets_{mode}", schedule=None, start_date=START, tags=["test"]):
        JwtBearerHttpOperator(
            task_id="echo_headers",
            endpoint="echo-headers",
            headers={"X-Request-Source": "{{ dag.dag_id }}"},
            log_response=True,
            deferrable=deferrable,
        )

        @task
        def token_summary() -> dict[str, Any]:
            """A DAG author printing a token by mistake shows its type and expiry only."""
            hook = JwtBearerHook("jwt_bearer_default")
            token = hook.get_token()
            print(f"token: {token!r} / {token}")
            with hook.get_conn() as session:
                echoed = session.get("echo-headers").json()
            return {"token": str(token), "authorization": echoed.get("Authorization")}

        token_summary()
