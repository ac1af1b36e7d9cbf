"""Test-only DAG (tests/e2e): a task whose assertions are signed inside a device (PKCS#11 token or KMS).

The ``jwt_device`` connection is pointed by the test at a SoftHSM2 token or at the KMS emulator;
the DAG does not know which: the signer is a connection setting. One task calls the API
synchronously, one defers (the trigger signs in its own thread, with the same cached signer).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

with DAG("jwt_e2e_device_signer", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["test"]):
    for mode, deferrable in {"sync": False, "deferred": True}.items():
        JwtBearerHttpOperator(
            task_id=f"whoami_{mode}",
            jwt_bearer_conn_id="jwt_device",
            endpoint="whoami",
            subject=f"device-{mode}",
            deferrable=deferrable,
        )
