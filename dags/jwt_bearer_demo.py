"""Demo of the JWT-bearer provider against the local authorization server (``scripts/demo``).

Connection ``jwt_bearer_default`` (type ``jwt_bearer``): Host = the API base URL (the demo
server's ``/api``), Login = the client id, extras ``auth_url`` (token endpoint), ``key_file``,
``keystore_password`` and ``subject``. ``scripts/demo`` and ``docker compose`` define it.

What runs:

* ``whoami``: TaskFlow with ``JwtBearerHook().get_conn()``, a ``requests`` session that
  authenticates by itself;
* ``list_items``: pages through ``/items`` with ``pagination_function``; ``summarize`` and
  ``post_result`` send the count back (``POST /results``);
* ``wait_for_job``: a sensor polling ``/jobs/<id>`` until it is done;
* the same, deferrable (``list_items_deferred``, ``wait_for_job_deferred``): the requests are
  sent from the triggerer, no worker slot is held while waiting;
* ``whoami_as``: dynamic task mapping over subjects, one impersonated ``sub`` per mapped task.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG, task

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

PER_PAGE = 10
SUBJECTS = ["alice", "bob", "carol"]


def next_page(response: requests.Response) -> dict[str, Any] | None:
    """The next page's query, from the API's ``next_page`` (``None`` on the last page)."""
    page = response.json().get("next_page")
    return {"query": {"page": page}} if page else None


def item_ids(response: requests.Response) -> list[int]:
    """Keep only the ids of a page's items (what goes to XCom)."""
    return [item["id"] for item in response.json()["items"]]


def job_is_done(response: requests.Response) -> bool:
    return response.json().get("state") == "done"


with DAG(
    dag_id="jwt_bearer_demo",
    description="JWT bearer (RFC 7523) calls against the local demo API",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jwt-bearer", "demo"],
    doc_md=__doc__,
) as dag:

    @task
    def whoami() -> dict[str, Any]:
        """The hook's session adds the token, refreshes it and retries once on 401."""
        with JwtBearerHook("jwt_bearer_default").get_conn() as session:
            response = session.get("whoami")
            response.raise_for_status()
            return response.json()

    list_items = JwtBearerHttpOperator(
        task_id="list_items",
        endpoint="items",
        query={"page": 1, "per_page": PER_PAGE},
        pagination_function=next_page,
        response_filter=item_ids,
    )

    @task
    def summarize(pages: list[list[int]]) -> dict[str, Any]:
        ids = [item_id for page in pages for item_id in page]
        return {"pages": len(pages), "items_fetched": len(ids), "first": ids[0], "last": ids[-1]}

    post_result = JwtBearerHttpOperator(
        task_id="post_result",
        method="POST",
        endpoint="results",
        json=summarize(list_items.output),
        accepted_statuses=[201],
    )

    wait_for_job = JwtBearerHttpSensor(
        task_id="wait_for_job",
        endpoint="jobs/demo-job",
        response_check=job_is_done,
        poke_interval=1,
        timeout=60,
    )

    list_items_deferred = JwtBearerHttpOperator(
        task_id="list_items_deferred",
        endpoint="items",
        query={"page": 1, "per_page": PER_PAGE},
        pagination_function=next_page,
        response_filter=item_ids,
        deferrable=True,
    )

    wait_for_job_deferred = JwtBearerHttpSensor(
        task_id="wait_for_job_deferred",
        endpoint="jobs/demo-job-deferred",
        expected_json={"state": "done"},  # evaluated in the triggerer
        poke_interval=1,
        timeout=60,
        deferrable=True,
    )

    whoami_as = JwtBearerHttpOperator.partial(task_id="whoami_as", endpoint="whoami").expand(subject=SUBJECTS)

    me = whoami()
    me >> list_items
    post_result >> wait_for_job
    me >> list_items_deferred >> wait_for_job_deferred
    me >> whoami_as
