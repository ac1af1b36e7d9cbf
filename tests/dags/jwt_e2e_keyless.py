"""Test-only DAGs (tests/e2e): connections without a key, whose JWT is the platform's.

``jwt_e2e_keyless_rotation`` calls the API before and after the platform rotates the projected token
file; the test fills ``rotate`` (the platform's rotation, then the server revoking every token, so
that the next calls need a new token and get it with the new file). ``jwt_e2e_keyless_grants`` calls
the API through three connections: token exchange without and with an actor token, and an Entra-style
federated client assertion. The tests point the ``jwt_keyless*`` connections at the local servers.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@task
def rotate() -> None:
    raise RuntimeError("the test fills this task's callable in")


with DAG("jwt_e2e_keyless_rotation", schedule=None, start_date=START, tags=["test"]):
    before = JwtBearerHttpOperator(task_id="whoami_before", jwt_bearer_conn_id="jwt_keyless", endpoint="whoami")
    after: list[Any] = [
        JwtBearerHttpOperator(
            task_id=f"whoami_after_{mode}",
            jwt_bearer_conn_id="jwt_keyless",
            endpoint="whoami",
            deferrable=deferrable,
        )
        for mode, deferrable in {"sync": False, "deferred": True}.items()
    ]
    before >> rotate() >> after[0] >> after[1]

with DAG("jwt_e2e_keyless_grants", schedule=None, start_date=START, tags=["test"]):
    for conn_id in ("jwt_keyless_exchange", "jwt_keyless_exchange_actor", "jwt_keyless_entra"):
        JwtBearerHttpOperator(
            task_id=conn_id.removeprefix("jwt_keyless_"), jwt_bearer_conn_id=conn_id, endpoint="whoami"
        )
