"""The triggerer shares the cluster's token cache: the trigger and the async hook go through the same store.

A worker's token (a sync hook with its own per-process cache) is used by the trigger without a
token request, a token the triggerer fetched is used by a worker, and a 401 seen in the trigger
replaces the shared entry once for everybody. Real redis-server, real devserver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE, TokenCache
from airflow_jwt_provider.triggers.http import JwtBearerHttpTrigger
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, REDIS_CONN_ID, connection_extra, register
from tests.redis_server import RedisServer


@pytest.fixture
def conn_id(
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, Any],
    set_connection: Callable[..., str],
    redis_connection: RedisServer,
) -> str:
    store = keystores["default"]
    register(auth_server, store)
    extra = connection_extra(store, auth_server, token_cache="redis", token_cache_conn_id=REDIS_CONN_ID)
    return set_connection("jwt_shared_trigger", host=auth_server.api_url, login=CLIENT_ID, extra=extra)


async def run_trigger(conn_id: str) -> dict[str, Any]:
    trigger = JwtBearerHttpTrigger(jwt_bearer_conn_id=conn_id, request={"endpoint": "whoami"})
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def worker_token(conn_id: str, **kwargs: Any) -> str:
    """The token a task process gets: a sync hook with a per-process cache of its own."""
    return JwtBearerHook(conn_id, token_cache=TokenCache()).get_token(**kwargs).access_token


async def test_the_trigger_uses_the_token_a_worker_stored(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    worker_token(conn_id)
    assert len(auth_server.token_requests) == 1
    assert len(TOKEN_CACHE) == 0  # the triggerer's process cache is empty: only the store can have it
    event = await run_trigger(conn_id)
    assert event["status"] == "success", event
    assert len(auth_server.token_requests) == 1
    assert [r["status"] for r in auth_server.api_requests] == [200]


async def test_a_worker_uses_the_token_the_async_hook_fetched(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    async with JwtBearerAsyncHook(conn_id, token_cache=TokenCache()) as hook:
        token = await hook.aget_token(subject="carol")
    assert worker_token(conn_id, subject="carol") == token.access_token
    assert len(auth_server.token_requests) == 1


async def test_a_401_in_the_trigger_replaces_the_shared_token_once(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    refused = worker_token(conn_id)
    auth_server.revoke_all_tokens()
    event = await run_trigger(conn_id)  # 401, refresh_rejected: the shared entry replaced
    assert event["status"] == "success", event
    assert [r["status"] for r in auth_server.api_requests] == [401, 200]
    replacement = worker_token(conn_id)
    assert replacement != refused
    assert len(auth_server.token_requests) == 2
