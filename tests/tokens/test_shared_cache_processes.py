"""One token request for many processes at once, and a killed fetcher that blocks nobody past the bound.

Real processes (forked by ``tests/shared_cache_clients.py``, each with its own per-process cache
and store client), a real redis-server or a real directory, the devserver counting the token
requests. The devserver holds the first token request for a while, so that the others are sure
to find the lock taken and have to wait for the token instead of racing for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.connection.settings import DEFAULT_TOKEN_CACHE_WAIT
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, REDIS_CONN_ID, REPO_ROOT, connection_extra, register

pytestmark = pytest.mark.slow

PROCESSES = 16
TOKEN_PATH = "/oauth2/token"


@pytest.fixture(params=["redis", "file"])
def shared_conn_id(
    request: pytest.FixtureRequest,
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    set_connection: Callable[..., str],
    tmp_path: Path,
) -> str:
    store = keystores["default"]
    register(auth_server, store)
    if request.param == "redis":
        request.getfixturevalue("redis_connection")
        cache: dict[str, Any] = {"token_cache": "redis", "token_cache_conn_id": REDIS_CONN_ID}
    else:
        cache = {"token_cache": "file", "token_cache_dir": str(tmp_path / "tokens")}
    return set_connection(
        "jwt_processes",
        host=auth_server.api_url,
        login=CLIENT_ID,
        extra=connection_extra(store, auth_server, **cache),
    )


def start_clients(conn_id: str, processes: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.shared_cache_clients", "--conn-id", conn_id, "--processes", str(processes)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a test can kill it with its children
    )


def results_of(clients: subprocess.Popen[str], timeout: float = 180) -> list[dict[str, Any]]:
    out, err = clients.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("RESULTS ")]
    said = f"exit {clients.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    assert clients.returncode == 0, said
    assert lines, said
    results: list[dict[str, Any]] = json.loads(lines[-1].removeprefix("RESULTS "))
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors
    assert "Traceback" not in err, err[-3000:]
    return results


def granted(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


def test_processes_started_at_once_make_one_token_request(
    shared_conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.hold_next(TOKEN_PATH, seconds=1.0)  # the fetch takes a second: the others must wait for it
    results = results_of(start_clients(shared_conn_id, PROCESSES))
    assert len(results) == PROCESSES
    assert len({r["pid"] for r in results}) == PROCESSES
    assert len({r["token"] for r in results}) == 1, "the processes did not share one token"
    assert len(auth_server.token_requests) == 1, auth_server.token_requests
    # Nobody gave up waiting (token_cache_wait, 10 s): each took the held fetch plus its own start-up
    # (opening the store, sixteen processes on this machine's cores) and a poll.
    assert max(r["seconds"] for r in results) < DEFAULT_TOKEN_CACHE_WAIT - 2


def test_a_killed_fetcher_blocks_nobody_past_the_bound(
    shared_conn_id: str, auth_server: LocalAuthorizationServer, request: pytest.FixtureRequest
) -> None:
    """The fetcher is SIGKILLed while it holds the lock, in the middle of its token request."""
    wait = 6.0
    env = {"AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT": str(wait)}
    auth_server.hold_next(TOKEN_PATH, seconds=120)  # the fetcher's request never ends
    fetcher = start_clients(shared_conn_id, 1, env)
    try:
        deadline = time.monotonic() + 60
        while auth_server.holding == 0:  # it holds the lock and waits for the token endpoint
            assert fetcher.poll() is None, fetcher.communicate()
            assert time.monotonic() < deadline, "the fetcher never reached the token endpoint"
            time.sleep(0.02)
        locked_before = time.time()
    finally:
        os.killpg(fetcher.pid, signal.SIGKILL)
        fetcher.communicate(timeout=30)
    results = results_of(start_clients(shared_conn_id, PROCESSES, env))
    assert len({r["token"] for r in results}) == 1
    assert len(granted(auth_server)) == 1, "one process took over the dead fetcher's lock, the rest waited for it"
    assert max(r["seconds"] for r in results) < wait + 3, "a process waited past the bound"
    if "redis" in request.node.callspec.id:
        # The dead fetcher's lock was honoured until it expired (SET NX PX), not ignored.
        assert min(r["finished"] for r in results) >= locked_before + wait - 1.5
