"""Metrics and spans of a real task run and its trigger, configured the way an operator configures Airflow.

A fresh process runs ``dag.test()`` of ``jwt_e2e_telemetry`` with ``AIRFLOW__METRICS__*`` pointing
Airflow's StatsD client at a UDP socket of this test (Stats is set up when Airflow is imported, hence
the subprocess) and ``AIRFLOW__TRACES__OTEL_ON``, which makes Airflow install its tracer provider;
the runner adds an in-memory exporter to that provider. The task fetches a token and calls the API
(the server answers one 429); the deferred operator's trigger calls it with a connection of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, REPO_ROOT, connection_extra, register
from tests.telemetry_support import StatsdListener, total

pytestmark = pytest.mark.slow

CLIENT_SECRET = "tElEmEtRy-e2e-secret-7c2a"


@pytest.fixture
def listener() -> Iterator[StatsdListener]:
    with_listener = StatsdListener()
    yield with_listener
    with_listener.close()


def _run(server: LocalAuthorizationServer, store: ks.Keystore, listener: StatsdListener, tmp: Path) -> dict[str, Any]:
    def conn(subject: str) -> str:
        return json.dumps(
            {
                "conn_type": "jwt_bearer",
                "host": server.api_url,
                "login": CLIENT_ID,
                "password": CLIENT_SECRET,
                "extra": connection_extra(store, server, subject=subject),
            }
        )

    env = {
        **os.environ,
        "AIRFLOW_CONN_JWT_TELEMETRY": conn("alice"),
        "AIRFLOW_CONN_JWT_TELEMETRY_TRIGGER": conn("bob"),  # another token: the trigger asks for its own
        **listener.airflow_env(),  # InfluxDB-style tags in the lines, to tell task and trigger apart
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__TRACES__OTEL_ON": "True",
        "OTEL_TRACES_EXPORTER": "console",  # Airflow's exporter; the runner adds an in-memory one
    }
    out = tmp / "result.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.e2e.telemetry_runner", "jwt_e2e_telemetry", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    result["output"] = output
    return result


def test_a_task_and_its_trigger_send_metrics_and_spans(
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    listener: StatsdListener,
    airflow_db: Path,
    dags_folder: Path,
    tmp_path: Path,
) -> None:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    auth_server.fail_next("whoami", 429, retry_after=0)  # the task's first call, which retries
    auth_server.keep_credentials = True
    result = _run(auth_server, store, listener, tmp_path)
    assert result["states"] == {"calls": "success", "deferred": "success"}, result["output"][-3000:]

    got = listener.drain()
    task = {"conn_id": "jwt_telemetry"}
    trigger = {"conn_id": "jwt_telemetry_trigger"}
    # the task: one token request, four hits before the calls and one per call, a 429 retried
    assert total(got, "airflow.jwt_bearer.token_request.success", **task, grant="jwt-bearer") == 1
    assert total(got, "airflow.jwt_bearer.cache.miss", **task) == 1
    assert total(got, "airflow.jwt_bearer.cache.hit_process", **task) >= 4
    assert total(got, "airflow.jwt_bearer.assertion.minted", **task, signer="local") == 1
    assert total(got, "airflow.jwt_bearer.retry.http_429", **task, target="api") == 1
    # the trigger (run by dag.test() in the same process): its own token request and call
    assert total(got, "airflow.jwt_bearer.token_request.success", **trigger, grant="jwt-bearer") == 1
    assert total(got, "airflow.jwt_bearer.cache.miss", **trigger) == 1
    timers = [d for d in got if d.name == "airflow.jwt_bearer.token_request.duration"]
    assert {d.tags["conn_id"] for d in timers} == {"jwt_telemetry", "jwt_telemetry_trigger"}
    assert all(d.type == "ms" for d in timers)
    assert total(got, "airflow.jwt_bearer.token_request.refused") == 0

    spans = result["spans"]
    calls = [s for s in spans if s["name"] == "jwt_bearer.api_call"]
    tokens = [s for s in spans if s["name"] == "jwt_bearer.token"]
    by_conn = {t["attributes"]["jwt_bearer.conn_id"]: t for t in tokens}
    assert set(by_conn) == {"jwt_telemetry", "jwt_telemetry_trigger"}
    assert by_conn["jwt_telemetry"]["attributes"]["jwt_bearer.cache"] == "endpoint"
    assert by_conn["jwt_telemetry"]["attributes"]["http.response.status_code"] == 200
    trigger_calls = [c for c in calls if c["attributes"]["jwt_bearer.conn_id"] == "jwt_telemetry_trigger"]
    assert len(trigger_calls) == 1
    # the trigger fetched its token inside its API call (a thread of the event loop, context copied)
    assert by_conn["jwt_telemetry_trigger"]["parent_id"] == trigger_calls[0]["span_id"]
    (worker,) = [s for s in spans if s["name"] == "worker.jwt_e2e_telemetry"]
    # every API call of the task and of the trigger (run on its own event loop) hangs under the worker span
    assert [c["parent_id"] for c in calls] == [worker["span_id"]] * len(calls)
    assert by_conn["jwt_telemetry"]["parent_id"] == worker["span_id"]  # hook.get_token(), outside any API call
    statuses = sorted(c["attributes"]["http.response.status_code"] for c in calls)
    assert statuses == [200, 200, 200, 429]  # the task's 429, its retry, its second call, the trigger's call

    text = "\n".join(listener.lines) + json.dumps(spans)
    for secret in [CLIENT_SECRET, *auth_server.received_credentials, *auth_server.issued_tokens()]:
        assert secret not in text
