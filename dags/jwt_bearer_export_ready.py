"""Event-driven: run when the vendor's export is ready, once per new export (an ``AssetWatcher``).

Connection ``jwt_bearer_default`` (type ``jwt_bearer``), as for ``jwt_bearer_demo``: the local
authorization server's API (``scripts/demo`` and ``docker compose`` define it). The DAG is scheduled
on the asset ``jwt_bearer_vendor_export``, whose watcher, ``JwtBearerHttpEventTrigger``, runs in the
triggerer: it polls ``exports/daily`` with the connection's token every 30 s (give or take 10 %, so
that many watchers do not poll in step), sending ``If-None-Match`` with the last ``ETag``, and fires
once per new state of the export whose ``status`` is ``ready``. A triggerer restart does not fire
again for a state already fired for when the connection shares its tokens (``token_cache`` redis, as
in the compose stack); with ``memory`` it may fire once more.

Like every example DAG it is paused when created: unpause it to start the watcher. Against the local
server, publish an export (each call is a change)::

    curl -X POST http://localhost:8081/_devserver/exports/daily -H 'Content-Type: application/json' \\
         -d '{"status": "ready", "file": "daily-2026-12-05.csv"}'

``process_export`` reads the event from ``triggering_asset_events``; a watcher that failed
``max_consecutive_failures`` polls in a row fires an ``error`` event instead, which fails the task:
the outage shows as a failed run rather than as silence.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jwt_provider.triggers.event import JwtBearerHttpEventTrigger

VENDOR_EXPORT = Asset(
    "jwt_bearer_vendor_export",
    watchers=[
        AssetWatcher(
            name="jwt_bearer_vendor_export_watcher",
            trigger=JwtBearerHttpEventTrigger(
                jwt_bearer_conn_id="jwt_bearer_default",
                endpoint="exports/daily",
                condition={"path": "status", "equals": "ready"},
                poll_interval=30,
                jitter=0.1,
                max_consecutive_failures=5,
            ),
        )
    ],
)

with DAG(
    dag_id="jwt_bearer_export_ready",
    description="Runs once per new export of the vendor API, watched from the triggerer",
    schedule=[VENDOR_EXPORT],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jwt-bearer", "example", "event-driven"],
    doc_md=__doc__,
):

    @task
    def process_export(**context: Any) -> list[dict[str, Any]]:
        """What the watcher saw: one entry per asset event of this run (identity and the export's JSON)."""
        exports = []
        for events in context["triggering_asset_events"].values():
            for event in events:
                payload = (event.extra or {}).get("payload") or {}
                if payload.get("status") == "error":
                    raise RuntimeError(f"the export watcher failed: {payload.get('message')}")
                exports.append({"identity": payload.get("identity"), "export": payload.get("body")})
        return exports

    process_export()
