"""dag.test() runs of connections without a key: the platform's projected token, rotated during the run.

The platform (``devserver.platform``) writes the token file the way the kubelet does; the local
server trusts the platform by OIDC discovery and verifies each JWT itself. What the run must show:
tokens fetched after the rotation carry the new file's JWT, no request ever carries an expired one,
and the token exchange and federated client assertion grants work from tasks and the trigger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devserver.platform import LocalPlatform
from devserver.server import LocalAuthorizationServer
from tests.conftest import register

pytestmark = pytest.mark.slow

APP = "airflow-app"
SERVICE_ACCOUNT = "system:serviceaccount:data:airflow"


@pytest.fixture
def token_file(platform: LocalPlatform, auth_server: LocalAuthorizationServer, tmp_path: Path) -> Any:
    projected = platform.project_service_account(
        tmp_path / "token" / "token",
        auth_server.issuer,
        namespace="data",
        service_account="airflow",
        keep_previous_data=False,  # exactly the kubelet: the old token directory goes at once
    )
    yield projected
    projected.stop()


def file_extra(server: LocalAuthorizationServer, token_file: Any, **extra: Any) -> dict[str, Any]:
    return {"auth_url": server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path), **extra}


def granted(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


def test_a_rotated_projected_token_is_used_for_the_next_tokens_and_an_expired_one_never(
    platform: LocalPlatform,
    auth_server: LocalAuthorizationServer,
    token_file: Any,
    set_connection: Callable[..., str],
    run_dag: Any,
    no_secret_in: Any,
) -> None:
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, subject="system:serviceaccount:data:*", client_id=APP)
    set_connection("jwt_keyless", host=auth_server.api_url, extra=file_extra(auth_server, token_file))
    jtis: dict[str, str] = {"before": json.loads(_payload(token_file.token))["jti"]}

    def rotate_then_revoke() -> None:
        token_file.rotate()
        jtis["after"] = json.loads(_payload(token_file.token))["jti"]
        auth_server.revoke_all_tokens()  # the cached token is refused: the next call needs a new one

    result = run_dag(
        "jwt_e2e_keyless_rotation", lambda dag: setattr(dag.get_task("rotate"), "python_callable", rotate_then_revoke)
    )
    assert result.states == dict.fromkeys(
        ["whoami_before", "rotate", "whoami_after_sync", "whoami_after_deferred"], "success"
    ), result.output[-3000:]
    for task_id in ("whoami_before", "whoami_after_sync", "whoami_after_deferred"):
        assert result.xcom(task_id) == {"sub": SERVICE_ACCOUNT, "client_id": APP, "scope": None}
    requests_made = granted(auth_server)
    assert [r["assertion_claims"]["jti"] for r in requests_made] == [jtis["before"], jtis["after"]]
    for record in auth_server.token_requests:  # none carried a JWT past its exp
        assert record["assertion_claims"]["exp"] > record["time"]
    no_secret_in(result.output, [token_file.token])


def test_an_expired_projected_token_fails_the_task_before_any_request(
    platform: LocalPlatform,
    auth_server: LocalAuthorizationServer,
    token_file: Any,
    set_connection: Callable[..., str],
    run_dag: Any,
) -> None:
    """The kubelet stopped renewing the file: the task fails naming the file; the server never sees the JWT."""
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, client_id=APP)
    set_connection("jwt_keyless", host=auth_server.api_url, extra=file_extra(auth_server, token_file))

    def expire_then_revoke() -> None:
        token_file.expire_now()
        auth_server.revoke_all_tokens()

    result = run_dag(
        "jwt_e2e_keyless_rotation", lambda dag: setattr(dag.get_task("rotate"), "python_callable", expire_then_revoke)
    )
    assert result.states["whoami_before"] == "success"
    assert result.states["whoami_after_sync"] == "failed"
    assert f"assertion_file '{token_file.path}' holds a JWT that expired" in result.output
    assert len(auth_server.token_requests) == 1  # the first token only: nothing was sent with the expired JWT


def test_token_exchange_and_federated_client_assertions_from_tasks(
    platform: LocalPlatform,
    auth_server: LocalAuthorizationServer,
    token_file: Any,
    keystores: dict[str, Any],
    tmp_path: Path,
    set_connection: Callable[..., str],
    run_dag: Any,
    no_secret_in: Any,
) -> None:
    store = keystores["default"]
    register(auth_server, store, APP, client_secret="app-secret")
    entra = platform.project_service_account(
        tmp_path / "azure" / "token", "api://AzureADTokenExchange", namespace="data", service_account="airflow"
    )
    auth_server.trust_issuer(platform.url, client_id=APP, audiences=("api://AzureADTokenExchange",))
    exchange = file_extra(auth_server, token_file, grant="token_exchange", exchange_audience="https://api.example.com")
    set_connection("jwt_keyless_exchange", host=auth_server.api_url, login=APP, password="app-secret", extra=exchange)
    actor = {
        **exchange,
        "actor_token_source": "sign",
        "key_file": str(store.path),
        "keystore_password": store.store_password,
        "client_auth": "private_key_jwt",
    }
    set_connection("jwt_keyless_exchange_actor", host=auth_server.api_url, login=APP, extra=actor)
    entra_extra = {
        "grant": "client_credentials",
        "auth_url": auth_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(entra.path),
        "assertion_audience": "api://AzureADTokenExchange",
    }
    set_connection("jwt_keyless_entra", host=auth_server.api_url, login=APP, extra=entra_extra)

    result = run_dag("jwt_e2e_keyless_grants")
    assert result.states == dict.fromkeys(["exchange", "exchange_actor", "entra"], "success"), result.output[-3000:]
    assert result.xcom("exchange") == {"sub": SERVICE_ACCOUNT, "client_id": APP, "scope": None}
    assert result.xcom("exchange_actor") == {
        "sub": SERVICE_ACCOUNT,
        "client_id": APP,
        "scope": None,
        "act": {"sub": APP, "iss": APP},
    }
    assert result.xcom("entra") == {"sub": APP, "client_id": APP, "scope": None}
    by_grant = {r["grant_type"]: r for r in granted(auth_server)}
    assert by_grant["client_credentials"]["federated"] is True
    assert by_grant["urn:ietf:params:oauth:grant-type:token-exchange"]["issued_token_type"].endswith("access_token")
    no_secret_in(result.output, [token_file.token, entra.token, "app-secret", store.store_password])
    entra.stop()


def _payload(compact: str) -> str:
    import base64

    part = compact.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
