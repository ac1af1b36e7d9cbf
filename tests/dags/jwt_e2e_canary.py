"""Test-only DAG (tests/e2e/test_canary.py): every path that handles a secret, against a careless server.

The server (``careless`` knob) repeats credentials in its answers: token-endpoint errors quote
the client secret and the assertion, ``/api/echo-authorization`` returns the whole
``Authorization`` header. User code logs a token and an assertion, as a careless DAG would.
The test then searches everything the run left for every secret involved.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")
user_log = logging.getLogger("dag.user_code")

with DAG("jwt_e2e_canary", schedule=None, start_date=START, tags=["test"]):

    @task
    def hook_calls() -> dict[str, Any]:
        hook = JwtBearerHook()
        token = hook.get_token()
        assertion = hook.mint_assertion(subject="bob")
        # careless user code: both are blanked in the log line by the provider's redaction
        user_log.info("user code logs the token %s and an assertion %s", token.access_token, assertion)
        user_log.info("and the header: Authorization: Bearer %s", token.access_token)
        with hook.get_conn(subject="carol") as session:
            who = session.get("whoami").json()
        run = hook.run("whoami", claims={"roles": ["a", "b"]}).json()
        ok, message = hook.test_connection()
        return {"token": repr(token), "who": who["sub"], "run": run["sub"], "test": [ok, message]}

    hook_calls()

    for mode, deferrable in (("sync", False), ("deferred", True)):
        JwtBearerHttpOperator(
            task_id=f"echo_{mode}", endpoint="echo-authorization", log_response=True, deferrable=deferrable
        )
        JwtBearerHttpOperator(
            task_id=f"echo_error_{mode}",
            endpoint="echo-authorization",
            query={"status": 400},
            retry=False,
            deferrable=deferrable,
        )
        JwtBearerHttpSensor(
            task_id=f"sensor_{mode}",
            endpoint=f"jobs/canary-{mode}",
            expected_json={"state": "done"},
            poke_interval=0.2,
            timeout=30,
            log_response=True,
            deferrable=deferrable,
        )
        JwtBearerHttpOperator(
            task_id=f"refused_token_{mode}",
            jwt_bearer_conn_id="jwt_canary_wrong_secret",
            endpoint="whoami",
            deferrable=deferrable,
        )
        JwtBearerHttpOperator(
            task_id=f"wrong_store_password_{mode}",
            jwt_bearer_conn_id="jwt_canary_wrong_password",
            endpoint="whoami",
            deferrable=deferrable,
        )
