"""Faults at cluster scale: one DAG run on the tests/cluster stack while Redis, the token endpoint, the triggerer fail.

One run of :data:`~tests.chaos.dags.jwt_chaos.DAG_ID` (mapped token users on two Celery workers,
deferred sensors on the triggerer, one connection with ``token_cache = redis``), during which the
test injects one fault per phase, in this order, each when the run has reached a chosen point:

``clock``
    one worker restarted with its clock ``CHAOS_CLOCK_AHEAD`` (libfaketime), tokens shorter-lived
    than the skew so that it must fetch: its assertion is refused and the error names the skew;
    then its clock is set right again. It comes first: Airflow schedules the retry of a refused task
    from that worker's clock, that much later, and the other phases run meanwhile.
``redis``
    the Redis of the stack (Celery's broker and the token cache) is restarted, empty, while tasks
    run: the shared cache degrades to fetching without it and recovers; Airflow re-queues what the
    broker lost (``[scheduler] task_queued_timeout`` is short here).
``worker_kill``
    the shared token dropped from Redis and the next token request held by the authserver: the
    next task process to start (every running process keeps the token in memory) takes the
    cluster-wide fetch lock; the holder is found by its held request's client port, its worker
    SIGKILLed and started again: the holder's lease runs out within ``token_cache_wait``, a waiter
    takes the lock over, the killed task fails its heartbeat check (30 s here) and Airflow retries it.
``outage``
    every issued token is revoked and the token endpoint answers 503 with ``Retry-After`` for
    ``CHAOS_OUTAGE_SECONDS``: every process must fetch again and meets the outage; they wait as the
    retry policy says; a task fails only when its policy ran out (logged), and Airflow retries it.
``herd``
    every issued token revoked and the token endpoint answering 429 with ``Retry-After`` to
    everyone for ``CHAOS_HERD_SECONDS``: the lock holder retries as the policy says while the
    others wait on its lease; once the window is over one token is granted, not one per process.
``triggerer``
    the triggerer is restarted while every sensor is deferred; the sensors' jobs finish only after
    it is back: every sensor resumes and completes (a sensor whose trigger met the outage after its
    retry policy ran out was retried by Airflow before). It comes last: it needs no mapped task in flight.

The provider's own metrics (StatsD, ``jwt_bearer.shared_cache.lock_wait.<outcome>``) give every wait
on the fetch lock: the longest per phase is in the table, and the killed holder's bound is asserted.

The outcome table goes to the "chaos" section of pytest's report; the assertions follow it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from tests.chaos.dags.jwt_chaos import DAG_ID, MAPPED_CALLS, SENSORS
from tests.cluster.harness import (
    CONN_VAR,
    IMAGE_AIRFLOW_HOME,
    Cluster,
    ClusterError,
    InProcessAuthServer,
    stop_components,
    wait_until,
)
from tests.cluster.runs import state_counts, task_instances, wait_for_dag, wait_for_end, wait_for_tasks
from tests.e2e.conftest import JWT_PATTERN
from tests.telemetry_support import StatsdListener

# Also "cluster": it starts that stack, so `-m "not cluster"` leaves it out as it leaves tests/cluster out.
pytestmark = [pytest.mark.chaos, pytest.mark.cluster]

OUTAGE_SECONDS = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "3"))
#: How long the token endpoint answers 429 to everyone in the ``herd`` phase.
HERD_SECONDS = float(os.environ.get("CHAOS_HERD_SECONDS", "3"))
#: How late the API answers each whoami call: the mapped tasks are still in flight at every fault.
CALL_DELAY = float(os.environ.get("CHAOS_CALL_DELAY", "6"))
RETRY_AFTER = int(os.environ.get("CHAOS_RETRY_AFTER", "2"))
RUN_TIMEOUT = float(os.environ.get("CHAOS_RUN_TIMEOUT", "1200"))
#: Every Airflow process sends its metrics here: the provider's lock waits are read from them.
STATSD = StatsdListener()
#: ``[jwt_bearer] token_cache_wait``: how long a lock outlives a killed holder.
TOKEN_CACHE_WAIT = 10.0
#: The sizes reach the dag-processor (the DAG file reads them) and every component.
EXTRA_ENV = {
    **STATSD.airflow_env(),
    "AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT": str(TOKEN_CACHE_WAIT),
    "CHAOS_MAPPED": str(MAPPED_CALLS),
    "CHAOS_SENSORS": str(SENSORS),
    "CHAOS_PARALLEL": os.environ.get("CHAOS_PARALLEL", "2"),
    # A task whose Celery message was lost with the broker's Redis is queued again after this.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
    # A task whose worker was killed stops heartbeating: failed (and retried) after this.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
}
#: The phases to run, in this order (a subset while developing one). The clock comes first: Airflow schedules
#: the retry of a task refused on the worker ahead from that worker's clock, ``CHAOS_CLOCK_AHEAD`` late, and the
#: other phases run meanwhile. The triggerer's restart needs no mapped task in flight: it comes last.
PHASES = os.environ.get("CHAOS_PHASES", "clock,redis,worker_kill,outage,herd,triggerer").split(",")
#: How far ahead the clock of the ``clock`` phase's worker is (libfaketime's FAKETIME syntax).
CLOCK_AHEAD = os.environ.get("CHAOS_CLOCK_AHEAD", "+10m")
#: The skew in seconds (``+10m``, ``+90s``, ``+1h``): the clock phase's tokens live half of it, so that the
#: worker ahead sees every stored token expired and must fetch, and the others do not.
SKEW_SECONDS = int(CLOCK_AHEAD.strip("+smh")) * {"s": 1, "m": 60, "h": 3600}[CLOCK_AHEAD[-1]]
#: The worker that is killed, then restarted with its clock ahead.
FAULTY_WORKER = "airflow-worker-2"
#: How long the token request of the lock holder is held while its worker is killed.
HOLD_SECONDS = 30.0
#: Jobs stay "running" until the test lets them finish (after the triggerer's restart).
NEVER = 10**9


@dataclass
class Phase:
    """One fault: when it was injected and when the stack was seen to have recovered (``time.time()``)."""

    name: str
    fault: str
    started: float = 0.0
    ended: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChaosRun:
    run_id: str
    state: str
    seconds: float
    phases: list[Phase]
    task_instances: list[dict[str, Any]]
    token_requests: list[dict[str, Any]]
    #: The provider's lock waits (``jwt_bearer.shared_cache.lock_wait.<outcome>``): (arrival, outcome, seconds).
    lock_waits: list[tuple[float, str, float]] = field(default_factory=list)

    def of(self, task_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances if ti["task_id"] == task_id]


def _task_instances(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    return task_instances(cluster, DAG_ID, run_id)


def _wait_run(cluster: Cluster, run_id: str, what: str, check: Any, timeout: float) -> None:
    wait_for_tasks(cluster, DAG_ID, run_id, what, check, timeout)


def _succeeded(task_id: str, least: int) -> Any:
    return lambda tis: sum(ti["task_id"] == task_id and ti["state"] == "success" for ti in tis) >= least


def _all_deferred(tis: list[dict[str, Any]]) -> bool:
    return sum(ti["task_id"] == "jobs_deferred" and ti["state"] == "deferred" for ti in tis) == SENSORS


def _redis(cluster: Cluster) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=cluster.ports["redis"], socket_timeout=10)


def _our_keys(cluster: Cluster) -> list[str]:
    client = _redis(cluster)
    try:
        return sorted(key.decode() for key in client.keys("jwt_bearer:*"))
    finally:
        client.close()


def _phase_redis(cluster: Cluster, run_id: str) -> Phase:
    """Fault 1: the Redis of the stack restarted, empty, while tasks run."""
    phase = Phase("redis", "Redis (broker and token cache) restarted, empty", started=time.time())
    phase.notes["keys before"] = _our_keys(cluster)
    cluster.restart_redis()
    return phase


def _process_holding(cluster: Cluster, port: int) -> tuple[str | None, int | None]:
    """The component (and pid) whose process tree sent the request from client ``port`` to the authserver."""
    server_port = cluster.ports["authserver"]
    pids = [
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.pid and c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == server_port
    ]
    if not pids:
        return None, None
    with contextlib.suppress(psutil.Error):
        lineage = {pids[0], *(p.pid for p in psutil.Process(pids[0]).parents())}
        for component in cluster.components:
            if component.process is not None and component.process.pid in lineage:
                return component.name, pids[0]
    return None, pids[0]


def _phase_worker_kill(cluster: Cluster, run_id: str) -> Phase:
    """Fault 2: the shared token dropped, the next token request held; the worker of the task holding the lock killed.

    Only a task process that starts now misses the token (every running process keeps it in memory,
    the triggerer too): the lock holder is a mapped task on a worker. The authserver holds its
    request; the holder is found by that request's client port, and its worker SIGKILLed.
    """
    server = _server(cluster)
    phase = Phase("worker_kill", "worker SIGKILLed while its task holds the fetch lock", started=time.time())
    server.hold_next("/oauth2/token", HOLD_SECONDS)
    client = _redis(cluster)
    try:
        dropped = [key for key in client.keys("jwt_bearer:*:token") if client.delete(key)]
    finally:
        client.close()
    phase.notes["entries dropped"] = len(dropped)
    wait_until("a task's token request held", lambda: server.held_ports, timeout=180)
    holder, pid = _process_holding(cluster, server.held_ports[0])
    locks = [key for key in _our_keys(cluster) if key.endswith(":lock")]
    phase.notes.update(holder=holder, holder_pid=pid, locks_at_kill=len(locks))
    victim = holder if holder is not None and holder.startswith("airflow-worker") else FAULTY_WORKER
    phase.notes["killed"] = victim
    cluster.kill(victim)
    phase.notes["killed at"] = time.time()
    cluster.start_again(victim)
    return phase


def _endpoint_window(cluster: Cluster, name: str, status: int, seconds: float) -> Phase:
    """Every issued token revoked, and the token endpoint answering ``status`` with ``Retry-After`` for ``seconds``."""
    server = _server(cluster)
    fault = f"tokens revoked, token endpoint {status} Retry-After {RETRY_AFTER} s for {seconds:.0f} s"
    phase = Phase(name, fault, started=time.time())
    server.fail_for("/oauth2/token", status, seconds, retry_after=RETRY_AFTER)
    server.revoke_all_tokens()
    time.sleep(seconds)
    return phase


def _phase_outage(cluster: Cluster, run_id: str) -> Phase:
    """Fault 3: the token endpoint down (503) for OUTAGE_SECONDS; every process must fetch again and meets it."""
    return _endpoint_window(cluster, "outage", 503, OUTAGE_SECONDS)


def _phase_herd(cluster: Cluster, run_id: str) -> Phase:
    """Fault 3b: the token endpoint rate-limiting everyone (429) for HERD_SECONDS."""
    return _endpoint_window(cluster, "herd", 429, HERD_SECONDS)


def _phase_triggerer(cluster: Cluster, run_id: str) -> Phase:
    """Fault 4: the triggerer restarted while every sensor is deferred; the jobs finish once it is back."""
    server = _server(cluster)
    phase = Phase("triggerer", "triggerer restarted while every sensor is deferred", started=time.time())
    _wait_run(cluster, run_id, "every sensor deferred", _all_deferred, 300)
    cluster.restart("airflow-triggerer")
    cluster.wait_for("the restarted triggerer to report healthy", cluster._all_healthy, timeout=180)
    server.job_ready_after = 3  # the jobs finish now: the restarted triggerer's polls see them done
    _wait_run(cluster, run_id, "every sensor done", _succeeded("jobs_deferred", SENSORS), 600)
    return phase


def _phase_clock(cluster: Cluster, run_id: str) -> Phase:
    """Fault 5: one worker restarted with its clock ahead (libfaketime), every token revoked."""
    server = _server(cluster)
    phase = Phase("clock", f"{FAULTY_WORKER} restarted with its clock {CLOCK_AHEAD}", started=time.time())
    library = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not library:
        pytest.fail("libfaketime is not installed: run scripts/install-system-deps", pytrace=False)
    component = cluster.component(FAULTY_WORKER)
    stop_components([component])
    component.env = {**component.env, "LD_PRELOAD": str(library[0]), "FAKETIME": CLOCK_AHEAD}
    component.env["FAKETIME_DONT_RESET"] = "1"  # forked task processes keep the offset, not restart it
    cluster.start_again(FAULTY_WORKER)
    cluster.wait_for(
        f"{FAULTY_WORKER} to answer the broker",
        lambda: f"celery@{FAULTY_WORKER}" in cluster.celery_nodes(),
        timeout=180,
    )
    # Tokens shorter-lived than the skew: the worker ahead sees every stored token expired and fetches.
    server.token_lifetime = SKEW_SECONDS // 2
    server.revoke_all_tokens()
    refused = wait_until(
        "a token request refused from the worker whose clock is ahead",
        lambda: [r for r in server.token_requests if r["time"] >= phase.started and r["error"] == "invalid_grant"],
        timeout=300,
    )
    phase.notes["refused"] = [str(r.get("error_description"))[:120] for r in refused[:2]]
    # Its clock set right again: Airflow's retries of the refused tasks may land on it.
    stop_components([component])
    component.env = {k: v for k, v in component.env.items() if not k.startswith(("LD_PRELOAD", "FAKETIME"))}
    cluster.start_again(FAULTY_WORKER)
    server.token_lifetime = 3600
    return phase


PHASE_FUNCTIONS = {
    "redis": _phase_redis,
    "worker_kill": _phase_worker_kill,
    "outage": _phase_outage,
    "herd": _phase_herd,
    "triggerer": _phase_triggerer,
    "clock": _phase_clock,
}


def _server(cluster: Cluster) -> Any:
    """The in-process authorization server (``devserver.server.LocalAuthorizationServer``)."""
    assert isinstance(cluster.authserver, InProcessAuthServer)
    return cluster.authserver.server


@pytest.fixture(scope="module")
def chaos_run(cluster: Cluster) -> Iterator[ChaosRun]:
    """The DAG run with its faults, one per phase, in order; what the stack, the authserver and StatsD recorded."""
    authserver = cluster.authserver
    assert isinstance(authserver, InProcessAuthServer)
    server = authserver.server
    with STATSD.draining():
        wait_for_dag(cluster, DAG_ID, 180)
        server.reset()
        server.job_ready_after = NEVER
        server.set_delay("whoami", CALL_DELAY)
        cluster.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        started = time.monotonic()
        run_id = cluster.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})["dag_run_id"]
        phases: list[Phase] = []
        step = max(MAPPED_CALLS // (len(PHASES) + 2), 1)
        done = step

        # Before any fault: the sensors deferred, some token users done.
        _wait_run(
            cluster,
            run_id,
            "every sensor deferred and the first calls",
            lambda tis: _all_deferred(tis) and _succeeded("whoami", done)(tis),
            900,
        )
        for name in PHASES:
            before = state_counts(_task_instances(cluster, run_id))
            phase = PHASE_FUNCTIONS[name](cluster, run_id)
            phase.notes["whoami at the fault"] = {
                k.split(":")[1]: v for k, v in before.items() if k.startswith("whoami:")
            }
            done += step
            _wait_run(cluster, run_id, f"calls after the {name} phase", _succeeded("whoami", done), 900)
            phase.ended = time.time()
            phases.append(phase)

        state = wait_for_end(cluster, DAG_ID, run_id, RUN_TIMEOUT, started)
        seconds = time.monotonic() - started
        cluster.timings["DAG run with faults"] = seconds
        STATSD.drain(quiet=1.0)
        waits = [
            (at, d.name.rsplit(".", 1)[1], d.value / 1000.0)
            for at, d in STATSD.received()
            if d.name.startswith("airflow.jwt_bearer.shared_cache.lock_wait.")
        ]
        yield ChaosRun(
            run_id,
            state,
            seconds,
            phases,
            _task_instances(cluster, run_id),
            authserver.token_requests(),
            waits,
        )


def _log_events(cluster: Cluster, run: ChaosRun, ti: dict[str, Any], try_number: int) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{ti['task_id']}/logs/{try_number}"
    answer = cluster.api("GET", path, params={"map_index": ti["map_index"]}, headers={"Accept": "application/json"})
    return list(answer["content"])


def _why_retried(cluster: Cluster, run: ChaosRun, ti: dict[str, Any], limit: int = 140) -> str:
    """The first error of the task's first try, as its log says (or why there is none), ``limit`` characters."""
    try:
        events = _log_events(cluster, run, ti, 1)
    except ClusterError as exc:
        return f"no log of try 1 ({str(exc)[:60]})"
    errors = [
        str((e.get("error_detail") or [{}])[0].get("exc_value") or e.get("event"))
        for e in events
        if str(e.get("level", "")).lower() in {"error", "critical"}
    ]
    if not errors:
        return "no error logged in try 1 (its process ended without one: killed with its worker, or lost in the queue)"
    return " ".join(errors[0].split())[:limit]


def _window_end(phase: Phase) -> float:
    """When the phase's fault was over (an outage's or herd's window; the injection otherwise)."""
    return phase.started + {"outage": OUTAGE_SECONDS, "herd": HERD_SECONDS}.get(phase.name, 0.0)


def _grants_after_windows(run: ChaosRun) -> dict[str, int]:
    """Per phase, the tokens granted from the end of its fault window to the end of the phase."""
    return {
        p.name: sum(1 for r in run.token_requests if r["success"] and _window_end(p) <= r["time"] <= p.ended)
        for p in run.phases
    }


def _waits_in(run: ChaosRun, phase: Phase) -> list[tuple[float, str, float]]:
    return [w for w in run.lock_waits if phase.started <= w[0] <= phase.ended]


def _longest_waits(run: ChaosRun) -> dict[str, str]:
    """Per phase: the longest wait on the lock, how it ended, and how many waits."""
    out = {}
    for phase in run.phases:
        waits = _waits_in(run, phase)
        if waits:
            _, how, seconds = max(waits, key=lambda w: w[2])
            out[phase.name] = f"{seconds:.1f} s ({how}; {len(waits)} waits: {dict(Counter(w[1] for w in waits))})"
    return out


def _phase_of(when: float, phases: list[Phase]) -> str:
    for phase in phases:
        if phase.started <= when <= phase.ended:
            return phase.name
    if phases and when < phases[0].started:
        return "before faults"
    return "between/after"


@pytest.fixture(scope="module")
def outcome(cluster: Cluster, chaos_run: ChaosRun, summary: list[str]) -> dict[str, Any]:
    """The outcome table's numbers, printed in the "chaos" section before any assertion."""
    retried = [ti for ti in chaos_run.task_instances if ti["try_number"] > 1]
    reasons = Counter(_why_retried(cluster, chaos_run, ti) for ti in retried)
    per_phase = Counter(
        (_phase_of(r["time"], chaos_run.phases), r["status"] if r["status"] is not None else "?")
        for r in chaos_run.token_requests
    )
    logs = [p for p in cluster.host_path(f"{IMAGE_AIRFLOW_HOME}/logs").rglob("*.log") if p.is_file()]
    logs += [p for p in cluster.logs().values() if p.is_file()]
    extra = json.loads(cluster.service_env("airflow-worker")[CONN_VAR])["extra"]
    assert cluster.authserver is not None
    secrets = [extra["keystore_password"], *(cluster.authserver.issued_access_tokens() or [])]
    leaks: list[str] = []
    waited_out = 0
    exhausted = 0
    for path in logs:
        text = path.read_text(errors="replace")
        leaks += [f"{path.name}: {s[:4]}..." for s in secrets if s in text]
        if (found := JWT_PATTERN.search(text)) is not None:
            leaks.append(f"{path.name}: JWT {found.group(0)[:12]}...")
        waited_out += text.count("([jwt_bearer] token_cache_wait); fetching it here too")
        exhausted += text.count("HTTP 503")
    locks = [key for key in _our_keys(cluster) if key.endswith(":lock")]
    try:
        subjects = cluster.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{chaos_run.run_id}/taskInstances/subjects/xcomEntries/return_value",
        )["value"]
    except ClusterError as exc:
        subjects = {"error": str(exc)[:200]}
    table = {
        "run": f"{chaos_run.state} in {chaos_run.seconds:.0f} s ({MAPPED_CALLS} mapped token users, {SENSORS} sensors)",
        "tasks succeeded": f"{sum(ti['state'] == 'success' for ti in chaos_run.task_instances)}"
        f" of {len(chaos_run.task_instances)}",
        "tasks retried": len(retried),
        "retried because": dict(reasons),
        "token requests by phase and status": {f"{k[0]} {k[1]}": v for k, v in sorted(per_phase.items(), key=str)},
        "waits that reached token_cache_wait": waited_out,
        "log lines naming HTTP 503": exhausted,
        "longest wait on the fetch lock": _longest_waits(chaos_run),
        "token grants after each fault window": _grants_after_windows(chaos_run),
        "locks left in Redis": len(locks),
        "secrets in logs": len(leaks),
        "subjects XCom": subjects,
        "sensors tries": dict(Counter(ti["try_number"] for ti in chaos_run.of("jobs_deferred"))),
    }
    summary_lines = [f"{key}: {value}" for key, value in table.items()]
    for phase in chaos_run.phases:
        summary_lines.append(f"phase {phase.name}: {phase.fault}; recovered after {phase.ended - phase.started:.0f} s")
        for note, value in phase.notes.items():
            summary_lines.append(f"  {note}: {value}")
    summary.extend(summary_lines)
    table["locks"] = locks
    table["leaks"] = leaks
    return table


def test_every_task_succeeded_and_the_xcom_is_complete(chaos_run: ChaosRun, outcome: dict[str, Any]) -> None:
    not_ok = [
        f"{ti['task_id']}[{ti['map_index']}] {ti['state']}"
        for ti in chaos_run.task_instances
        if ti["state"] != "success"
    ]
    assert not not_ok, not_ok[:20]
    assert chaos_run.state == "success"
    assert len(chaos_run.of("whoami")) == MAPPED_CALLS
    assert outcome["subjects XCom"] == {"calls": MAPPED_CALLS, "subjects": ["demo-user"], "clients": ["demo-client"]}


def test_every_sensor_resumed_after_the_triggerer_restart_and_fired_once(chaos_run: ChaosRun) -> None:
    """Every sensor completed; a sensor retried at all was retried for an exhausted policy (see the next test)."""
    sensors = chaos_run.of("jobs_deferred")
    assert len(sensors) == SENSORS
    assert all(ti["state"] == "success" for ti in sensors), [(ti["map_index"], ti["state"]) for ti in sensors]


#: What may make a task's try fail: its worker killed (no error logged, or its supervisor saw it die by a signal),
#: its message lost with the broker, a retry policy that
#: ran out against the outage or the rate limiter (logged with the status), the skewed clock's refused assertion.
ALLOWED_RETRY_CAUSES = re.compile(
    r"no error logged|Process terminated by signal|HTTP 503|HTTP 429|\b503\b|\b429\b|clock|skew|in the future|iat"
)


def test_no_task_failed_for_a_reason_other_than_a_fault(cluster: Cluster, chaos_run: ChaosRun) -> None:
    retried = [ti for ti in chaos_run.task_instances if ti["try_number"] > 1]
    reasons = {f"{ti['task_id']}[{ti['map_index']}]": _why_retried(cluster, chaos_run, ti) for ti in retried}
    unexplained = {task: why for task, why in reasons.items() if not ALLOWED_RETRY_CAUSES.search(why)}
    assert not unexplained, unexplained


def test_no_lock_left_and_no_secret_in_any_log(outcome: dict[str, Any]) -> None:
    assert outcome["locks"] == []
    assert outcome["leaks"] == []


def test_a_killed_lock_holder_delays_nobody_past_token_cache_wait(chaos_run: ChaosRun) -> None:
    """The lock holder was a task on a worker; that worker was killed; every wait on its lock stayed in the bound."""
    phase = next((p for p in chaos_run.phases if p.name == "worker_kill"), None)
    if phase is None:
        pytest.skip("the worker_kill phase was not run (CHAOS_PHASES)")
    assert str(phase.notes["holder"]).startswith("airflow-worker"), phase.notes
    waits = _waits_in(chaos_run, phase)
    assert waits, "nobody waited on the killed holder's lock: the phase tested nothing"
    # Waits began at most when the holder took the lock; it was killed `found` later; its lease then ran out.
    found = float(phase.notes["killed at"]) - phase.started
    longest = max(w[2] for w in waits)
    assert longest <= TOKEN_CACHE_WAIT + found + 1.0, (longest, found, waits)
    assert not [w for w in waits if w[1] == "timed_out"], waits


def test_an_endpoint_that_failed_or_rate_limited_gets_one_request_when_it_recovers(chaos_run: ChaosRun) -> None:
    """The outage (503) and the herd (429) were met, and after each window one token was granted, not a stampede."""
    checked = [p for p in chaos_run.phases if p.name in {"outage", "herd"}]
    if not checked:
        pytest.skip("neither the outage nor the herd phase was run (CHAOS_PHASES)")
    for phase in checked:
        status = 503 if phase.name == "outage" else 429
        during = [r for r in chaos_run.token_requests if phase.started <= r["time"] <= _window_end(phase)]
        assert any(r["status"] == status for r in during), (phase.name, during[:5])
    grants = _grants_after_windows(chaos_run)
    assert {p.name: grants[p.name] for p in checked} == {p.name: 1 for p in checked}


def test_the_worker_whose_clock_is_ahead_was_refused_with_an_error_naming_the_skew(
    cluster: Cluster, chaos_run: ChaosRun
) -> None:
    phase = next((p for p in chaos_run.phases if p.name == "clock"), None)
    if phase is None:
        pytest.skip("the clock phase was not run (CHAOS_PHASES)")
    refused = [r for r in chaos_run.token_requests if phase.started <= r["time"] <= phase.ended and r["status"] == 400]
    assert refused, "no assertion was refused while the worker's clock was ahead"
    errors = [_why_retried(cluster, chaos_run, ti, limit=2000) for ti in chaos_run.of("whoami") if ti["try_number"] > 1]
    skew = re.compile(r"clock is (\d+) s ahead of the server's")
    named = [int(m.group(1)) for e in errors if (m := skew.search(e))]
    assert named, errors
    assert all(abs(seconds - SKEW_SECONDS) <= 60 for seconds in named), named
