"""The token goes only to the hosts the connection trusts: operator, sensor, pagination, sync and deferrable.

Two loopback servers: the API on 127.0.0.1 (the connection's Host) and a recording server on
127.0.0.2 standing for any other host. Without ``trusted_hosts`` naming it, the other server
must see no request at all; with it, it sees the token.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
from tests.dags.jwt_e2e_trusted_hosts import ELSEWHERE

pytestmark = pytest.mark.slow

TASKS = [f"{kind}_{mode}" for mode in ("sync", "deferred") for kind in ("absolute", "paginate_away", "sensor")]


def point_elsewhere(url: str) -> Any:
    def prepare(dag: Any) -> None:
        for task in dag.tasks:
            if task.endpoint == ELSEWHERE:
                task.endpoint = url

    return prepare


def test_dag_tasks_refuse_to_send_the_token_to_another_host(
    run_dag: Any, jwt_connection: Any, auth_server: Any, untrusted_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwt_connection()
    target = f"{untrusted_server.url}/steal"
    monkeypatch.setenv("JWT_E2E_NEXT_URL", target)
    result = run_dag("jwt_e2e_trusted_hosts", prepare=point_elsewhere(target))

    assert result.states == dict.fromkeys(TASKS, "failed"), result.output[-3000:]
    assert untrusted_server.requests == []
    refusal = f"refusing to send the access token to {untrusted_server.url}"
    # every task says why, naming the host and the setting: 3 sync failures, 3 trigger error events
    assert result.output.count(refusal) >= 6, result.output[-3000:]
    assert "add it to the connection's trusted_hosts extra" in result.output
    # the first pages of the paginating tasks did reach the API
    assert [r["path"] for r in auth_server.api_requests].count("/api/items") == 2


def test_trusted_hosts_lets_the_listed_host_receive_the_token(
    run_dag: Any, jwt_connection: Any, auth_server: Any, untrusted_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwt_connection(trusted_hosts=untrusted_server.host_port)
    target = f"{untrusted_server.url}/listed"
    monkeypatch.setenv("JWT_E2E_NEXT_URL", target)
    result = run_dag("jwt_e2e_trusted_hosts", prepare=point_elsewhere(target))

    assert result.states == dict.fromkeys(TASKS, "success"), result.output[-3000:]
    authorizations = untrusted_server.authorizations()
    assert len(authorizations) == 6
    assert all(a is not None and a.startswith("Bearer ") for a in authorizations)
    token = JwtBearerHook("jwt_bearer_default").get_token()  # the cached token the tasks used
    assert set(authorizations) == {token.authorization_header}


def test_hook_session_and_async_hook_refuse_before_sending(
    jwt_connection: Any, auth_server: Any, untrusted_server: Any
) -> None:
    import asyncio

    from airflow_jwt_provider.exceptions import JwtBearerConfigError

    jwt_connection()
    hook = JwtBearerHook("jwt_bearer_default")
    for call in (
        lambda: hook.run(f"{untrusted_server.url}/a"),
        lambda: hook.get_conn().get(f"{untrusted_server.url}/b"),
        lambda: hook.get_conn(subject="bob").post(f"{untrusted_server.url}/c", json={"x": 1}),
    ):
        with pytest.raises(JwtBearerConfigError, match="refusing to send the access token"):
            call()

    async def async_call() -> None:
        async with JwtBearerAsyncHook("jwt_bearer_default") as async_hook:
            await async_hook.arun(f"{untrusted_server.url}/d")

    with pytest.raises(JwtBearerConfigError, match="refusing to send the access token"):
        asyncio.run(async_call())
    assert untrusted_server.requests == []
    assert hook.run("whoami").json()["sub"] == "alice"  # the API itself still gets it


def test_a_redirect_to_another_host_does_not_carry_the_token(
    jwt_connection: Any, auth_server: Any, untrusted_server: Any
) -> None:
    """The API may redirect elsewhere (a download link); the clients drop the header on the way."""
    import asyncio

    jwt_connection()
    auth_server.fail_next("whoami", 302, location=f"{untrusted_server.url}/download")
    response = JwtBearerHook("jwt_bearer_default").run("whoami")
    assert response.url == f"{untrusted_server.url}/download"

    async def async_call() -> None:
        async with JwtBearerAsyncHook("jwt_bearer_default") as async_hook:
            await async_hook.arun("whoami")

    auth_server.fail_next("whoami", 307, location=f"{untrusted_server.url}/download-async")
    asyncio.run(async_call())
    assert [r["path"] for r in untrusted_server.requests] == ["/download", "/download-async"]
    assert untrusted_server.authorizations() == [None, None]
