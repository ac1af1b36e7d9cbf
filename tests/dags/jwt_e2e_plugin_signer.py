"""Test-only DAG (tests/e2e/test_plugin_signer.py): assertions signed by a signer another package registers.

The ``jwt_plugin`` connection names ``signer: env_key``, which only the example plugin
(``tests/plugins/example_signer``) provides; the DAG itself does not know. One task calls the API
synchronously, one defers (the trigger builds the plugin's signer in the triggerer's thread).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

with DAG("jwt_e2e_plugin_signer", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["test"]):
    for mode, deferrable in {"sync": False, "deferred": True}.items():
        JwtBearerHttpOperator(
            task_id=f"whoami_{mode}",
            jwt_bearer_conn_id="jwt_plugin",
            endpoint="whoami",
            subject=f"plugin-{mode}",
            deferrable=deferrable,
        )
