"""The event-driven DAG of ``tests/cluster/test_event_watcher.py``: one run per change of a watched resource.

``jwt_cluster_events`` is scheduled on the asset ``jwt_cluster_export``, whose ``AssetWatcher`` runs
``JwtBearerHttpEventTrigger`` in the stack's triggerer: it polls the authserver's
``/api/exports/cluster`` through the compose connection ``jwt_bearer_default`` (tokens shared
through the broker's Redis) every :data:`POLL_INTERVAL` seconds, and fires when the export is
``ready`` and shows a state it has not fired for. The DAG is unpaused when created, so that the
dag-processor registers the watcher on its first parse. Its one task returns the identities of the
asset events that triggered the run (the XCom the test reads).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jwt_provider.triggers.event import JwtBearerHttpEventTrigger

DAG_ID = "jwt_cluster_events"
EXPORT = "cluster"
POLL_INTERVAL = 2.0

EXPORT_ASSET = Asset(
    "jwt_cluster_export",
    watchers=[
        AssetWatcher(
            name="jwt_cluster_export_watcher",
            trigger=JwtBearerHttpEventTrigger(
                jwt_bearer_conn_id="jwt_bearer_default",
                endpoint=f"exports/{EXPORT}",
                condition={"path": "status", "equals": "ready"},
                poll_interval=POLL_INTERVAL,
                jitter=0.1,
                max_consecutive_failures=5,
                retry={"max_attempts": 2, "backoff": 0.5},
            ),
        )
    ],
)

with DAG(
    dag_id=DAG_ID,
    description="Runs once per change of the authserver's export, watched from the triggerer (tests/cluster)",
    schedule=[EXPORT_ASSET],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["jwt-bearer", "test"],
    doc_md=__doc__,
):

    @task
    def handle_export(**context: Any) -> list[str]:
        """The identities of the asset events of this run (one per run when changes are spaced out)."""
        identities = []
        for events in context["triggering_asset_events"].values():
            for event in events:
                payload = (event.extra or {}).get("payload") or {}
                if payload.get("status") != "changed":
                    raise RuntimeError(f"the watcher reported a failure: {payload}")
                identities.append(str(payload["identity"]))
        return identities

    handle_export()
