"""The DAGs that ``tests/cluster`` runs on the compose stack started as processes.

Two DAGs of the same shape, each calling the API through its own connection: ``jwt_cluster``
through the compose file's ``jwt_bearer_default`` (the stack's ``[jwt_bearer] token_cache = redis``:
one token for every process), ``jwt_cluster_memory`` through ``jwt_bearer_memory``, the same
connection with ``token_cache: memory`` (a token per process), ``jwt_cluster_keyless`` through
``jwt_bearer_keyless``, without a key: the JWT is a projected token file that the test rotates in the
middle of the run. Each has:

* ``whoami``: 100 mapped ``JwtBearerHttpOperator`` tasks, all with the connection's subject, spread
  over the Celery workers: each task process gets (or shares) a token for the same cache key;
* ``subjects``: what the mapped tasks saw (one subject, one client, how many calls);
* ``items_deferred``: a paginated call in deferrable mode (23 items, 3 pages): every page is a deferral, sent from the
  triggerer, its answer handled back on a worker;
* ``jobs_deferred``: mapped deferrable sensors, polled concurrently by the triggerer until each job is
  done (the devserver answers ``done`` from the third poll on).
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG, task

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

DAG_ID = "jwt_cluster"
MEMORY_DAG_ID = "jwt_cluster_memory"
MEMORY_CONN_ID = "jwt_bearer_memory"
KEYLESS_DAG_ID = "jwt_cluster_keyless"
KEYLESS_CONN_ID = "jwt_bearer_keyless"
#: DAG id → the connection its tasks use.
DAGS = {DAG_ID: "jwt_bearer_default", MEMORY_DAG_ID: MEMORY_CONN_ID, KEYLESS_DAG_ID: KEYLESS_CONN_ID}
MAPPED_CALLS = 100
DEFERRED_JOBS = 4
#: Deferrable tasks first: their triggers then run while the workers work through the mapped calls.
FIRST = {"priority_weight": 1000, "weight_rule": "absolute"}


def next_page(response: requests.Response) -> dict[str, Any] | None:
    page = response.json().get("next_page")
    return {"query": {"page": page}} if page else None


def item_ids(response: requests.Response) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


def build(dag_id: str, conn_id: str) -> DAG:
    with DAG(
        dag_id=dag_id,
        description=f"Many token users at once, on Celery workers and the triggerer, through {conn_id} (tests/cluster)",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["jwt-bearer", "test"],
        doc_md=__doc__,
    ) as dag:
        whoami = JwtBearerHttpOperator.partial(task_id="whoami", jwt_bearer_conn_id=conn_id, endpoint="whoami").expand(
            query=[{"call": index} for index in range(MAPPED_CALLS)]
        )

        @task
        def subjects(answers: list[dict[str, Any]]) -> dict[str, Any]:
            """One subject and one client across every mapped call (the XCom the test reads)."""
            answers = list(answers)
            return {
                "calls": len(answers),
                "subjects": sorted({answer["sub"] for answer in answers}),
                "clients": sorted({answer["client_id"] for answer in answers}),
            }

        subjects(whoami.output)

        JwtBearerHttpOperator(
            task_id="items_deferred",
            jwt_bearer_conn_id=conn_id,
            endpoint="items",
            query={"page": 1, "per_page": 10},
            pagination_function=next_page,
            response_filter=item_ids,
            deferrable=True,
            **FIRST,
        )

        JwtBearerHttpSensor.partial(
            task_id="jobs_deferred",
            jwt_bearer_conn_id=conn_id,
            expected_json={"state": "done"},  # evaluated in the triggerer
            poke_interval=1,
            timeout=300,
            deferrable=True,
            **FIRST,
        ).expand(endpoint=[f"jobs/cluster-{index}" for index in range(DEFERRED_JOBS)])
    return dag


for _dag_id, _conn_id in DAGS.items():
    build(_dag_id, _conn_id)
