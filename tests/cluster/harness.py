"""The docker compose stack (``docker-compose.yaml``) as plain processes on 127.0.0.1, without containers.

No Docker engine runs where the tests run, yet what users start is the compose stack: the
``jwt_bearer_default`` connection in ``AIRFLOW_CONN_JWT_BEARER_DEFAULT``, CeleryExecutor with Redis
and PostgreSQL, the shared ``jwt_secret``, ``execution_api_server_url``, ``test_connection``... So
:class:`Cluster` reads the compose file and starts every service as a process with the service's own
environment, command and health check. Only what a container gives a process and a machine does not
is replaced:

* service host names (``postgres``, ``redis``, ``authserver``, ``airflow-apiserver``) become
  127.0.0.1 and a free port (:data:`CONTAINER_PORTS`);
* paths inside the image become folders of the work directory: ``/opt/airflow`` (``AIRFLOW_HOME``,
  holding the ``dags``, ``logs`` and ``keys`` volumes) under ``<workdir>/image``, while
  ``/opt/provider`` and ``/opt/devserver`` (where the Dockerfile copies the repository) are the
  repository itself;
* ports every container had to itself get a free port each: the scheduler's health check server,
  the log servers of the workers and of the triggerer, the api-server's own port;
* the images: PostgreSQL and redis-server from Debian's packages, Airflow and the provider from
  this virtualenv. PostgreSQL runs as a private cluster in the work directory (as the ``postgres``
  user when this runs as root: PostgreSQL refuses root).

Two ``airflow-worker`` processes run, as ``docker compose up --scale airflow-worker=2`` would.
The start order follows ``depends_on``; every component's output goes to ``<workdir>/logs``.
:meth:`Cluster.stop` ends every process group and process the harness started, children included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psutil
import requests

from tests.compose import REPO_ROOT, command_argv, environment, load_compose, option, volumes, with_defaults

VENV_BIN = Path(sys.executable).parent
IMAGE_AIRFLOW_HOME = "/opt/airflow"
#: Where the Dockerfile puts the repository (and devserver/) inside the image.
IMAGE_COPIES = {"/opt/provider": REPO_ROOT, "/opt/devserver": REPO_ROOT}
#: The port each service listens on inside its container; URLs in the compose file use these.
CONTAINER_PORTS = {"postgres": 5432, "redis": 6379, "authserver": 8080, "airflow-apiserver": 8080}
#: Host names that stand for "this container" in health checks.
SELF_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}
WORKER_SERVICE = "airflow-worker"
AUTHSERVER_SERVICE = "authserver"
CONN_VAR = "AIRFLOW_CONN_JWT_BEARER_DEFAULT"

#: Settings that only make the run faster on a small machine; the compose file stays the reference.
TUNING: dict[str, str] = {
    # Parse each DAG file once: the files do not change during a run, and re-parsing them every
    # 30 s (the default) takes CPU from the tasks.
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
}

_SERVICE_URL = re.compile(r"(?P<lead>//|@)(?P<host>[A-Za-z][A-Za-z0-9._-]*)(?::(?P<port>\d+))?(?=[/\"?]|$)")
_IMAGE_PATH = re.compile(r"(?<![\w./-])(?P<path>/opt/[A-Za-z0-9._-]+)(?P<rest>(?:/[^\s\"',:;]*)?)")


class ClusterError(RuntimeError):
    """The stack could not be started, or a component died or never became healthy."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (or why there are none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{path.name}: {exc.strerror}>"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns a true value (returned) or raises ClusterError; time out."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = check()
        except ClusterError:
            raise
        except Exception as exc:  # not up yet: connection refused, 503, ...
            result, last_error = None, f" (last: {type(exc).__name__}: {exc})"
        if result:
            return result
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{last_error}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


@dataclass
class Component:
    """One long-running process of the stack, its own process group, its output in ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches its children
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with {self.process.returncode}; last lines of {self.log}:\n{tail(self.log)}"
            )


def _signal_tree(processes: list[psutil.Process], groups: list[int], sig: signal.Signals) -> None:
    """Signal each group, and each process outside those groups (a second SIGTERM forces some exits)."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for proc in processes:
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) not in groups:
                proc.send_signal(sig)


def stop_components(components: list[Component], grace: float = 20.0) -> None:
    """SIGTERM every component's group and descendants, then SIGKILL what is left after ``grace``."""
    started = [c for c in components if c.process is not None]
    groups = [c.process.pid for c in started if c.process is not None]
    tree: list[psutil.Process] = []
    for component in started:
        assert component.process is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(component.process.pid)
            tree += [parent, *parent.children(recursive=True)]
    _signal_tree(tree, groups, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    if alive:
        _signal_tree(alive, groups, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
    for component in started:
        assert component.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=5)


# --------------------------------------------------------------------------------------------------
# The authorization server
# --------------------------------------------------------------------------------------------------


class AuthServer(Protocol):
    """The ``authserver`` service as the test sees it: where it is, how many tokens it was asked for."""

    url: str

    def token_requests(self) -> list[dict[str, Any]]: ...

    def api_requests(self) -> list[dict[str, Any]]: ...

    def issued_access_tokens(self) -> list[str] | None: ...

    def reset(self) -> None: ...

    def revoke_all_tokens(self) -> None: ...

    def trust_issuer(self, issuer: str, subject: str, client_id: str) -> None: ...

    def update_export(self, name: str, **fields: Any) -> dict[str, Any]: ...

    def stop(self) -> None: ...


class InProcessAuthServer:
    """``devserver.server.LocalAuthorizationServer`` in this (pytest) process, on the service's port.

    The client is registered as ``python -m devserver`` would from the compose command's
    ``--client-id`` / ``--keystore`` / ``--keystore-password``; the records are read directly.
    """

    SUPPORTED_FLAGS = {"--host", "--port", "--client-id", "--keystore", "--keystore-password"}

    def __init__(self, argv: list[str], port: int) -> None:
        from devserver.server import LocalAuthorizationServer, load_client_key_material

        flags = {word.split("=", 1)[0] for word in argv if word.startswith("--")}
        if unsupported := sorted(flags - self.SUPPORTED_FLAGS):
            raise ClusterError(
                f"the authserver command uses {unsupported}, which the in-process server does not apply: "
                "run it as a process (CLUSTER_AUTHSERVER=process)"
            )
        material = load_client_key_material(
            keystore=option(argv, "--keystore"), keystore_password=option(argv, "--keystore-password")
        )
        self.server = LocalAuthorizationServer("127.0.0.1", port).start()
        self.server.register_client(str(option(argv, "--client-id")), **material)
        self.url = self.server.url

    def token_requests(self) -> list[dict[str, Any]]:
        return list(self.server.token_requests)

    def api_requests(self) -> list[dict[str, Any]]:
        return list(self.server.api_requests)

    def issued_access_tokens(self) -> list[str]:
        """Every access token the server issued, to look for them where they must not be (logs)."""
        with self.server._lock:  # the devserver keeps them for its own bearer checks only
            return list(self.server._tokens)

    def reset(self) -> None:
        self.server.reset()

    def revoke_all_tokens(self) -> None:
        self.server.revoke_all_tokens()

    def trust_issuer(self, issuer: str, subject: str, client_id: str) -> None:
        self.server.trust_issuer(issuer, subject=subject, client_id=client_id)

    def update_export(self, name: str, **fields: Any) -> dict[str, Any]:
        etag = fields.pop("etag", None)
        return self.server.exports.update(name, etag=etag, **fields).document(name)

    def stop(self) -> None:
        self.server.stop()


class ProcessAuthServer:
    """``python -m devserver`` exactly as the compose ``authserver`` service runs it.

    Its records come from ``GET /_devserver/token-requests`` and ``GET /_devserver/api-requests``
    (JSON lists), which the devserver answers to loopback clients.
    """

    def __init__(self, component: Component, url: str) -> None:
        self.component = component
        self.url = url

    def _records(self, name: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/_devserver/{name}", timeout=10)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def token_requests(self) -> list[dict[str, Any]]:
        return self._records("token-requests")

    def api_requests(self) -> list[dict[str, Any]]:
        return self._records("api-requests")

    def issued_access_tokens(self) -> list[str] | None:
        """None: a devserver process never tells its tokens (CLUSTER_AUTHSERVER=in-process does)."""
        return None

    def reset(self) -> None:
        """Forget the records (``POST /_devserver/reset``), e.g. between two DAG runs."""
        requests.post(f"{self.url}/_devserver/reset", timeout=10).raise_for_status()

    def revoke_all_tokens(self) -> None:
        """Every token issued so far is refused from now on (``POST /_devserver/revoke``)."""
        requests.post(f"{self.url}/_devserver/revoke", timeout=10).raise_for_status()

    def trust_issuer(self, issuer: str, subject: str, client_id: str) -> None:
        """Trust a workload platform's JWTs for ``client_id`` (``POST /_devserver/trust-issuer``)."""
        body = {"issuer": issuer, "subject": subject, "client_id": client_id}
        requests.post(f"{self.url}/_devserver/trust-issuer", json=body, timeout=10).raise_for_status()

    def update_export(self, name: str, **fields: Any) -> dict[str, Any]:
        """A change of the export ``/api/exports/<name>`` (``POST /_devserver/exports/<name>``); its new document."""
        response = requests.post(f"{self.url}/_devserver/exports/{name}", json=fields, timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def stop(self) -> None:  # the component is stopped with the others
        pass


# --------------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The compose stack on this machine; see the module docstring. Use as a context manager.

    ``extra_dags``: DAG files linked into the dags folder next to the repository's ``dags/``.
    ``connection_extra``: keys merged into the extra of ``AIRFLOW_CONN_JWT_BEARER_DEFAULT``.
    ``extra_connections``: more connections, by id: copies of that connection with these keys merged
    into their extra (``{"jwt_bearer_memory": {"token_cache": "memory"}}``; ``None`` removes a key),
    set on every service.
    ``extra_env``: more environment of every Airflow service (a deployment's secrets, ``[jwt_bearer]``).
    ``authserver_mode``: ``"in-process"`` or ``"process"`` (see the two classes above).
    ``worker_env``: more environment of one worker replica, by its index (1, 2...): a fault that only
    one worker has (``LD_PRELOAD`` of libfaketime and ``FAKETIME`` for a clock ahead).
    """

    workdir: Path
    extra_dags: list[Path] = field(default_factory=list)
    connection_extra: Mapping[str, Any] = field(default_factory=dict)
    extra_connections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 2
    worker_env: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    authserver_mode: str = "process"
    startup_timeout: float = 240.0

    def __post_init__(self) -> None:
        self.compose = load_compose()
        self.services: dict[str, dict[str, Any]] = self.compose["services"]
        self.image_root = self.workdir / "image"
        self.log_dir = self.workdir / "logs"
        self.pg_dir = self.workdir / "postgres"
        self.components: list[Component] = []
        self.authserver: AuthServer | None = None
        self.timings: dict[str, float] = {}
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compose-healthchecks")
        self._healthchecks: futures.Future[None] | None = None
        names = [*CONTAINER_PORTS, "scheduler-health", "triggerer-logs"]
        names += [f"{WORKER_SERVICE}-{i}-logs" for i in range(1, self.workers + 1)]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self._pg_bin = self._postgres_bin()

    # ------------------------------------------------------------------ mapping compose to here

    def host_path(self, image_path: str) -> Path:
        """Where a path of the image lives here."""
        for prefix, local in IMAGE_COPIES.items():
            if image_path == prefix or image_path.startswith(prefix + "/"):
                return local / image_path[len(prefix) :].lstrip("/")
        return self.image_root / image_path.lstrip("/")

    def localize(self, value: str, where: str) -> str:
        """A compose value as this machine needs it: defaults interpolated, hosts and paths mapped."""

        def host(match: re.Match[str]) -> str:
            name, port = match["host"], match["port"]
            if name in SELF_HOSTS:
                return match[0]
            if name not in CONTAINER_PORTS:
                raise ClusterError(f"{where} refers to host {name!r}, which is not a service the harness runs")
            if port is not None and int(port) != CONTAINER_PORTS[name]:
                raise ClusterError(f"{where}: {name} listens on {CONTAINER_PORTS[name]}, not {port}")
            return f"{match['lead']}127.0.0.1:{self.ports[name]}"

        def path(match: re.Match[str]) -> str:
            return str(self.host_path(match["path"] + match["rest"]))

        return _IMAGE_PATH.sub(path, _SERVICE_URL.sub(host, with_defaults(value)))

    def compose_env(self, service: str) -> dict[str, str]:
        """This machine's environment (no Airflow settings of its own) + the service's compose environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env.update({k: self.localize(v, f"{service}: {k}") for k, v in environment(self.services[service]).items()})
        return env

    def service_env(self, service: str) -> dict[str, str]:
        """The process environment of an Airflow service (see the module docstring for what differs)."""
        env = self.compose_env(service)
        if CONN_VAR in env:
            compose_connection = env[CONN_VAR]
            env[CONN_VAR] = self._with_extra(compose_connection, self.connection_extra)
            for conn_id, extra in self.extra_connections.items():
                env[f"AIRFLOW_CONN_{conn_id.upper()}"] = self._with_extra(compose_connection, extra)
        # What the image sets and each container has to itself.
        env["AIRFLOW_HOME"] = str(self.host_path(IMAGE_AIRFLOW_HOME))
        env["AIRFLOW__API__HOST"] = "127.0.0.1"
        env["AIRFLOW__API__PORT"] = str(self.ports["airflow-apiserver"])
        env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] = "127.0.0.1"
        env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] = str(self.ports["scheduler-health"])
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(self.ports["triggerer-logs"])
        env.update(TUNING)
        env.update(self.extra_env)
        return env

    def _with_extra(self, connection_json: str, extra: Mapping[str, Any]) -> str:
        """A connection (JSON) with ``extra`` merged into its extra, string values mapped like compose values."""
        if not extra:
            return connection_json
        connection = json.loads(connection_json)
        added = {
            key: self.localize(value, f"connection extra {key}") if isinstance(value, str) else value
            for key, value in extra.items()
        }
        merged = {**connection.get("extra", {}), **added}
        connection["extra"] = {key: value for key, value in merged.items() if value is not None}
        return json.dumps(connection)

    def service_argv(self, service: str) -> list[str]:
        """A service's command as the image's entrypoint runs it (``airflow <command>`` unless bash/python)."""
        argv = [self.localize(word, f"{service}: command") for word in command_argv(self.services[service]["command"])]
        if argv[0] == "python":
            return [sys.executable, *argv[1:]]
        if argv[0] == "bash":
            return [shutil.which("bash") or "/bin/bash", *argv[1:]]
        return [str(VENV_BIN / "airflow"), *argv]

    def health_argv(self, service: str, port: int | None = None) -> tuple[list[str], bool]:
        """The service's compose health check as a command here, and whether it goes through a shell.

        ``port``: where the checked server listens here (default: the service's own port).
        """
        test = command_argv(self.services[service]["healthcheck"]["test"])
        kind, argv = test[0], test[1:]
        port = self.ports.get(service) if port is None else port

        def here(word: str) -> str:
            parts = urlsplit(word)
            if parts.scheme in ("http", "https") and parts.hostname in SELF_HOSTS:
                return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
            return self.localize(word, f"{service}: healthcheck")

        argv = [here(word) for word in argv]
        if argv[0] == "pg_isready":
            argv = [str(self._pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), *argv[1:]]
        elif argv[0] == "redis-cli":
            argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *argv[1:]]
        return argv, kind == "CMD-SHELL"

    def healthcheck(self, service: str, env: dict[str, str], port: int | None = None) -> str | None:
        """Run the compose health check of ``service`` once: None when it passes, else what it said."""
        argv, shell = self.health_argv(service, port)
        command: list[str] | str = " ".join(argv) if shell else argv
        result = subprocess.run(command, shell=shell, env=env, capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return None
        return f"{command}: exit {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"

    def run_healthcheck(self, service: str, env: dict[str, str], port: int | None = None) -> None:
        """The compose health check of ``service`` must pass now."""
        if (problem := self.healthcheck(service, env, port)) is not None:
            raise ClusterError(f"health check of {service} failed: {problem}")

    def wait_healthy(self, service: str, env: dict[str, str], timeout: float = 60) -> None:
        self.wait_for(f"{service}'s health check", lambda: self.healthcheck(service, env) is None, timeout=timeout)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.timings[step] = time.monotonic() - started

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._timed("volumes"):
            self._make_volumes()
        with self._timed("postgres"):
            self._start_postgres()
        with self._timed("redis"):
            self._start_redis()
        with self._timed("airflow-init"):
            self._run_init()
        with self._timed("authserver"):
            self._start_authserver()
        with self._timed("api-server, scheduler, dag-processor"):
            for service in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
                self._start_airflow(service)
            self.wait_for("api-server", lambda: self.api("GET", "/api/v2/version"))
        with self._timed("triggerer, workers"):
            self._start_airflow("airflow-triggerer")
            for index in range(1, self.workers + 1):
                self._start_worker(index)
            self.wait_for("every component to report healthy", self._all_healthy)
        # The compose health checks start Airflow's CLI (seconds of CPU each): they run while the
        # test goes on, and compose_healthchecks() tells how they ended.
        self._healthchecks = self._background.submit(self._run_compose_healthchecks)

    def compose_healthchecks(self, timeout: float = 300) -> None:
        """Wait for the compose health checks started by start(); ClusterError if one failed."""
        if self._healthchecks is None:
            raise ClusterError("the stack was not started")
        self._healthchecks.result(timeout)

    def stop(self) -> None:
        """Stop everything that was started (safe to call twice, and after a failed start)."""
        if self._healthchecks is not None:
            futures.wait([self._healthchecks], timeout=150)  # no check left running against a stopped stack
        self._background.shutdown(wait=False, cancel_futures=True)
        stop_components(list(reversed(self.components)))
        if self.authserver is not None:
            self.authserver.stop()
            self.authserver = None
        if (self.pg_dir / "data" / "postmaster.pid").exists():
            pg_ctl = [str(self._pg_bin / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-w", "-t", "30"]
            for mode in ("fast", "immediate"):
                stopped = subprocess.run(self._as_postgres([*pg_ctl, "-m", mode, "stop"]), capture_output=True)
                if stopped.returncode == 0:
                    break

    # ------------------------------------------------------------------ steps

    def _make_volumes(self) -> None:
        """The volumes of the Airflow services: named ones as empty folders, bind mounts as links."""
        for service in self.services.values():
            for source, target, _read_only in volumes(service):
                if not target.startswith(IMAGE_AIRFLOW_HOME):
                    continue  # postgres' data: the private cluster has its own folder
                folder = self.host_path(target)
                folder.mkdir(parents=True, exist_ok=True)
                if source.startswith((".", "/")):
                    for path in sorted((REPO_ROOT / source).resolve().iterdir()):
                        link = folder / path.name
                        if path.suffix == ".py" and not link.exists():
                            link.symlink_to(path)
        dags = self.host_path(f"{IMAGE_AIRFLOW_HOME}/dags")
        for path in self.extra_dags:
            (dags / path.name).symlink_to(path.resolve())

    @staticmethod
    def _postgres_bin() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not found:
            raise ClusterError("PostgreSQL is not installed: run scripts/install-system-deps (Debian postgresql)")
        return found[-1].parent

    def _as_postgres(self, argv: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _start_postgres(self) -> None:
        env = {k: with_defaults(v) for k, v in environment(self.services["postgres"]).items()}
        user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
        self.pg_dir.mkdir()
        (self.pg_dir / "pwfile").write_text(password + "\n")
        if os.geteuid() == 0:
            self.workdir.chmod(0o711)  # the postgres user must reach its folder
            shutil.chown(self.pg_dir, "postgres")
            shutil.chown(self.pg_dir / "pwfile", "postgres")
        initdb = [str(self._pg_bin / "initdb"), "-D", str(self.pg_dir / "data"), "-U", user, "-E", "UTF8"]
        initdb += ["--pwfile", str(self.pg_dir / "pwfile"), "--auth-local=trust", "--auth-host=scram-sha-256"]
        self._run("initdb", self._as_postgres([*initdb, "--no-sync"]))
        server_options = f"-p {self.ports['postgres']} -k {self.pg_dir} -h 127.0.0.1 -c max_connections=300"
        server_options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # a throw-away database
        log = self.pg_dir / "postgres.log"
        start = [str(self._pg_bin / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-l", str(log), "-o", server_options]
        self._run("pg_ctl start", self._as_postgres([*start, "-w", "-t", "60", "start"]))
        createdb = [str(self._pg_bin / "createdb"), "-h", str(self.pg_dir), "-p", str(self.ports["postgres"])]
        self._run("createdb", self._as_postgres([*createdb, "-U", user, database]))
        self.run_healthcheck("postgres", dict(os.environ))

    def _start_redis(self) -> None:
        folder = self.workdir / "redis"
        folder.mkdir()
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.ports["redis"]), "--dir", str(folder)]
        self._spawn("redis", [*argv, "--save", "", "--appendonly", "no"], dict(os.environ))
        self.wait_healthy("redis", dict(os.environ), timeout=30)

    def _run_init(self) -> None:
        env = self.service_env("airflow-init")
        result = self._run("airflow-init", self.service_argv("airflow-init"), env=env, timeout=300)
        (self.log_dir / "airflow-init.log").write_text(result.stdout + result.stderr)

    def _start_authserver(self) -> None:
        argv = self.service_argv(AUTHSERVER_SERVICE)
        argv[argv.index("--host") + 1] = "127.0.0.1"  # a container's 0.0.0.0: loopback only here
        argv[argv.index("--port") + 1] = str(self.ports[AUTHSERVER_SERVICE])
        if self.authserver_mode == "in-process":
            self.authserver = InProcessAuthServer(argv, self.ports[AUTHSERVER_SERVICE])
        elif self.authserver_mode == "process":
            component = self._spawn(AUTHSERVER_SERVICE, argv, self.compose_env(AUTHSERVER_SERVICE))
            self.authserver = ProcessAuthServer(component, f"http://127.0.0.1:{self.ports[AUTHSERVER_SERVICE]}")
        else:
            raise ClusterError(f"unknown authserver mode {self.authserver_mode!r}: in-process or process")
        self.wait_healthy(AUTHSERVER_SERVICE, dict(os.environ))

    def _start_airflow(self, service: str, name: str | None = None, env: dict[str, str] | None = None) -> Component:
        return self._spawn(name or service, self.service_argv(service), env or self.service_env(service))

    def worker_name(self, index: int) -> str:
        return f"{WORKER_SERVICE}-{index}"

    def _start_worker(self, index: int) -> None:
        """One replica of the worker service: its own Celery node name and log server port."""
        name = self.worker_name(index)
        env = self.service_env(WORKER_SERVICE)
        env["HOSTNAME"] = name  # a container's host name; the compose health check pings celery@$HOSTNAME
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports[f"{name}-logs"])
        env.update(self.worker_env.get(index, {}))
        argv = [*self.service_argv(WORKER_SERVICE), "--celery-hostname", f"celery@{name}"]
        self._spawn(name, argv, env)

    def _all_healthy(self) -> bool:
        """The api-server's view of the metadatabase, scheduler, triggerer and dag-processor, and the workers."""
        health = self.api("GET", "/api/v2/monitor/health")
        states = {name: (part or {}).get("status") for name, part in health.items()}
        if any(state != "healthy" for state in states.values()):
            return False
        return all(f"celery@{self.worker_name(i)}" in self.celery_nodes() for i in range(1, self.workers + 1))

    def celery_nodes(self) -> set[str]:
        """Celery node names that answer a ping through the broker."""
        from celery import Celery

        broker = self.service_env(WORKER_SERVICE)["AIRFLOW__CELERY__BROKER_URL"]
        app = Celery(broker=broker)
        try:
            return {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        finally:
            app.close()

    def _run_compose_healthchecks(self) -> None:
        """Each Airflow service's own compose health check, run once as it is written (all at once)."""
        with self._timed("compose health checks (meanwhile)"):
            self._run_compose_healthchecks_now()

    def _run_compose_healthchecks_now(self) -> None:
        checks: list[tuple[str, dict[str, str], int | None]] = [
            ("airflow-apiserver", self.service_env("airflow-apiserver"), None),
            ("airflow-scheduler", self.service_env("airflow-scheduler"), self.ports["scheduler-health"]),
            ("airflow-dag-processor", self.service_env("airflow-dag-processor"), None),
            ("airflow-triggerer", self.service_env("airflow-triggerer"), None),
        ]
        for index in range(1, self.workers + 1):
            env = self.service_env(WORKER_SERVICE)
            env["HOSTNAME"] = self.worker_name(index)
            checks.append((WORKER_SERVICE, env, None))
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            problems = list(pool.map(lambda check: self.healthcheck(*check), checks))
        failed = [f"{service}: {problem}" for (service, _, _), problem in zip(checks, problems, strict=True) if problem]
        if failed:
            raise ClusterError("compose health checks failed:\n" + "\n".join(failed))

    # ------------------------------------------------------------------ helpers

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Component:
        component = Component(name, argv, env, self.log_dir / f"{name}.log")
        self.components.append(component)
        component.start(self.workdir)
        return component

    def _run(
        self, what: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(
                f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def check_alive(self) -> None:
        for component in self.components:
            component.check_alive()

    def component(self, name: str) -> Component:
        """The running component called ``name`` (``airflow-triggerer``, ``airflow-worker-1``...)."""
        for component in self.components:
            if component.name == name:
                return component
        raise ClusterError(f"no component {name!r}; the stack runs {[c.name for c in self.components]}")

    def restart(self, name: str, grace: float = 30.0) -> Component:
        """Stop a component (SIGTERM to its group and children, SIGKILL after ``grace``) and start it again.

        The same command and environment, the output appended to the same log: what ``docker compose
        restart <service>`` does to a container.
        """
        component = self.component(name)
        with self._timed(f"restart {name}"):
            stop_components([component], grace=grace)
            component.start(self.workdir)
        return component

    def kill(self, name: str) -> None:
        """SIGKILL a component's process group and every descendant: a crash, no chance to clean up.

        What the OOM killer or a lost node does to a worker; :meth:`start_again` brings it back.
        """
        component = self.component(name)
        assert component.process is not None
        with self._timed(f"kill {name}"):
            # Its descendants too, those in a session of their own included (a task's supervisor may
            # start one): a lost node or container takes every process with it.
            try:
                descendants = psutil.Process(component.process.pid).children(recursive=True)
            except psutil.Error:
                descendants = []
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGKILL)
            for process in descendants:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            component.process.wait(timeout=30)

    def start_again(self, name: str) -> Component:
        """Start a component that was killed, with its command and environment, appending to its log."""
        component = self.component(name)
        component.start(self.workdir)
        return component

    def restart_redis(self, grace: float = 10.0) -> None:
        """Restart the Redis of the stack (Celery's broker and the token cache) and wait until it answers.

        It keeps nothing across the restart (the compose service saves nothing either): the
        broker's queue and every token cache entry and lock are gone, as after a fresh container.
        """
        self.restart("redis", grace=grace)
        self.wait_healthy("redis", dict(os.environ), timeout=30)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float | None = None) -> Any:
        """wait_until, failing at once when a component dies meanwhile."""

        def alive_and(check=check) -> Any:
            self.check_alive()
            return check()

        return wait_until(what, alive_and, self.startup_timeout if timeout is None else timeout)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['airflow-apiserver']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to Airflow's REST API (every request is admin: SIMPLE_AUTH_MANAGER_ALL_ADMINS)."""
        response = requests.request(method, self.api_url + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise ClusterError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def logs(self) -> dict[str, Path]:
        """Every component's output, PostgreSQL's log included."""
        found = {component.name: component.log for component in self.components}
        found["airflow-init"] = self.log_dir / "airflow-init.log"
        found["postgres"] = self.pg_dir / "postgres.log"
        return found

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"----- {name} ({path}) -----\n{tail(path, lines)}" for name, path in self.logs().items())
