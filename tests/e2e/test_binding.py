"""dag.test() runs with bound tokens: DPoP (with the server's nonces) and mTLS, from tasks and the triggerer.

The local server checks each proof and each client certificate itself; the run must leave no proof, key,
token or assertion in its output or XComs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.tokens.dpop import NONCES
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, connection_extra, register

pytestmark = pytest.mark.slow

TASKS = ("whoami_sync", "items_deferred", "job_deferred")
ITEMS = list(range(1, 24))


def assert_run(result: Any, server: LocalAuthorizationServer, no_secret_in: Any, secrets: list[str]) -> None:
    assert result.states == dict.fromkeys(TASKS, "success"), result.output[-3000:]
    assert result.xcom("whoami_sync")["client_id"] == CLIENT_ID
    assert [i for page in result.xcom("items_deferred") for i in page] == ITEMS
    assert all(r["status"] in (200, 401) for r in server.api_requests)
    no_secret_in(result.output + repr(result.all_xcoms), secrets)


def test_dpop_from_tasks_the_trigger_and_the_sensor(
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, Any],
    set_connection: Callable[..., str],
    run_dag: Any,
    no_secret_in: Any,
) -> None:
    NONCES.clear()
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_nonce = True
    auth_server.dpop_api_nonce = True
    set_connection(
        "jwt_bound", login=CLIENT_ID, host=auth_server.api_url, extra=connection_extra(store, auth_server, dpop=True)
    )
    result = run_dag("jwt_e2e_binding")
    assert_run(result, auth_server, no_secret_in, [store.store_password or ""])
    served = [r for r in auth_server.api_requests if r["status"] == 200]
    assert served
    assert all(r["auth_scheme"] == "DPoP" and r["dpop_verified"] for r in served)
    assert len({r["dpop"]["claims"]["jti"] for r in served}) == len(served)  # a proof per call, trigger's too
    challenged = [r for r in auth_server.api_requests if r["status"] == 401]
    assert all(r["nonce_challenge"] for r in challenged)  # only nonce round trips were refused
    assert [r["token_type"] for r in auth_server.token_requests if r["success"]] == ["DPoP"]
    NONCES.clear()


@pytest.fixture(scope="module")
def tls_server() -> Iterator[LocalAuthorizationServer]:
    server = LocalAuthorizationServer(tls=True)
    server.start()
    yield server
    server.stop()


def test_certificate_bound_tokens_from_tasks_the_trigger_and_the_sensor(
    tls_server: LocalAuthorizationServer,
    tmp_path: Path,
    set_connection: Callable[..., str],
    run_dag: Any,
    no_secret_in: Any,
) -> None:
    tls_server.reset()
    certificate, key = tls_server.issue_client_certificate("dag-client")
    tls_server.register_client(
        "dag-client", tls_client_auth_subject_dn="CN=dag-client", tls_client_certificate_bound_access_tokens=True
    )
    key_file = tmp_path / "client.pem"
    key_file.write_text(key + certificate)
    extra = {
        "auth_url": tls_server.token_url,
        "key_file": str(key_file),
        "client_auth": "tls_client_auth",
        "grant": "client_credentials",
        "verify": str(tls_server.ca_file),
    }
    set_connection("jwt_bound", login="dag-client", host=tls_server.api_url, extra=extra)
    result = run_dag("jwt_e2e_binding")
    assert result.states == dict.fromkeys(TASKS, "success"), result.output[-3000:]
    bound = {r["client_certificate"]["x5t#S256"] for r in tls_server.api_requests}
    assert len(bound) == 1  # every call, the trigger's too, over TLS with the one certificate
    assert all(r["status"] == 200 for r in tls_server.api_requests)
    no_secret_in(result.output + repr(result.all_xcoms), [key.split("\n")[1]])
