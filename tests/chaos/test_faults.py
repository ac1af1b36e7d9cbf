"""Faults at cluster scale: one DAG run on the tests/cluster stack while Redis, the token endpoint, the triggerer fail.

One run of :data:`~tests.chaos.dags.jwt_chaos.DAG_ID` (mapped token users on two Celery workers,
deferred sensors on the triggerer, one connection with ``token_cache = redis``), during which the
test injects one fault per phase, in this order, each when the run has reached a chosen point:

``redis``
    the Redis of the stack (Celery's broker and the token cache) is restarted, empty, while tasks
    run: the shared cache degrades to fetching without it and recovers; Airflow re-queues what the
    broker lost (``[scheduler] task_queued_timeout`` is short here).
``worker_kill``
    every token revoked and the next token request held 30 s by the authserver; the worker whose
    task holds the cluster-wide fetch lock (the one with a connection open to the authserver) is
    SIGKILLed and started again: the lock expires after ``token_cache_wait``, the killed task fails
    its heartbeat check (30 s here) and Airflow retries it.
``outage``
    every issued token is revoked and the token endpoint answers 503 with ``Retry-After`` for
    ``CHAOS_OUTAGE_SECONDS``: every process must fetch again and meets the outage; they wait as the
    retry policy says; a task fails only when its policy ran out (logged), and Airflow retries it.
``clock``
    one worker restarted with its clock ``CHAOS_CLOCK_AHEAD`` (libfaketime), tokens shorter-lived
    than the skew so that it must fetch: its assertion is refused and the error names the skew;
    then its clock is set right again.
``triggerer``
    the triggerer is restarted while every sensor is deferred; the sensors' jobs finish only after
    it is back: every sensor resumes and completes, on its first try. It comes last (it needs no
    mapped task in flight), unlike the issue's numbering.

Not here yet: a 429 to a herd after recovery, and the longest wait on the lock as a number.

The outcome table goes to the "chaos" section of pytest's report; the assertions follow it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
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
from tests.e2e.conftest import JWT_PATTERN

# Also "cluster": it starts that stack, so `-m "not cluster"` leaves it out as it leaves tests/cluster out.
pytestmark = [pytest.mark.chaos, pytest.mark.cluster]

OUTAGE_SECONDS = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "3"))
#: How late the API answers each whoami call: the mapped tasks are still in flight at every fault.
CALL_DELAY = float(os.environ.get("CHAOS_CALL_DELAY", "6"))
RETRY_AFTER = int(os.environ.get("CHAOS_RETRY_AFTER", "2"))
RUN_TIMEOUT = float(os.environ.get("CHAOS_RUN_TIMEOUT", "1200"))
#: The sizes reach the dag-processor (the DAG file reads them) and every component.
EXTRA_ENV = {
    "CHAOS_MAPPED": str(MAPPED_CALLS),
    "CHAOS_SENSORS": str(SENSORS),
    "CHAOS_PARALLEL": os.environ.get("CHAOS_PARALLEL", "2"),
    # A task whose Celery message was lost with the broker's Redis is queued again after this.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
    # A task whose worker was killed stops heartbeating: failed (and retried) after this.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
}
#: The phases to run, in this order (a subset while developing one).
#: The triggerer's restart needs no mapped task in flight (the sensors are deferred throughout): it comes last,
#: so that the mapped tasks are still running during the clock phase.
PHASES = os.environ.get("CHAOS_PHASES", "redis,worker_kill,outage,clock,triggerer").split(",")
#: How far ahead the clock of the ``clock`` phase's worker is (libfaketime's FAKETIME syntax).
CLOCK_AHEAD = os.environ.get("CHAOS_CLOCK_AHEAD", "+10m")
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

    def of(self, task_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances if ti["task_id"] == task_id]


def _task_instances(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = cluster.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found), "order_by": "map_index"},
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def _counts(task_instances: list[dict[str, Any]]) -> Counter[str]:
    return Counter(f"{ti['task_id']}:{ti['state']}" for ti in task_instances)


def _wait_run(cluster: Cluster, run_id: str, what: str, check: Any, timeout: float) -> None:
    """Until ``check(task_instances)`` holds, failing with the task states and log tails on time-out."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        tis = _task_instances(cluster, run_id)
        if check(tis):
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}; task states {dict(_counts(tis))}\n\n"
                f"{cluster.log_tails()}",
                pytrace=False,
            )
        time.sleep(2)


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


def _worker_holding(cluster: Cluster) -> str | None:
    """The worker whose process tree has a connection open to the authserver (the held token request)."""
    port = cluster.ports["authserver"]
    holders = []
    for index in range(1, cluster.workers + 1):
        component = cluster.component(cluster.worker_name(index))
        assert component.process is not None
        try:
            root = psutil.Process(component.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                if any(c.raddr and c.raddr.port == port and c.status == "ESTABLISHED" for c in proc.net_connections()):
                    holders.append(component.name)
                    break
    return holders[0] if len(holders) == 1 else None


def _phase_worker_kill(cluster: Cluster, run_id: str) -> Phase:
    """Fault 2: tokens revoked, the next token request held; the worker of the task holding the lock SIGKILLed."""
    server = _server(cluster)
    phase = Phase("worker_kill", "worker SIGKILLed while its task holds the fetch lock", started=time.time())
    server.hold_next("/oauth2/token", HOLD_SECONDS)
    server.revoke_all_tokens()
    deadline = time.monotonic() + 120
    while server.holding == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    holder = _worker_holding(cluster) if server.holding else None
    locks = [key for key in _our_keys(cluster) if key.endswith(":lock")]
    phase.notes.update(held=server.holding, holder=holder, locks_at_kill=len(locks))
    victim = holder or FAULTY_WORKER
    phase.notes["killed"] = victim
    cluster.kill(victim)
    phase.notes["killed at"] = time.time()
    cluster.start_again(victim)
    return phase


def _phase_outage(cluster: Cluster, run_id: str) -> Phase:
    """Fault 3: tokens revoked and the token endpoint down (503 + Retry-After) for OUTAGE_SECONDS."""
    server = _server(cluster)
    fault = f"tokens revoked, token endpoint 503 Retry-After {RETRY_AFTER} s for {OUTAGE_SECONDS:.0f} s"
    phase = Phase("outage", fault, started=time.time())
    server.fail_for("/oauth2/token", 503, OUTAGE_SECONDS, retry_after=RETRY_AFTER)
    server.revoke_all_tokens()
    time.sleep(OUTAGE_SECONDS)
    return phase


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
    server.token_lifetime = 300
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
    "triggerer": _phase_triggerer,
    "clock": _phase_clock,
}


def _server(cluster: Cluster) -> Any:
    """The in-process authorization server (``devserver.server.LocalAuthorizationServer``)."""
    assert isinstance(cluster.authserver, InProcessAuthServer)
    return cluster.authserver.server


@pytest.fixture(scope="module")
def chaos_run(cluster: Cluster) -> ChaosRun:
    """The DAG run with its faults, one per phase, in order; what the stack and the authserver recorded."""
    authserver = cluster.authserver
    assert isinstance(authserver, InProcessAuthServer)
    server = authserver.server
    deadline = time.monotonic() + 180
    while True:  # until the dag-processor has parsed the DAG
        try:
            cluster.api("GET", f"/api/v2/dags/{DAG_ID}")
            break
        except ClusterError as exc:
            if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(1)
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
        600,
    )
    for name in PHASES:
        before = _counts(_task_instances(cluster, run_id))
        phase = PHASE_FUNCTIONS[name](cluster, run_id)
        phase.notes["whoami at the fault"] = {k.split(":")[1]: v for k, v in before.items() if k.startswith("whoami:")}
        done += step
        _wait_run(cluster, run_id, f"calls after the {name} phase", _succeeded("whoami", done), 900)
        phase.ended = time.time()
        phases.append(phase)

    while (state := cluster.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]) not in {
        "success",
        "failed",
    }:
        cluster.check_alive()
        if time.monotonic() - started > RUN_TIMEOUT:
            counts = dict(_counts(_task_instances(cluster, run_id)))
            pytest.fail(f"run {run_id} still {state} after {RUN_TIMEOUT:.0f} s; {counts}", pytrace=False)
        time.sleep(2)
    seconds = time.monotonic() - started
    cluster.timings["DAG run with faults"] = seconds
    return ChaosRun(run_id, state, seconds, phases, _task_instances(cluster, run_id), authserver.token_requests())


def _log_events(cluster: Cluster, run: ChaosRun, ti: dict[str, Any], try_number: int) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{ti['task_id']}/logs/{try_number}"
    answer = cluster.api("GET", path, params={"map_index": ti["map_index"]}, headers={"Accept": "application/json"})
    return list(answer["content"])


def _why_retried(cluster: Cluster, run: ChaosRun, ti: dict[str, Any]) -> str:
    """The first error of the task's first try, as its log says (or why there is none)."""
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
    return errors[0].splitlines()[0][:140]


def _phase_of(when: float, phases: list[Phase]) -> str:
    for phase in phases:
        if phase.started <= when <= phase.ended:
            return phase.name
    if phases and when < phases[0].started:
        return "before faults"
    return "between/after"


@pytest.fixture(scope="module")
def outcome(cluster: Cluster, chaos_run: ChaosRun) -> dict[str, Any]:
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
    from tests.chaos.conftest import SUMMARY

    SUMMARY.extend(summary_lines)
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
    sensors = chaos_run.of("jobs_deferred")
    assert len(sensors) == SENSORS
    assert all(ti["state"] == "success" and ti["try_number"] == 1 for ti in sensors), [
        (ti["map_index"], ti["state"], ti["try_number"]) for ti in sensors
    ]


def test_no_lock_left_and_no_secret_in_any_log(outcome: dict[str, Any]) -> None:
    assert outcome["locks"] == []
    assert outcome["leaks"] == []


def test_the_outage_was_met_and_retried_after(chaos_run: ChaosRun) -> None:
    """Token requests met the 503s during the outage, and a token was granted after it."""
    outage = next(p for p in chaos_run.phases if p.name == "outage")
    during = [r for r in chaos_run.token_requests if outage.started <= r["time"] <= outage.ended]
    assert any(r["status"] == 503 for r in during), during[:5]
    assert any(r["success"] for r in during if r["time"] >= outage.started + OUTAGE_SECONDS)
