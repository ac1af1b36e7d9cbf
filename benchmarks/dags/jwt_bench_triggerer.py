"""The DAGs of ``benchmarks/bench_triggerer.py``: deferrable sensors, asset watchers and a lag probe.

Sizes and the poll interval come from the environment the benchmark gives every Airflow component
(``JWT_BENCH_SENSORS``, ``JWT_BENCH_WATCHERS``, ``JWT_BENCH_POLL``), so the DAG processor and the
benchmark's seeding step build the same tasks. Every DAG is paused (the compose stack pauses new
DAGs): the benchmark creates their runs through the REST API and puts the task instances into the
deferred state itself, by running each task's own ``execute`` up to its ``TaskDeferred``.

* ``bench_triggerer_jwt``: ``JwtBearerHttpSensor(deferrable=True)`` tasks polling the authserver's
  export ``bench-gate-jwt`` through ``jwt_bench`` (404 until the benchmark publishes it).
* ``bench_triggerer_http``: the http provider's ``HttpSensor(deferrable=True)`` on the same API and
  export (``bench-gate-http``), with a static bearer header in the ``bench_http`` connection's extra.
* ``bench_triggerer_watchers``: scheduled on assets, each watched by ``JwtBearerHttpEventTrigger``
  polling its own export through ``jwt_bench``; unpaused by the benchmark when the watchers should run.
* ``bench_triggerer_probe``: one task, deferred on ``LagProbeTrigger``.
"""

from __future__ import annotations

import os

from airflow.providers.http.sensors.http import HttpSensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher

from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor
from airflow_jwt_provider.triggers.event import JwtBearerHttpEventTrigger
from benchmarks.triggerer_support import DAG_IDS, GATES, HTTP_CONN, JWT_CONN, WATCH_EXPORT  # PYTHONPATH: the repository

SENSORS = int(os.environ.get("JWT_BENCH_SENSORS", "0"))
WATCHERS = int(os.environ.get("JWT_BENCH_WATCHERS", "0"))
POLL = float(os.environ.get("JWT_BENCH_POLL", "10"))

with DAG(DAG_IDS["jwt"], schedule=None, catchup=False) as jwt_dag:
    for index in range(SENSORS):
        JwtBearerHttpSensor(
            task_id=f"sensor_{index:04d}",
            jwt_bearer_conn_id=JWT_CONN,
            endpoint=f"exports/{GATES['jwt']}",
            deferrable=True,
            poke_interval=POLL,
            timeout=3600,
        )

with DAG(DAG_IDS["http"], schedule=None, catchup=False) as http_dag:
    for index in range(SENSORS):
        HttpSensor(
            task_id=f"sensor_{index:04d}",
            http_conn_id=HTTP_CONN,
            endpoint=f"exports/{GATES['http']}",
            method="GET",
            deferrable=True,
            poke_interval=POLL,
            timeout=3600,
        )

watched = [
    Asset(
        f"bench_watch_{index}",
        watchers=[
            AssetWatcher(
                name=f"bench_watch_{index}",
                trigger=JwtBearerHttpEventTrigger(
                    jwt_bearer_conn_id=JWT_CONN, endpoint=f"exports/{WATCH_EXPORT.format(index)}", poll_interval=POLL
                ),
            )
        ],
    )
    for index in range(WATCHERS)
]
if watched:
    with DAG(DAG_IDS["watchers"], schedule=AssetAny(*watched), catchup=False) as watchers_dag:
        EmptyOperator(task_id="handle")

with DAG(DAG_IDS["probe"], schedule=None, catchup=False) as probe_dag:
    EmptyOperator(task_id="probe")
