"""Benchmark: one real triggerer holding 1,000 deferred sensors and 50 event watchers on one connection.

What it measures, per contender, in one ``airflow triggerer`` process (its supervisor and its trigger
runner) of the ``tests/cluster`` stack (PostgreSQL, api-server, scheduler, dag-processor, triggerer,
the authserver as ``python -m devserver``; no Celery worker is started, none is needed):

* the provider: ``--sensors`` deferred ``JwtBearerHttpSensor(deferrable=True)`` (their trigger,
  ``JwtBearerHttpTrigger``, in polling mode) and ``--watchers`` asset watchers
  (``JwtBearerHttpEventTrigger``), all on the one connection ``jwt_bench`` (the compose connection with
  ``token_cache: memory``: one triggerer is one trigger-runner process, so the process cache is shared
  by every trigger it runs);
* the peer: the same number of the http provider's ``HttpSensor(deferrable=True)`` (``HttpSensorTrigger``)
  on the same API, with a static bearer header in a plain ``http`` connection's extra.

Both poll the authserver's ``/api/exports/<gate>``, which answers 404 until the benchmark publishes the
export, then 200. Reported: token requests the authserver received (target: 1 per token lifetime for the
whole triggerer, i.e. 1 here: the run is shorter than the devserver's 3,600 s tokens; exit status 1 when
missed), event-loop lag (p50, p99) from a probe trigger that sleeps 100 ms in a loop in the same event
loop and records how late it wakes, the triggerer process tree's resident memory (``/proc`` through
psutil) with the triggers running minus the same process idle, divided by their number, its CPU use,
and the time from "ready" to all task instances out of the deferred state (every trigger fired and its
event written to the database by the triggerer).

How the task instances get deferred, and why: running 1,000 task processes just to reach the deferred
state would measure Celery and task start-up on 2 cores, not the triggerer. Airflow 3.3's other way in,
``start_from_trigger``, makes the scheduler defer tasks with no worker, but its workload carries the
whole serialized DAG and the triggerer deserializes it and builds a task context per trigger: a cost a
deferred sensor does not have. So the benchmark leaves in the metadata database exactly what a deferring
task leaves there: the DAGs (1,000 sensors each, paused) are parsed by the real dag-processor, a run of
each is created through the REST API, and for each task instance the task's own ``execute`` is called
(in a process with the stack's configuration) up to the ``TaskDeferred`` it raises; its trigger's
``serialize()`` becomes the ``Trigger`` row, and the task instance gets the state, ``trigger_id``,
``next_method``, ``next_kwargs`` and timeout the execution API would set. The triggerer is then the
unmodified ``airflow triggerer`` process, which picks those triggers up as any others. The watchers are
registered by the dag-processor when the benchmark unpauses their DAG.

Each contender runs in a freshly restarted triggerer (memory is not returned to the system after
triggers end, so a second contender in the same process would look cheaper); the lag probe keeps
running across restarts (its trigger is re-created). The phases run one after the other, each measured
over a steady window of ``--window`` seconds once every trigger polled.

Run: ``.venv/bin/python benchmarks/bench_triggerer.py [--sensors 1000 --watchers 50 --json out.json]``
(about 8½ minutes at full size on 2 cores, stack start included; ``--sensors 50 --watchers 5`` for a
quick look). Exit status 1 when the provider's token requests miss the target. Needs what
``scripts/install-system-deps`` installs (PostgreSQL, redis-server, keytool). ``--json PATH`` writes the
run as the other benchmarks do (``benchmarks/results.py``): the figures are this module's dataclasses,
one ``Contender`` per side, each with its ``Window`` list (the idle window first, the all-polling one
last); the docs chart the file recorded in ``docs/benchmarks/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
#: This process mints one token with the hook and needs an Airflow home of its own; the seeding has the stack's.
OWN_AIRFLOW_HOME = None if "AIRFLOW_HOME" in os.environ else tempfile.mkdtemp(prefix="jwt-bench-triggerer-home-")
if OWN_AIRFLOW_HOME is not None:
    os.environ["AIRFLOW_HOME"] = OWN_AIRFLOW_HOME

DAG_FILE = REPO / "benchmarks" / "dags" / "jwt_bench_triggerer.py"
TRIGGERER = "airflow-triggerer"
PROBE_INTERVAL = 0.1
TOKEN_LIFETIME = 3600.0  # the devserver's default, which the compose authserver keeps


def load_dag_module() -> Any:
    """The benchmark's DAG file as a module: the same tasks the dag-processor serialized."""
    spec = importlib.util.spec_from_file_location("jwt_bench_triggerer", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# Seeding: run in a subprocess with the stack's Airflow configuration (database, Fernet key)
# --------------------------------------------------------------------------------------------------


def seed(kind: str, run_id: str, probe_path: str) -> None:
    """Put every task instance of ``kind``'s run into the deferred state its task's ``execute`` asks for.

    What the execution API does on a task's ``DeferTask`` message (``ti_update_state``): a ``Trigger``
    row from the trigger's ``serialize()``, and the task instance deferred on it, with ``next_method``,
    the serde-encoded ``next_kwargs`` and the trigger timeout.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk import timezone
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.serde import serialize
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from benchmarks.triggerer_support import CLASSPATH as PROBE_CLASSPATH

    module = load_dag_module()
    dag = module.probe_dag if kind == "probe" else {"jwt": module.jwt_dag, "http": module.http_dag}[kind]
    now = timezone.utcnow()
    with create_session() as session:
        query = select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id)
        task_instances = list(session.scalars(query))
        if not task_instances:
            raise SystemExit(f"no task instances in {dag.dag_id} {run_id}")
        for ti in task_instances:
            if kind == "probe":
                classpath, kwargs = PROBE_CLASSPATH, {"path": probe_path, "interval": PROBE_INTERVAL}
                method, next_kwargs, timeout = "execute", {}, None
            else:
                try:
                    dag.get_task(ti.task_id).execute(context={})
                except TaskDeferred as deferred:
                    classpath, kwargs = deferred.trigger.serialize()
                    method, next_kwargs, timeout = deferred.method_name, deferred.kwargs, deferred.timeout
                else:
                    raise SystemExit(f"{ti.task_id} finished instead of deferring: the gate is open")
            trigger = Trigger(classpath=classpath, kwargs=kwargs)
            session.add(trigger)
            session.flush()
            ti.state = TaskInstanceState.DEFERRED
            ti.trigger_id = trigger.id
            ti.next_method = method
            ti.next_kwargs = serialize(next_kwargs or {})
            ti.trigger_timeout = now + timeout if timeout is not None else None
            ti.try_number = max(ti.try_number or 0, 1)
            ti.start_date = now
        print(f"seeded {len(task_instances)} deferred task instances of {dag.dag_id}", flush=True)


# --------------------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------------------


@dataclass
class Window:
    """A steady stretch: the triggerer tree's RSS and CPU, and the probe's lag, over ``seconds``."""

    label: str
    triggers: int
    seconds: float
    rss_mib: float
    cpu_percent: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_samples: int


@dataclass
class Contender:
    """One side of the comparison."""

    name: str
    sensors: int
    watchers: int
    token_requests: int = 0
    api_requests: int = 0
    windows: list[Window] = field(default_factory=list)
    seconds_to_all_fired: float | None = None
    firing_lag_p99_ms: float | None = None
    rss_per_trigger_kib: float | None = None
    rss_per_sensor_kib: float | None = None
    rss_per_watcher_kib: float | None = None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``values`` not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def probe_lags(path: Path, start: float, end: float) -> list[float]:
    """The probe's lags (seconds) of wake-ups between two wall-clock times."""
    if not path.exists():
        return []
    lags = []
    for line in path.read_text().splitlines():
        stamp, _, lag = line.partition(" ")
        if lag and start <= float(stamp) <= end:
            lags.append(float(lag))
    return lags


class Bench:
    """The stack, the authserver's records and the REST API, as the phases use them."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from tests.cluster.harness import Cluster

        self.args = args
        self.workdir = workdir
        self.probe_file = workdir / "probe-lags.txt"
        self.cluster = Cluster(
            workdir,
            extra_dags=[DAG_FILE],
            extra_connections={"jwt_bench": {"token_cache": "memory"}},
            extra_env={
                "PYTHONPATH": str(REPO),  # the probe trigger, importable by the triggerer
                "JWT_BENCH_SENSORS": str(args.sensors),
                "JWT_BENCH_WATCHERS": str(args.watchers),
                "JWT_BENCH_POLL": str(args.poll),
                "AIRFLOW__TRIGGERER__CAPACITY": str(2 * args.sensors + args.watchers + 100),
                # 1,000 sensors and their runs in one DAG file: more than the default 30 s on 2 cores
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
            },
            workers=0,
        )

    # ------------------------------------------------------------------ plumbing

    @property
    def auth(self) -> Any:
        assert self.cluster.authserver is not None
        return self.cluster.authserver

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.cluster.api(method, path, **kwargs)

    def wait(self, what: str, check: Any, timeout: float = 300.0) -> Any:
        return self.cluster.wait_for(what, check, timeout=timeout)

    def polls(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.auth.api_requests() if r["path"].startswith(prefix)]

    def create_run(self, dag_id: str) -> str:
        self.wait(f"{dag_id} to be parsed", lambda: self.api("GET", f"/api/v2/dags/{dag_id}"), 600)
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        return str(run["dag_run_id"])

    def seed(self, kind: str, run_id: str) -> None:
        env = self.cluster.service_env(TRIGGERER)
        env.update({k: v for k, v in self.triggerer.env.items() if k.startswith("AIRFLOW_CONN_")})
        argv = [sys.executable, str(Path(__file__).resolve()), "--seed", kind, run_id, str(self.probe_file)]
        started = time.monotonic()
        done = subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:  # the output holds a warning per task ("execute outside the Task Runner")
            raise RuntimeError(f"seeding {kind} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        print(f"  seeded {kind} in {time.monotonic() - started:.1f} s", flush=True)

    @property
    def triggerer(self) -> Any:
        return self.cluster.component(TRIGGERER)

    def tree(self) -> list[Any]:
        import psutil

        process = self.triggerer.process
        assert process is not None
        parent = psutil.Process(process.pid)
        return [parent, *parent.children(recursive=True)]

    def rss_and_cpu(self) -> tuple[int, float]:
        import psutil

        rss, cpu = 0, 0.0
        for proc in self.tree():
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return rss, cpu

    def deferred(self, dag_id: str, run_id: str) -> int:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return int(self.api("GET", path, params={"state": "deferred", "limit": 1})["total_entries"])

    def restart_triggerer(self) -> None:
        """A fresh triggerer process; back once the probe (re-created in it) writes again."""
        self.cluster.restart(TRIGGERER)
        restarted = time.time()
        self.wait("the probe in the new triggerer", lambda: probe_lags(self.probe_file, restarted + 1, 1e12), 180)
        time.sleep(self.args.settle)

    def window(self, label: str, triggers: int, seconds: float) -> Window:
        """RSS sampled each second (median), CPU over the window, the probe's lags in it."""
        start_wall = time.time()
        _, cpu_start = self.rss_and_cpu()
        started = time.monotonic()
        rss_samples = []
        while time.monotonic() - started < seconds:
            self.cluster.check_alive()
            rss_samples.append(self.rss_and_cpu()[0])
            time.sleep(1.0)
        _, cpu_end = self.rss_and_cpu()
        elapsed = time.monotonic() - started
        lags = probe_lags(self.probe_file, start_wall, time.time()) or [float("nan")]
        measured = Window(
            label=label,
            triggers=triggers,
            seconds=round(elapsed, 1),
            rss_mib=statistics.median(rss_samples) / 2**20,
            cpu_percent=100 * (cpu_end - cpu_start) / elapsed,
            lag_p50_ms=percentile(lags, 0.50) * 1e3,
            lag_p99_ms=percentile(lags, 0.99) * 1e3,
            lag_max_ms=max(lags) * 1e3,
            lag_samples=len(lags),
        )
        print(
            f"  {label}: RSS {measured.rss_mib:.1f} MiB, CPU {measured.cpu_percent:.0f} %, "
            f"lag p50 {measured.lag_p50_ms:.1f} ms p99 {measured.lag_p99_ms:.1f} ms ({len(lags)} samples)",
            flush=True,
        )
        return measured

    def wait_polling(self, prefix: str, count: int, what: str) -> None:
        """Until ``count`` polls under ``prefix`` were answered, then one more poll interval."""
        self.wait(what, lambda: len(self.polls(prefix)) >= count, 600)
        time.sleep(self.args.poll)

    def fire(self, gate: str, dag_id: str, run_id: str) -> float:
        """Publish the gate; seconds until no task instance of the run is deferred any more."""
        self.auth.update_export(gate, state="done")
        started, started_wall = time.monotonic(), time.time()
        self.wait(f"every sensor of {dag_id} to fire", lambda: self.deferred(dag_id, run_id) == 0, 600)
        seconds = time.monotonic() - started
        time.sleep(2)  # the probe writes its lags in batches
        self.firing_lags = probe_lags(self.probe_file, started_wall, started_wall + seconds) or [float("nan")]
        return seconds

    # ------------------------------------------------------------------ the run

    def run(self) -> tuple[Window, list[Contender]]:
        args = self.args
        from benchmarks.triggerer_support import DAG_IDS as dag_ids
        from benchmarks.triggerer_support import GATES as gates

        started = time.monotonic()
        self.cluster.start()
        self.cluster.compose_healthchecks()  # they start Airflow's CLI: not while anything is measured
        print(f"stack started in {time.monotonic() - started:.0f} s", flush=True)

        runs = {kind: self.create_run(dag_ids[kind]) for kind in ("probe", "http", "jwt")}
        token = self.static_token()
        self.triggerer.env["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps(
            {"conn_type": "http", "host": f"{self.auth.url}/api", "extra": {"Authorization": f"Bearer {token}"}}
        )
        self.seed("probe", runs["probe"])
        self.restart_triggerer()  # the http connection in its environment; the probe starts

        http = Contender("http provider HttpSensor(deferrable=True)", args.sensors, 0)
        idle_http = self.window("idle (probe only)", 1, args.window)
        self.seed("http", runs["http"])
        self.auth.reset()  # the seeding's own first pokes are not the triggerer's
        self.wait_polling(f"/api/exports/{gates['http']}", args.sensors, "every HttpSensorTrigger to poll")
        loaded = self.window(f"{args.sensors} HttpSensorTrigger", args.sensors, args.window)
        http.seconds_to_all_fired = self.fire(gates["http"], dag_ids["http"], runs["http"])
        http.firing_lag_p99_ms = percentile(self.firing_lags, 0.99) * 1e3
        print(f"  all {args.sensors} fired in {http.seconds_to_all_fired:.1f} s", flush=True)
        http.token_requests = len(self.auth.token_requests())
        http.api_requests = len(self.auth.api_requests())
        http.windows = [idle_http, loaded]
        http.rss_per_trigger_kib = (loaded.rss_mib - idle_http.rss_mib) * 1024 / args.sensors
        http.rss_per_sensor_kib = http.rss_per_trigger_kib

        self.restart_triggerer()
        jwt = Contender("provider JwtBearerHttpSensor(deferrable=True) + watchers", args.sensors, args.watchers)
        idle_jwt = self.window("idle (probe only)", 1, args.window)
        self.auth.reset()
        phase_started = time.monotonic()
        windows = [idle_jwt]
        if args.watchers:
            self.start_watchers(dag_ids["watchers"])
            windows.append(self.window(f"{args.watchers} watchers", args.watchers, args.window))
        self.seed("jwt", runs["jwt"])
        self.wait_polling(f"/api/exports/{gates['jwt']}", args.sensors, "every JwtBearerHttpTrigger to poll")
        loaded = self.window(
            f"{args.sensors} JwtBearerHttpTrigger + {args.watchers} watchers", args.sensors + args.watchers, args.window
        )
        windows.append(loaded)
        jwt.seconds_to_all_fired = self.fire(gates["jwt"], dag_ids["jwt"], runs["jwt"])
        jwt.firing_lag_p99_ms = percentile(self.firing_lags, 0.99) * 1e3
        print(f"  all {args.sensors} fired in {jwt.seconds_to_all_fired:.1f} s", flush=True)
        jwt.token_requests = len(self.auth.token_requests())
        jwt.api_requests = len(self.auth.api_requests())
        jwt.windows = windows
        jwt.rss_per_trigger_kib = (loaded.rss_mib - idle_jwt.rss_mib) * 1024 / (args.sensors + args.watchers)
        base = windows[1].rss_mib if args.watchers else idle_jwt.rss_mib
        jwt.rss_per_sensor_kib = (loaded.rss_mib - base) * 1024 / args.sensors
        if args.watchers:
            jwt.rss_per_watcher_kib = (windows[1].rss_mib - idle_jwt.rss_mib) * 1024 / args.watchers
        self.phase_seconds = time.monotonic() - phase_started
        return idle_http, [http, jwt]

    def static_token(self) -> str:
        """A token for the peer's static header, fetched once here through the provider's hook."""
        os.environ["AIRFLOW_CONN_JWT_BENCH_MINT"] = self.cluster.service_env(TRIGGERER)["AIRFLOW_CONN_JWT_BENCH"]
        from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

        return JwtBearerHook("jwt_bench_mint").get_token().access_token

    def start_watchers(self, dag_id: str) -> None:
        from benchmarks.triggerer_support import WATCH_EXPORT

        """Unpause the watchers' DAG and have it parsed again: the dag-processor registers the watchers."""
        self.wait(f"{dag_id} to be parsed", lambda: self.api("GET", f"/api/v2/dags/{dag_id}"), 600)
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        file_token = self.api("GET", f"/api/v2/dags/{dag_id}/details")["file_token"]
        self.api("PUT", f"/api/v2/parseDagFile/{file_token}")
        prefix = "/api/exports/" + WATCH_EXPORT.format("")
        self.wait(
            f"all {self.args.watchers} watchers polling",
            lambda: len({r["path"] for r in self.polls(prefix)}) >= self.args.watchers,
            600,
        )
        time.sleep(self.args.poll)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, contenders: list[Contender], phase_seconds: float) -> tuple[str, bool]:
    """The table, and whether the token target was met."""
    allowed = max(1, math.ceil(phase_seconds / TOKEN_LIFETIME))
    jwt = contenders[-1]
    met = jwt.token_requests <= allowed
    lines = [
        f"\nOne airflow triggerer, {args.sensors} deferred sensors polling every {args.poll:g} s"
        f" (+ {args.watchers} event watchers for the provider), on {os.cpu_count()} cores:\n",
        "| | " + " | ".join(c.name for c in contenders) + " |",
        "|---|" + "---|" * len(contenders),
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("token requests (whole phase)", [str(c.token_requests) for c in contenders])
    row("API requests (whole phase)", [str(c.api_requests) for c in contenders])
    for index, title in ((0, "idle triggerer (probe only)"), (-1, "all triggers polling")):
        row(
            f"event-loop lag p50 / p99, {title}",
            [f"{c.windows[index].lag_p50_ms:.1f} / {c.windows[index].lag_p99_ms:.1f} ms" for c in contenders],
        )
        row(f"triggerer RSS, {title}", [f"{c.windows[index].rss_mib:.0f} MiB" for c in contenders])
        row(f"triggerer CPU, {title}", [f"{c.windows[index].cpu_percent:.0f} %" for c in contenders])
    row("RSS per trigger (all minus idle, / triggers)", [f"{c.rss_per_trigger_kib:.0f} KiB" for c in contenders])
    row("RSS per sensor", [f"{c.rss_per_sensor_kib:.0f} KiB" for c in contenders])
    row("RSS per watcher", [f"{c.rss_per_watcher_kib:.0f} KiB" if c.rss_per_watcher_kib else "" for c in contenders])
    row("ready → all task instances out of deferred", [f"{c.seconds_to_all_fired:.1f} s" for c in contenders])
    row("event-loop lag p99 while they fire", [f"{c.firing_lag_p99_ms:.1f} ms" for c in contenders])
    lines.append(
        f"\nprovider token requests: {jwt.token_requests} (target ≤ {allowed}: 1 per {TOKEN_LIFETIME:.0f} s token "
        f"lifetime over {phase_seconds:.0f} s) {'ok' if met else 'MISSED'}"
    )
    return "\n".join(lines), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000, help="deferred sensors per contender (1000)")
    parser.add_argument("--watchers", type=int, default=50, help="the provider's asset watchers (50)")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between two polls of a trigger (10)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of each measured window (30)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after a triggerer restart (10)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (component logs)")
    parser.add_argument("--seed", nargs=3, metavar=("KIND", "RUN_ID", "PROBE_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(*args.seed)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="jwt-bench-triggerer-"))
    bench = Bench(args, workdir)
    failed = True
    try:
        _, contenders = bench.run()
        table, met = report(args, contenders, bench.phase_seconds)
        print(table)
        if args.json:
            from benchmarks.results import write_results

            write_results(
                args.json,
                "bench_triggerer",
                sensors=args.sensors,
                watchers=args.watchers,
                poll_interval=args.poll,
                window_seconds=args.window,
                token_target_met=met,
                contenders=[asdict(c) for c in contenders],
            )
        failed = False
        return 0 if met else 1
    finally:
        bench.cluster.stop()
        if failed or args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if OWN_AIRFLOW_HOME is not None:
            shutil.rmtree(OWN_AIRFLOW_HOME, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
