"""The compose topology at work: 100 mapped token users on two Celery workers, deferred ones on the triggerer.

Everything goes through what a user has: the DAGs are unpaused and triggered through the REST API,
task states, XComs and task logs are read back through it, and the authorization server counts
the token requests it received from all the processes of the stack.

Three runs on one stack, one after the other, of the same DAG shape through three connections: the
compose file's ``jwt_bearer_default``, whose tokens the whole stack shares through the Celery
broker's Redis (``[jwt_bearer] token_cache = redis`` in the compose environment): one token
request for the run; ``jwt_bearer_memory``, the same connection with ``token_cache: memory``:
a token per task process, the number recorded; and ``jwt_bearer_keyless``, without a key: its JWT is
a Kubernetes-shaped projected token file of a workload platform on loopback (``devserver.platform``),
which the authserver trusts by OIDC discovery. In the middle of that run the platform rotates the
file and the authserver revokes every token: the processes of the stack fetch the next token with
the new file's JWT, sealed in the shared Redis with ``[jwt_bearer] token_cache_secret``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from devserver.platform import LocalPlatform, ProjectedToken
from tests.cluster.dags.jwt_cluster import (
    DAG_ID,
    DEFERRED_JOBS,
    KEYLESS_CONN_ID,
    KEYLESS_DAG_ID,
    MAPPED_CALLS,
    MEMORY_CONN_ID,
    MEMORY_DAG_ID,
)
from tests.cluster.harness import CONN_VAR, IMAGE_AIRFLOW_HOME, Cluster, ClusterError
from tests.e2e.conftest import JWT_PATTERN

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class RunSpec:
    """One run of the module: its DAG, the subject its calls carry, and whether the token file is rotated midway."""

    dag_id: str
    subject: str
    rotated: bool = False


#: The keyless connection's identity on the platform, and where the platform writes its token.
SERVICE_ACCOUNT = "system:serviceaccount:airflow:worker"
KEYLESS_TOKEN = Path(tempfile.mkdtemp(prefix="jwt-cluster-keyless-")) / "token" / "token"
#: The runs of this module, in order, by the name of the connection's token cache (or kind).
RUNS = {
    "redis": RunSpec(DAG_ID, "demo-user"),
    "memory": RunSpec(MEMORY_DAG_ID, "demo-user"),
    "keyless": RunSpec(KEYLESS_DAG_ID, SERVICE_ACCOUNT, rotated=True),
}
#: The memory run's connection: the compose file's, with the stack-wide token cache overridden; the keyless
#: run's: the compose file's without its key, the JWT from the projected token file.
EXTRA_CONNECTIONS: dict[str, dict[str, Any]] = {
    MEMORY_CONN_ID: {"token_cache": "memory"},
    KEYLESS_CONN_ID: {
        "assertion_source": "file",
        "assertion_file": str(KEYLESS_TOKEN),
        "key_file": None,
        "keystore_password": None,
        "subject": None,
    },
}
#: What seals the keyless connection's tokens in the shared Redis (it has no key, nor a client secret).
EXTRA_ENV = {"AIRFLOW__JWT_BEARER__TOKEN_CACHE_SECRET": secrets.token_urlsafe(32)}
#: The whoami calls that succeed before the keyless run's rotation.
ROTATE_AFTER_CALLS = 10
RUN_TIMEOUT = 420.0
PARSE_TIMEOUT = 120.0
DEFERRED_TASKS = ("items_deferred", "jobs_deferred")
ITEM_PAGES = [list(range(1, 11)), list(range(11, 21)), [21, 22, 23]]  # the devserver's 23 items by 10


def expected_token_requests(token_cache: str) -> tuple[int, int | None]:
    """(least, most) token requests for one run of the DAG, given the connection's token cache.

    With the per-process cache, each task process asks once and the triggerer once for all its
    triggers: about one per task process, so only "at least one" holds for sure. With a cache
    shared by every process, the first asker is the only one.
    """
    if token_cache in ("redis", "file"):
        return 1, 1
    if token_cache == "keyless":  # shared through Redis too; every token revoked once: a second one, rarely a third
        return 2, 3
    return 1, None


@dataclass
class FinishedRun:
    """A run of the DAG as the REST API reported it, and the authorization server's records at its end."""

    token_cache: str
    dag_id: str
    run_id: str
    state: str
    seconds: float
    task_instances: list[dict[str, Any]]
    #: ``token_requests`` and ``api_requests`` of the authserver, or why they could not be read.
    records: dict[str, list[dict[str, Any]]] | ClusterError
    #: What ``midway`` returned (the keyless run: the ``jti`` of the projected token before and after).
    midway: dict[str, Any] = field(default_factory=dict)

    def of(self, task_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances if ti["task_id"] == task_id]

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        return self._records("token_requests")

    @property
    def api_requests(self) -> list[dict[str, Any]]:
        return self._records("api_requests")

    def _records(self, name: str) -> list[dict[str, Any]]:
        if isinstance(self.records, ClusterError):
            pytest.fail(f"the authserver's records are not readable: {self.records}", pytrace=False)
        return self.records[name]


def _task_instances(cluster: Cluster, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, mapped ones included (the API pages by 100 at most)."""
    found: list[dict[str, Any]] = []
    while True:
        page = cluster.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found), "order_by": "map_index"},
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def _state_counts(task_instances: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(f"{ti['task_id']}:{ti['state']}" for ti in task_instances))


def _wait_for_dag(cluster: Cluster, dag_id: str = DAG_ID) -> None:
    """Until the dag-processor has parsed the DAG (the api-server answers 404 before)."""
    deadline = time.monotonic() + PARSE_TIMEOUT
    while True:
        cluster.check_alive()
        try:
            cluster.api("GET", f"/api/v2/dags/{dag_id}")
            return
        except ClusterError as exc:
            if "HTTP 404" not in str(exc):
                raise
        if time.monotonic() > deadline:
            errors = cluster.api("GET", "/api/v2/importErrors")
            pytest.fail(f"{dag_id} was not parsed within {PARSE_TIMEOUT:.0f} s; import errors: {errors}")
        time.sleep(1)


def run_dag(
    cluster: Cluster, token_cache: str, dag_id: str, midway: Callable[[], dict[str, Any]] | None = None
) -> FinishedRun:
    """Unpause and trigger the DAG through the REST API, wait for its run to end, read the authserver's records.

    ``midway`` is called once, when :data:`ROTATE_AFTER_CALLS` whoami calls have succeeded.
    """
    assert cluster.authserver is not None
    _wait_for_dag(cluster, dag_id)
    cluster.authserver.reset()  # the records of this run only
    cluster.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    started = time.monotonic()
    run_id = cluster.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})["dag_run_id"]
    midway_result: dict[str, Any] = {}
    while (state := cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]) not in {
        "success",
        "failed",
    }:
        cluster.check_alive()
        if midway is not None and not midway_result:
            done = [
                ti
                for ti in _task_instances(cluster, dag_id, run_id)
                if ti["task_id"] == "whoami" and ti["state"] == "success"
            ]
            if len(done) >= ROTATE_AFTER_CALLS:
                midway_result = midway()
        if time.monotonic() - started > RUN_TIMEOUT:
            counts = _state_counts(_task_instances(cluster, dag_id, run_id))
            pytest.fail(
                f"run {run_id} of {dag_id} still {state} after {RUN_TIMEOUT:.0f} s; task states {counts}\n\n"
                f"{cluster.log_tails()}",
                pytrace=False,
            )
        time.sleep(2)
    seconds = time.monotonic() - started
    cluster.timings[f"DAG run ({token_cache})"] = seconds
    records: dict[str, list[dict[str, Any]]] | ClusterError
    try:  # now, before anything else adds a token request of its own
        records = {
            "token_requests": cluster.authserver.token_requests(),
            "api_requests": cluster.authserver.api_requests(),
        }
    except ClusterError as exc:
        records = exc
    task_instances = _task_instances(cluster, dag_id, run_id)
    return FinishedRun(token_cache, dag_id, run_id, state, seconds, task_instances, records, midway_result)


def _jti(compact: str) -> str:
    payload = compact.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


@pytest.fixture(scope="module")
def projected_token(cluster: Cluster) -> Iterator[ProjectedToken]:
    """The keyless connection's token file, written by a platform the authserver trusts for the demo client."""
    assert cluster.authserver is not None
    with LocalPlatform() as platform:
        namespace, name = SERVICE_ACCOUNT.split(":")[2:]
        projected = platform.project_service_account(
            KEYLESS_TOKEN,
            cluster.authserver.url,
            namespace=namespace,
            service_account=name,
            keep_previous_data=False,  # the kubelet's way: the old token directory goes at once
        )
        cluster.authserver.trust_issuer(platform.url, SERVICE_ACCOUNT, "demo-client")
        yield projected
        projected.stop()


@pytest.fixture(scope="module")
def finished_runs(cluster: Cluster, projected_token: ProjectedToken) -> dict[str, FinishedRun]:
    """Every run of :data:`RUNS`, one after the other on the one stack."""
    assert cluster.authserver is not None
    authserver = cluster.authserver

    def rotate_and_revoke() -> dict[str, Any]:
        before = _jti(projected_token.token)
        after = _jti(projected_token.rotate())
        authserver.revoke_all_tokens()  # every process's cached token is refused from now on
        return {"before": before, "after": after}

    return {
        name: run_dag(cluster, name, spec.dag_id, rotate_and_revoke if spec.rotated else None)
        for name, spec in RUNS.items()
    }


@pytest.fixture(scope="module", params=list(RUNS))
def finished_run(request: pytest.FixtureRequest, finished_runs: dict[str, FinishedRun]) -> FinishedRun:
    return finished_runs[request.param]


def _xcom(cluster: Cluster, run: FinishedRun, task_id: str, map_index: int = -1) -> Any:
    path = f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return cluster.api("GET", path, params={"map_index": map_index})["value"]


def _log_events(cluster: Cluster, run: FinishedRun, ti: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's log as the UI shows it (the api-server reads it from the shared logs volume)."""
    path = f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    answer = cluster.api("GET", path, params={"map_index": ti["map_index"]}, headers={"Accept": "application/json"})
    return answer["content"]


def test_the_repository_dags_import_without_errors(cluster: Cluster) -> None:
    """The compose stack mounts dags/: every file parses in the dag-processor with the compose settings."""
    for spec in RUNS.values():
        _wait_for_dag(cluster, spec.dag_id)
    errors = cluster.api("GET", "/api/v2/importErrors")
    assert errors["total_entries"] == 0, errors["import_errors"]


def _log_excerpt(cluster: Cluster, run: FinishedRun, ti: dict[str, Any], lines: int = 25) -> str:
    try:
        events = _log_events(cluster, run, ti)
    except ClusterError as exc:
        return f"(no log: {exc})"
    return "\n".join(f"  {event.get('level', '')} {event.get('event')}" for event in events[-lines:])


def test_every_task_instance_succeeded(cluster: Cluster, finished_run: FinishedRun, summary: list[str]) -> None:
    summary.append(
        f"DAG run of {finished_run.dag_id} (token_cache {finished_run.token_cache}): "
        f"{finished_run.state} in {finished_run.seconds:.1f} s"
    )
    not_ok = [ti for ti in finished_run.task_instances if ti["state"] != "success"]
    details = "\n".join(
        f"{ti['task_id']}[{ti['map_index']}] {ti['state']}:\n{_log_excerpt(cluster, finished_run, ti)}"
        for ti in not_ok[:3]
    )
    assert not not_ok, (
        f"{len(not_ok)} task instances did not succeed: {_state_counts(not_ok)}\n{details}\n\n{cluster.log_tails()}"
    )
    assert finished_run.state == "success"
    assert sorted(ti["map_index"] for ti in finished_run.of("whoami")) == list(range(MAPPED_CALLS))
    assert sorted(ti["map_index"] for ti in finished_run.of("jobs_deferred")) == list(range(DEFERRED_JOBS))
    assert len(finished_run.of("items_deferred")) == 1
    assert len(finished_run.of("subjects")) == 1
    assert len(finished_run.task_instances) == MAPPED_CALLS + DEFERRED_JOBS + 2


def test_every_mapped_call_saw_the_connection_subject(cluster: Cluster, finished_run: FinishedRun) -> None:
    summary = _xcom(cluster, finished_run, "subjects")
    subject = RUNS[finished_run.token_cache].subject
    assert summary == {"calls": MAPPED_CALLS, "subjects": [subject], "clients": ["demo-client"]}


def test_the_api_saw_only_authenticated_calls(finished_run: FinishedRun) -> None:
    """Every token request was granted and every API call carried a valid token of the subject.

    In the keyless run, the calls in flight when every token was revoked were refused (401) and sent
    again with a new token: a refused call is one of those.
    """
    refused = [
        (r["status"], r["error"], r["error_description"]) for r in finished_run.token_requests if not r["success"]
    ]
    assert not refused, f"refused token requests: {refused[:10]}"
    spec = RUNS[finished_run.token_cache]
    calls = Counter((r["path"], r["status"], r["subject"]) for r in finished_run.api_requests)
    allowed = {(200, spec.subject)} | ({(401, None)} if spec.rotated else set())
    assert all((status, subject) in allowed for _, status, subject in calls), calls
    assert calls[("/api/whoami", 200, spec.subject)] == MAPPED_CALLS


def test_the_keyless_run_fetched_its_next_token_with_the_rotated_file(finished_runs: dict[str, FinishedRun]) -> None:
    """Before the rotation, tokens came with the first projected token; after it, with the new one; none expired."""
    run = finished_runs["keyless"]
    jtis = run.midway
    assert jtis, f"the run ended before {ROTATE_AFTER_CALLS} whoami calls succeeded: the rotation never happened"
    sent = [r["assertion_claims"]["jti"] for r in run.token_requests]
    assert sent[0] == jtis["before"]
    assert jtis["after"] in sent[1:], sent
    assert set(sent) <= {jtis["before"], jtis["after"]}
    for record in run.token_requests:
        assert record["federated"] is True
        assert record["assertion_claims"]["sub"] == SERVICE_ACCOUNT
        assert record["assertion_claims"]["exp"] > record["time"], "a token request carried an expired JWT"


def test_both_workers_ran_tasks(cluster: Cluster, finished_run: FinishedRun, summary: list[str]) -> None:
    """Each worker logs the id of every task instance it executes (``Executing workload in Celery``)."""
    ran_by = {
        component.name: {ti["id"] for ti in finished_run.task_instances if ti["id"] in component.log.read_text()}
        for component in cluster.components
        if component.name.startswith("airflow-worker-")
    }
    counts = {name: len(ids) for name, ids in ran_by.items()}
    summary.append(f"task instances per worker ({finished_run.dag_id}): {counts}")
    assert len(ran_by) == cluster.workers
    assert all(ran_by.values()), f"a worker ran no task: {counts}"
    unseen = {ti["id"] for ti in finished_run.task_instances}.difference(*ran_by.values())
    assert not unseen, f"{len(unseen)} task instances are in no worker's log"


def test_the_triggerer_ran_the_deferred_tasks(cluster: Cluster, finished_run: FinishedRun) -> None:
    """Each deferred task's log holds its trigger's events, written by the triggerer job."""
    triggerers = cluster.api("GET", "/api/v2/jobs", params={"job_type": "TriggererJob"})["jobs"]
    assert len(triggerers) == 1, triggerers
    trigger_log = f".trigger.{triggerers[0]['id']}.log"
    for task_id in DEFERRED_TASKS:
        for ti in finished_run.of(task_id):
            events = _log_events(cluster, finished_run, ti)
            names = [str(event.get("event")) for event in events]
            where = f"{task_id}[{ti['map_index']}]"
            assert any(name.endswith(trigger_log) for name in names), f"{where}: no log from the triggerer: {names[:8]}"
            assert "Trigger fired event" in names, f"{where}: its trigger never fired"
            assert "trigger completed" in names, f"{where}: its trigger did not complete"
    # Paging in deferrable mode: one deferral per page, the pages' results in the XCom.
    assert _xcom(cluster, finished_run, "items_deferred") == ITEM_PAGES


def test_token_requests_of_the_run(finished_run: FinishedRun, summary: list[str]) -> None:
    """How many tokens the whole stack asked for: one with the shared cache, about one per process without."""
    processes = MAPPED_CALLS + 1  # one whoami task process each, and the triggerer
    count = len(finished_run.token_requests)
    summary.append(
        f"token requests during the {finished_run.dag_id} run (token_cache {finished_run.token_cache}): {count} "
        f"({MAPPED_CALLS} mapped task processes on 2 workers and the triggerer used the connection)"
    )
    least, most = expected_token_requests(finished_run.token_cache)
    assert count >= least
    if most is not None:
        assert count <= most, [(r["time"], r["client_id"], r["issued_sub"]) for r in finished_run.token_requests]
    else:  # the per-process cache: no process asks twice for the same valid token
        assert count <= processes


def test_the_broker_redis_holds_the_shared_token_sealed(
    cluster: Cluster, finished_runs: dict[str, FinishedRun]
) -> None:
    """What the stack keeps in the broker's Redis: an entry named by a digest, encrypted, expiring; no lock left."""
    client = redis.Redis(host="127.0.0.1", port=cluster.ports["redis"], socket_timeout=10)
    try:
        keys = sorted(key.decode() for key in client.keys("*"))
        ours = [key for key in keys if key.startswith("jwt_bearer:")]
        assert ours, f"no token cache entry among the broker's keys: {keys}"
        assert len(ours) < len(keys), "the Celery broker's own keys are missing: is this the broker's Redis?"
        for key in ours:
            assert re.fullmatch(r"jwt_bearer:\{[0-9a-f]{64}\}:token", key), f"unexpected key (a lock left?): {key}"
            value = client.get(key) or b""
            for clear in (b"demo-user", b"demo-client", b"Bearer", b"access_token", SERVICE_ACCOUNT.encode()):
                assert clear not in value, f"{key} shows {clear!r}"
            assert 0 < client.pttl(key) <= 3600 * 1000, "a token entry without an expiry"
    finally:
        client.close()


def test_no_secret_in_task_or_component_logs(
    cluster: Cluster, finished_runs: dict[str, FinishedRun], summary: list[str]
) -> None:
    """Deployed workers mask task logs (dag.test() does not): no token, assertion or keystore password in them.

    The access tokens are looked for when the authserver runs in this process (it can list them);
    assertions are found by their JWT shape, the keystore password by its value.
    """
    assert cluster.authserver is not None
    extra = json.loads(cluster.service_env("airflow-worker")[CONN_VAR])["extra"]
    secrets = [extra["keystore_password"]]
    tokens = cluster.authserver.issued_access_tokens()
    if tokens is None:
        summary.append("log scan: keystore password, JWT-shaped values (and access tokens with in-process)")
    else:
        assert tokens, "the authserver issued no token"
        secrets += tokens
    logs = [path for path in cluster.host_path(f"{IMAGE_AIRFLOW_HOME}/logs").rglob("*.log") if path.is_file()]
    logs += list(cluster.logs().values())
    assert len(logs) > MAPPED_CALLS * len(finished_runs), f"only {len(logs)} log files"
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [secret[:4] + "..." for secret in secrets if secret in text]
        assert not leaked, f"{path} holds secrets: {leaked}"
        found = JWT_PATTERN.search(text)
        assert found is None, f"{path} holds a JWT (an assertion?): {found.group(0)[:12]}..."


def test_compose_health_checks_pass(cluster: Cluster) -> None:
    """Each service's health check from docker-compose.yaml, run once as written (see Cluster.start)."""
    cluster.compose_healthchecks()


def test_connection_test_on_the_api_server(cluster: Cluster) -> None:
    """The connection form's Test button ([core] test_connection = Enabled in the compose file)."""
    answer = cluster.api(
        "POST", "/api/v2/connections/test", json={"connection_id": "jwt_bearer_default", "conn_type": "jwt_bearer"}
    )
    assert answer["status"] is True, answer["message"]
    assert "Token obtained" in answer["message"]
    assert CONN_VAR in cluster.service_env("airflow-apiserver")
