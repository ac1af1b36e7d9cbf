"""JwtBearerAsyncHook on its own, against the real local server: tokens, requests, the 401 rule, retries, the loop."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import pytest
from airflow.sdk import BaseHook

from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.exceptions import ApiResponseError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
from airflow_jwt_provider.signing.key_files.loader import KEY_CACHE
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, connection_extra, register

FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_wait=5)


def statuses(server: LocalAuthorizationServer, path: str) -> list[int]:
    return [r["status"] for r in server.api_requests if r["path"] == path]


@pytest.fixture
def conn_for(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], set_connection: Callable[..., str]
) -> Callable[..., str]:
    """A connection signing with ``keystores[name]`` against the server; the API at ``host``."""

    def make(name: str = "default", *, host: str | None = None, **extra: Any) -> str:
        store = keystores[name]
        register(auth_server, store)
        return set_connection(
            "jwt_async",
            host=host or auth_server.api_url,
            login=CLIENT_ID,
            extra=connection_extra(store, auth_server, **extra),
        )

    return make


@pytest.fixture
def conn_id(conn_for: Callable[..., str]) -> str:
    return conn_for()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- tokens and assertions


async def test_aget_token_shares_the_sync_hooks_cache(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    claims = {"roles": ["a", "b"], "ctx": {"tenant": "t1"}}
    async with JwtBearerAsyncHook(conn_id) as hook:
        token = await hook.aget_token(subject="bob", claims=claims)
        assert await hook.aget_token(subject="bob", claims={"ctx": {"tenant": "t1"}, "roles": ["a", "b"]}) is token
        sync = JwtBearerHook(conn_id)
        assert sync.get_token(subject="bob", claims=claims) is token
        own = sync.get_token()  # fetched by the sync hook first this time
        assert await hook.aget_token() is own
    assert own.access_token != token.access_token
    assert auth_server.token_info(token.access_token).sub == "bob"  # type: ignore[union-attr]
    assert len(auth_server.token_requests) == 2


async def test_aget_token_force_refresh(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    async with JwtBearerAsyncHook(conn_id) as hook:
        first = await hook.aget_token()
        forced = await hook.aget_token(force_refresh=True)
    assert forced.access_token != first.access_token
    assert JwtBearerHook(conn_id).get_token() is forced


async def test_amint_assertion(conn_id: str, keystores: dict[str, ks.Keystore], auth_server) -> None:
    public_key = keystores["default"].certificate().public_key()
    async with JwtBearerAsyncHook(conn_id) as hook:
        default = await hook.amint_assertion()
        custom = await hook.amint_assertion(subject="dave", claims={"role": "reader"}, audience="https://aud.example")

    one = jwt.decode(default, public_key, algorithms=["RS256"], audience=auth_server.token_url)
    two = jwt.decode(custom, public_key, algorithms=["RS256"], audience="https://aud.example")
    assert (one["iss"], one["sub"]) == (CLIENT_ID, "alice")
    assert (two["sub"], two["role"]) == ("dave", "reader")
    assert one["jti"] != two["jti"]
    assert auth_server.token_requests == []  # minting asks nothing of the server


# --------------------------------------------------------------------------- requests


async def test_arun_get_with_query(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    query = {"page": 2, "per_page": 5, "tag": ["a", "b"], "skip": None}
    async with JwtBearerAsyncHook(conn_id) as hook:
        response = await hook.arun("items", params=query)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [6, 7, 8, 9, 10]
    assert response.url == f"{auth_server.api_url}/items?page=2&per_page=5&tag=a&tag=b"  # lists repeated, None left out
    assert response.url == JwtBearerHook(conn_id).run("items", params=query).url  # as the sync hook sends it
    assert response.request.method == "GET"
    assert auth_server.api_requests[0]["subject"] == "alice"


async def test_arun_get_data_becomes_the_query(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    async with JwtBearerAsyncHook(conn_id) as hook:
        response = await hook.arun("items", {"page": 3})
    assert response.json()["page"] == 3


async def test_arun_post_json_as_another_subject(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    async with JwtBearerAsyncHook(conn_id) as hook:
        response = await hook.arun("results", method="POST", json={"n": 1, "tags": ["x"]}, subject="carol")

    assert response.status_code == 201
    assert response.json() == {"received": {"n": 1, "tags": ["x"]}, "sub": "carol"}
    assert auth_server.results == [{"n": 1, "tags": ["x"]}]
    assert [(r["method"], r["subject"]) for r in auth_server.api_requests] == [("POST", "carol")]


@pytest.mark.parametrize(("endpoint", "status"), [("whoami", 503), ("whoami", 403), ("no/such/path", 404)])
async def test_check_response_raises_the_sync_hooks_error(
    conn_id: str, auth_server: LocalAuthorizationServer, endpoint: str, status: int
) -> None:
    if status != 404:
        auth_server.fail_next(endpoint, status)
    with pytest.raises(ApiResponseError) as sync_error:
        JwtBearerHook(conn_id).run(endpoint, params={"q": "1"})

    if status != 404:
        auth_server.fail_next(endpoint, status)
    async with JwtBearerAsyncHook(conn_id) as hook:
        with pytest.raises(ApiResponseError) as async_error:
            await hook.arun(endpoint, params={"q": "1"})

    assert str(async_error.value) == str(sync_error.value)
    assert str(async_error.value).startswith(f"GET {auth_server.api_url}/{endpoint} failed: HTTP {status}")
    assert async_error.value.status == status


async def test_check_response_false_returns_the_answer(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    auth_server.fail_next("whoami", 503)
    async with JwtBearerAsyncHook(conn_id) as hook:
        response = await hook.arun("whoami", check_response=False)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


async def test_a_revoked_token_is_refreshed_once(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    async with JwtBearerAsyncHook(conn_id) as hook:
        rejected = await hook.aget_token()
        auth_server.revoke_all_tokens()
        response = await hook.arun("whoami")
        fresh = await hook.aget_token()

    assert response.status_code == 200
    assert statuses(auth_server, "/api/whoami") == [401, 200]
    assert fresh.access_token != rejected.access_token
    assert len(auth_server.token_requests) == 2


async def test_a_second_401_is_an_error_not_a_loop(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    auth_server.fail_next("whoami", 401, count=3)
    async with JwtBearerAsyncHook(conn_id) as hook:
        with pytest.raises(ApiResponseError, match="HTTP 401") as info:
            await hook.arun("whoami", retry=FAST)
    assert info.value.status == 401
    assert statuses(auth_server, "/api/whoami") == [401, 401]
    assert len(auth_server.token_requests) == 2


async def test_503_is_retried_per_the_policy(
    conn_id: str, auth_server: LocalAuthorizationServer, capfd: pytest.CaptureFixture[str]
) -> None:
    auth_server.fail_next("whoami", 503, count=2)
    async with JwtBearerAsyncHook(conn_id) as hook:
        response = await hook.arun("whoami", retry=FAST)

    assert response.status_code == 200
    assert statuses(auth_server, "/api/whoami") == [503, 503, 200]
    output = capfd.readouterr()
    text = output.out + output.err
    assert "GET whoami answered HTTP 503; retrying in 0.0 s (attempt 2 of 3)" in text
    assert "GET whoami answered HTTP 503; retrying in 0.0 s (attempt 3 of 3)" in text


async def test_retries_are_off_unless_asked_and_end_with_the_last_answer(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.fail_next("whoami", 503, count=4)
    async with JwtBearerAsyncHook(conn_id) as hook:
        assert (await hook.arun("whoami", check_response=False)).status_code == 503
        with pytest.raises(ApiResponseError, match="HTTP 503"):
            await hook.arun("whoami", retry=FAST)
    assert statuses(auth_server, "/api/whoami") == [503, 503, 503, 503]


async def test_post_is_retried_on_503_but_not_on_500(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    auth_server.fail_next("results", 503)
    async with JwtBearerAsyncHook(conn_id) as hook:
        assert (await hook.arun("results", method="POST", json={"n": 1}, retry=FAST)).status_code == 201
        auth_server.fail_next("results", 500)
        response = await hook.arun("results", method="POST", json={"n": 2}, retry=FAST, check_response=False)
    assert response.status_code == 500  # it may have been applied: not sent again
    assert statuses(auth_server, "/api/results") == [503, 201, 500]


async def test_connection_errors_are_retried_for_get_only(
    conn_for: Callable[..., str], closed_port: int, capfd: pytest.CaptureFixture[str]
) -> None:
    conn_id = conn_for(host=f"http://127.0.0.1:{closed_port}/api")  # tokens still come from the server
    retry = RetryPolicy(max_attempts=3, backoff=0.05)
    async with JwtBearerAsyncHook(conn_id) as hook:
        with pytest.raises(aiohttp.ClientConnectionError):
            await hook.arun("whoami", retry=retry)
        get_output = capfd.readouterr()
        with pytest.raises(aiohttp.ClientConnectionError):
            await hook.arun("results", method="POST", json={"n": 1}, retry=retry)
        post_output = capfd.readouterr()

    get_lines = [line for line in (get_output.out + get_output.err).splitlines() if "GET whoami failed (" in line]
    assert len(get_lines) == 2
    assert "retrying in 0.1 s (attempt 3 of 3)" in get_lines[1]
    assert "POST results failed" not in post_output.out + post_output.err


# --------------------------------------------------------------------------- the aiohttp session


async def test_the_hook_closes_its_aiohttp_session(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    async with JwtBearerAsyncHook(conn_id) as hook:
        await hook.arun("whoami")
        session = hook._session
        assert session is not None
        assert not session.closed
        await hook.arun("whoami")
        assert hook._session is session  # one session for the hook's requests
    assert session.closed
    assert hook._session is None

    await hook.arun("whoami")  # used again: a new session, closed by aclose()
    reopened = hook._session
    assert reopened is not None
    assert reopened is not session
    await hook.aclose()
    assert reopened.closed


async def test_exit_on_an_error_closes_the_session_too(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    auth_server.fail_next("whoami", 403)
    hook = JwtBearerAsyncHook(conn_id)
    with pytest.raises(ApiResponseError):
        async with hook:
            await hook.arun("whoami")
    assert hook._session is None


# --------------------------------------------------------------------------- the event loop


class LoopWatch:
    """Ticks on the event loop; a watchdog thread notes what the loop's thread was doing when a tick is late.

    The stack in the failure message says what blocked the loop, rather than only that it was blocked.
    """

    def __init__(self, tick: float = 0.01, late: float = 0.05) -> None:
        self.tick = tick
        self.late = late
        self.gaps: list[float] = []
        self.stalls: list[str] = []
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    async def __aenter__(self) -> LoopWatch:
        self._last = time.monotonic()
        self._ticker = asyncio.create_task(self._tick())
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await self._ticker
        self._watchdog.join(timeout=5)

    async def _tick(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            self.gaps.append(now - self._last)
            self._last = now

    def _watch(self) -> None:
        noted_for = None
        while not self._stop.wait(self.tick):
            last = self._last
            if time.monotonic() - last > self.late and noted_for != last:
                noted_for = last
                frame = sys._current_frames().get(self._loop_thread)
                self.stalls.append("".join(traceback.format_stack(frame)[-8:]) if frame else "?")

    def report(self) -> str:
        worst = max(self.gaps, default=0.0)
        return f"the loop stalled for {worst:.3f} s; its thread was in:\n" + "\n---\n".join(self.stalls)


@pytest.mark.timing
async def test_key_loading_and_token_fetch_never_block_the_loop(
    conn_for: Callable[..., str], auth_server: LocalAuthorizationServer
) -> None:
    """A JCEKS keystore takes ~100-200 ms to decrypt (pyjks), the token endpoint answers after 0.2 s; the loop
    must keep ticking meanwhile.

    Blocking code on the loop stalls it on every try; a busy shared machine (CPU quota) can
    stall a whole process now and then. So the call is measured up to three times, from a cold
    key cache and token cache each time, and one clean measurement is required. The held token
    request makes every measured call long enough to tell, however fast the machine decrypts.
    """
    conn_id = conn_for("jceks")
    # Airflow's own aget_connection imports a module on the loop the first time it runs in a
    # process (~0.5 s); that is not the provider's doing, so it is paid before measuring.
    await BaseHook.aget_connection(conn_id)
    reports: list[str] = []
    for _ in range(3):
        KEY_CACHE.clear()
        TOKEN_CACHE.invalidate()
        loads = KEY_CACHE.loads
        # A full garbage collection (0.2-0.4 s in a process that has run many tests) stops every
        # thread, the loop's too: it would look like a blocked loop, so none runs while measuring.
        gc.collect()
        gc.disable()
        auth_server.hold_next("/oauth2/token", seconds=0.2)
        try:
            async with LoopWatch() as watch:
                started = time.monotonic()
                async with JwtBearerAsyncHook(conn_id) as hook:
                    token = await hook.aget_token()
                elapsed = time.monotonic() - started
        finally:
            gc.enable()

        assert token.valid
        assert KEY_CACHE.loads == loads + 1  # the keystore was really decrypted during the call
        assert elapsed >= 0.3, f"the call took {elapsed:.3f} s: too quick to tell a blocked loop"
        if len(watch.gaps) >= 5 and max(watch.gaps) < 0.1:
            break
        reports.append(f"during a {elapsed:.3f} s call, {watch.report()}")
    else:
        pytest.fail("\n\n".join(reports))
    assert len(auth_server.token_requests) == len(reports) + 1  # one token per measurement
