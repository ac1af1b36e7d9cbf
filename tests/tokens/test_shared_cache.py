"""The shared token cache through JwtBearerCredentials, on a real redis-server, a real directory and the devserver.

Each credentials object below gets its own per-process cache (a fresh ``TokenCache``), so two of
them behave as two worker processes would: what they share goes through the store. The
multi-process proofs (many processes at once, a killed fetcher) are in
``test_shared_token_cache_processes.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk import Connection

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
from airflow_jwt_provider.http.auth import JwtBearerAuth
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from airflow_jwt_provider.tokens.sealing import TokenSeal
from airflow_jwt_provider.tokens.shared_cache import BYPASS_SECONDS, reset_store_health
from airflow_jwt_provider.tokens.stores.base import forget_token_stores
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, CLIENT_SECRET, REDIS_CONN_ID, connection_extra, register
from tests.redis_server import RedisServer

LOGGER = "airflow_jwt_provider.tokens.shared_cache"
Make = Callable[..., JwtBearerCredentials]


@pytest.fixture(params=["redis", "file"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_connection")
    return str(request.param)


@pytest.fixture
def make(auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], tmp_path: Path) -> Iterator[Make]:
    """Credentials of one process each: ``make(kind)`` with a fresh per-process cache every call."""
    forget_token_stores()
    reset_store_health()

    def build(
        kind: str, name: str = "default", *, cache: TokenCache | None = None, **extra: Any
    ) -> JwtBearerCredentials:
        store = keystores[name]
        register(auth_server, store)
        extra.setdefault("token_cache", kind)
        if kind == "redis":
            extra.setdefault("token_cache_conn_id", REDIS_CONN_ID)
        elif kind == "file":
            extra.setdefault("token_cache_dir", str(tmp_path / "tokens"))
        conn = Connection(
            conn_id="jwt_shared",
            conn_type="jwt_bearer",
            login=extra.pop("login", CLIENT_ID),
            password=extra.pop("password", None),
            host=auth_server.api_url,
            extra=json.dumps(connection_extra(store, auth_server, **extra)),
        )
        settings = parse_connection(conn)
        return JwtBearerCredentials.from_settings(settings, cache=cache if cache is not None else TokenCache())

    yield build
    forget_token_stores()
    reset_store_health()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def stored_entries(kind: str, redis_server: RedisServer | None, directory: Path) -> dict[str, bytes]:
    if kind == "redis":
        assert redis_server is not None
        client = redis_server.client()
        return {key.decode(): client.get(key) or b"" for key in client.keys("*") if key.endswith(b":token")}
    return {path.name: path.read_bytes() for path in directory.glob("*.token")}


# --------------------------------------------------------------------------- one token for all


def test_processes_sharing_a_store_share_one_token(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    first = make(kind).get_token()
    second = make(kind).get_token()
    third = make(kind).get_token()
    assert second.access_token == third.access_token == first.access_token
    assert second.expires_at == first.expires_at
    assert second.issued_at == first.issued_at
    assert len(auth_server.token_requests) == 1


class _Timings:
    """Stands in for Airflow's ``Stats`` and keeps the timers (name, milliseconds)."""

    def __init__(self) -> None:
        self.timers: list[tuple[str, float]] = []

    def incr(self, stat: str, count: int = 1, rate: float | None = None, *, tags: dict[str, str]) -> None:
        pass

    def timing(self, stat: str, dt: float, *, tags: dict[str, str]) -> None:
        self.timers.append((stat, dt))


@pytest.fixture
def timings(monkeypatch: pytest.MonkeyPatch) -> _Timings:
    from airflow_jwt_provider.common.telemetry import TELEMETRY

    recorder = _Timings()
    monkeypatch.setattr(TELEMETRY, "_configured", True)  # Airflow's [metrics] left unread: this recorder stays
    monkeypatch.setattr(TELEMETRY, "metrics", True)
    monkeypatch.setattr(TELEMETRY, "_stats", recorder)
    monkeypatch.setattr(TELEMETRY, "_flush_at_exit", True)
    return recorder


def test_a_live_holder_keeps_its_lock_past_the_wait_and_the_waiter_s_time_is_a_metric(
    kind: str,
    make: Make,
    auth_server: LocalAuthorizationServer,
    timings: _Timings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token request three times longer than ``token_cache_wait``: the holder renews its lease, the other waits.

    Without the lease, Redis's lock expires after the wait and the waiter takes it (and fetches); a file
    lock's waiter gives up after the wait (and fetches): two token requests either way.
    """
    import threading

    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT", "0.5")
    auth_server.hold_next("/oauth2/token", seconds=1.5)
    first = make(kind)
    fetching = threading.Thread(target=first.get_token)
    fetching.start()
    deadline = time.monotonic() + 30
    while auth_server.holding == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = make(kind).get_token()
    fetching.join()
    assert second.access_token == first.get_token().access_token
    assert len(auth_server.token_requests) == 1
    waits = [(name, ms) for name, ms in timings.timers if name.startswith("jwt_bearer.shared_cache.lock_wait.")]
    assert [name for name, _ in waits] == ["jwt_bearer.shared_cache.lock_wait.token"]
    assert 500.0 < waits[0][1] < 1500.0 + 500.0


def test_a_waiter_trusts_a_live_holder_only_as_long_as_a_token_request_can_take(
    kind: str, make: Make, timings: _Timings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that neither stores a token nor dies: the waiter fetches after ``token_cache_wait + longest_fetch``."""
    from airflow_jwt_provider.tokens.shared_cache import SharedTokenCache
    from airflow_jwt_provider.tokens.stores.base import open_token_store

    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT", "0.3")
    credentials = make(kind)
    assert credentials.shared is not None
    settings = credentials.shared.settings
    waiter = SharedTokenCache("jwt_shared", settings, credentials.token_cache_secret, longest_fetch=0.5)
    seal = waiter.seal()
    held = open_token_store(settings).try_lock(seal.entry_name("k"), 60.0)  # a live holder that never ends
    assert held is not None
    fetched: list[float] = []
    token = AccessToken("t")
    try:
        started = time.monotonic()
        assert waiter.obtain("k", lambda: fetched.append(time.monotonic() - started) or token) is token
    finally:
        held.release()
    assert len(fetched) == 1
    assert 0.8 <= fetched[0] < 2.0
    assert [name for name, _ in timings.timers] == ["jwt_bearer.shared_cache.lock_wait.timed_out"]


@pytest.mark.timing
def test_a_token_in_memory_never_touches_the_store(
    make: Make, auth_server: LocalAuthorizationServer, redis_connection: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = make("redis")
    token = credentials.get_token()
    redis_connection.pause()  # any call to Redis would now hang until the io timeout
    try:
        started = time.monotonic()
        for _ in range(100):
            assert credentials.get_token() is token
        assert time.monotonic() - started < 0.2
    finally:
        redis_connection.resume()
    assert warnings_of(caplog) == []


def test_what_is_stored_names_and_shows_nothing(
    kind: str, make: Make, auth_server: LocalAuthorizationServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    token = make(kind, subject="alice-the-subject", scope="read:files").get_token()
    redis_server = request.getfixturevalue("redis_connection") if kind == "redis" else None
    entries = stored_entries(kind, redis_server, tmp_path / "tokens")
    assert len(entries) == 1
    for name, value in entries.items():
        for clear in ("alice", "read:files", CLIENT_ID, "127.0.0.1"):
            assert clear not in name
            assert clear.encode() not in value
        assert token.access_token.encode() not in value


def test_subject_scope_and_key_each_get_their_own_token(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    alice = make(kind).get_token()
    bob = make(kind).get_token(TokenParameters(subject="bob"))
    scoped = make(kind, scope="admin").get_token()
    other_key = make(kind, "ec256").get_token()  # another keystore, everything else the same
    tokens = {alice.access_token, bob.access_token, scoped.access_token, other_key.access_token}
    assert len(tokens) == 4
    assert len(auth_server.token_requests) == 4
    assert make(kind).get_token(TokenParameters(subject="bob")).access_token == bob.access_token
    assert make(kind, "ec256").get_token().access_token == other_key.access_token
    assert len(auth_server.token_requests) == 4


def test_the_client_secret_is_part_of_the_sealing_key(make: Make, redis_connection: RedisServer) -> None:
    with_secret = make("redis", password=CLIENT_SECRET, client_auth="client_secret_post")
    other_secret = make("redis", password="another-secret", client_auth="client_secret_post")
    key = with_secret.token_cache_key()
    assert with_secret.shared is not None
    assert other_secret.shared is not None
    assert with_secret.shared.seal().entry_name(key) != other_secret.shared.seal().entry_name(key)


def test_force_refresh_replaces_the_shared_token(kind: str, make: Make, auth_server: LocalAuthorizationServer) -> None:
    old = make(kind).get_token()
    fresh = make(kind).get_token(force_refresh=True)
    assert fresh.access_token != old.access_token
    assert make(kind).get_token().access_token == fresh.access_token
    assert len(auth_server.token_requests) == 2


# --------------------------------------------------------------------------- the 401 rule


def test_a_401_drops_the_shared_token_only_while_it_is_the_refused_one(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    a, b, c = make(kind), make(kind), make(kind)
    refused = a.get_token()
    assert b.get_token().access_token == refused.access_token
    auth_server.revoke_all_tokens()
    replacement = a.refresh_rejected(DEFAULT_TOKEN, refused)  # drops the entry, fetches, stores
    assert replacement.access_token != refused.access_token
    # b saw the same 401: its compare-and-delete finds another token stored, which it takes.
    assert b.refresh_rejected(DEFAULT_TOKEN, b.get_token()).access_token == replacement.access_token
    assert c.get_token().access_token == replacement.access_token
    assert len(auth_server.token_requests) == 2


def granted(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


def _revoked_after_the_store_lost_its_entry(
    kind: str, make: Make, auth_server: LocalAuthorizationServer, cache: TokenCache | None = None
) -> tuple[AccessToken, AccessToken]:
    """Two processes hold different tokens (the store was emptied, by a Redis restart, in between); all revoked.

    ``a`` (whose per-process cache is ``cache``) still holds the token it had before the store lost its
    entry; ``b`` fetched and stored another one. ``a``'s 401 does not drop ``b``'s entry (it is not the
    refused token), so ``a``'s replacement is ``b``'s token: revoked too. Found by the chaos run, where a
    deferred sensor's try failed this way. Returns (``a``'s token, ``b``'s token).
    """
    a, b = make(kind, cache=cache), make(kind)
    refused = a.get_token()
    b.invalidate()  # the store loses the entry, as after a Redis restart; b's own memory too
    stored_by_b = b.get_token()
    assert stored_by_b.access_token != refused.access_token
    auth_server.revoke_all_tokens()
    return refused, stored_by_b


def test_a_cached_replacement_revoked_with_the_refused_token_is_replaced_once_more(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    cache = TokenCache()
    refused, stored_by_b = _revoked_after_the_store_lost_its_entry(kind, make, auth_server, cache)
    auth = JwtBearerAuth(make(kind, cache=cache))  # process a: its cache still holds its refused token
    answer = requests.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10)
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [401, 401]  # a's token, then b's (from the store)
    assert auth.retries_on_401 == 2
    assert len(granted(auth_server)) == 3  # a's, b's, and one fetched after the second refusal
    shared = make(kind).get_token()  # a third process gets the new token from the store, not b's revoked one
    assert shared.access_token not in (refused.access_token, stored_by_b.access_token)


async def test_the_async_hook_replaces_a_revoked_cached_replacement_once_more(
    kind: str,
    make: Make,
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    tmp_path: Path,
    set_connection: Callable[..., str],
) -> None:
    cache = TokenCache()
    _revoked_after_the_store_lost_its_entry(kind, make, auth_server, cache)
    shared = (
        {"token_cache_conn_id": REDIS_CONN_ID} if kind == "redis" else {"token_cache_dir": str(tmp_path / "tokens")}
    )
    extra = connection_extra(keystores["default"], auth_server, token_cache=kind, **shared)
    conn_id = set_connection("jwt_shared", login=CLIENT_ID, host=auth_server.api_url, extra=json.dumps(extra))
    async with JwtBearerAsyncHook(conn_id, token_cache=cache) as hook:
        answer = await hook.arun("whoami")
    assert answer.status_code == 200
    assert len(granted(auth_server)) == 3


def test_a_token_fetched_after_the_refusal_and_refused_too_is_the_apis_answer(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    """An API that refuses every token: one fresh token and one resend, as before; no second round."""
    credentials = make(kind)
    credentials.get_token()
    auth_server.fail_for("/api/whoami", 401, 60)
    auth = JwtBearerAuth(credentials)
    answer = requests.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10)
    assert answer.status_code == 401
    assert [r.status_code for r in answer.history] == [401]
    assert auth.retries_on_401 == 1
    assert len(granted(auth_server)) == 2


def test_invalidate_without_a_token_drops_the_shared_entry(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    first = make(kind).get_token()
    make(kind).invalidate()
    assert make(kind).get_token().access_token != first.access_token
    assert len(auth_server.token_requests) == 2


# --------------------------------------------------------------------------- degrading


def _overwrite_entry(
    kind: str, credentials: JwtBearerCredentials, value: bytes, request: pytest.FixtureRequest
) -> None:
    assert credentials.shared is not None
    name = credentials.shared.seal().entry_name(credentials.token_cache_key())
    if kind == "redis":
        request.getfixturevalue("redis_connection").client().set(f"jwt_bearer:{{{name}}}:token", value, px=60_000)
    else:
        directory = Path(credentials.settings.token_cache.directory or "")
        (directory / f"{name}.token").write_bytes(b"JWTF" + b"\x7f" * 8 + value)  # an expiry far ahead


@pytest.mark.parametrize("damage", ["corrupt", "another key"])
def test_an_unusable_entry_is_replaced_with_one_warning(
    kind: str,
    damage: str,
    make: Make,
    auth_server: LocalAuthorizationServer,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = make(kind)
    good = writer.get_token()
    if damage == "corrupt":
        bad = b"JWTB\x01" + b"\x00" * 40
    else:  # a well-formed entry for this very cache key, sealed with another key
        bad = TokenSeal(b"another-keystore-secret-material").seal(writer.token_cache_key(), good)
    for round_ in range(2):
        _overwrite_entry(kind, writer, bad, request)
        token = make(kind).get_token()  # a process that finds the damaged entry
        assert token.access_token != good.access_token
        assert make(kind).get_token().access_token == token.access_token  # the fresh token replaced it
        assert len(auth_server.token_requests) == 2 + round_
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned  # once per process, however often
    assert "cannot be used" in warned[0]
    assert "jwt_shared" in warned[0]
    assert good.access_token not in caplog.text


@pytest.fixture
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it is stopped mid-test), as connection ``own_redis``."""
    server = RedisServer(tmp_path / "own-redis").start()
    monkeypatch.setenv("AIRFLOW_CONN_OWN_REDIS", f"{server.url}?db=0")
    yield server
    server.stop()


@pytest.mark.timing
def test_a_redis_stopped_mid_run_degrades_to_fetching(
    own_redis: RedisServer, make: Make, auth_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    shared = make("redis", token_cache_conn_id="own_redis").get_token()
    assert make("redis", token_cache_conn_id="own_redis").get_token().access_token == shared.access_token
    own_redis.stop()
    started = time.monotonic()
    tokens = [make("redis", token_cache_conn_id="own_redis").get_token() for _ in range(5)]  # five new processes
    assert time.monotonic() - started < 5
    assert all(t.access_token != shared.access_token for t in tokens)
    assert len(auth_server.token_requests) == 6  # each fetched for itself: never a failed task
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert "own_redis" in warned[0]
    assert "ConnectionError" in warned[0]
    assert f"{BYPASS_SECONDS:.0f} s" in warned[0]


@pytest.mark.timing
def test_a_hanging_redis_costs_one_io_timeout(
    make: Make,
    auth_server: LocalAuthorizationServer,
    redis_connection: RedisServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_IO_TIMEOUT", "0.3")
    make("redis").get_token()  # connected and stored
    redis_connection.pause()
    try:
        started = time.monotonic()
        first = make("redis").get_token()
        took = time.monotonic() - started
        second = make("redis").get_token()  # the store is bypassed now: no wait at all
        took_second = time.monotonic() - started - took
    finally:
        redis_connection.resume()
    assert first.valid
    assert second.valid
    assert took < 2.0, f"a hanging Redis cost {took:.2f} s"
    assert took_second < 0.5
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert "Timeout" in warned[0]


def test_an_unusable_directory_degrades_to_fetching(
    make: Make, auth_server: LocalAuthorizationServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    tokens = [make("file", token_cache_dir=str(not_a_directory)).get_token() for _ in range(3)]
    assert len({t.access_token for t in tokens}) == 3
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert "token_cache_dir" in warned[0]


def test_a_store_configured_wrongly_is_an_error_naming_the_setting(make: Make, redis_connection: RedisServer) -> None:
    with pytest.raises(JwtBearerConfigError, match="token_cache_conn_id 'missing_redis'") as info:
        make("redis", token_cache_conn_id="missing_redis").get_token()
    assert info.value.field == "token_cache_conn_id"


def test_token_cache_from_the_configuration_section(
    make: Make, auth_server: LocalAuthorizationServer, redis_connection: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[jwt_bearer] token_cache / token_cache_conn_id apply to connections that do not set them."""
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE", "redis")
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_CONN_ID", REDIS_CONN_ID)
    from_config = make("", token_cache=None)
    assert from_config.settings.token_cache.kind == "redis"
    token = from_config.get_token()
    assert make("", token_cache=None).get_token().access_token == token.access_token
    memory = make("memory")  # the connection's extra wins
    assert memory.shared is None
    assert memory.get_token().access_token != token.access_token
    assert len(auth_server.token_requests) == 2


def test_tokens_without_expiry_are_shared_for_their_assumed_lifetime(
    kind: str, make: Make, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.omit_expires_in = True  # Salesforce: no expires_in, but an instance_url
    first: AccessToken = make(kind, default_token_lifetime=120).get_token()
    second = make(kind, default_token_lifetime=120).get_token()
    assert second.access_token == first.access_token
    assert second.extra.get("instance_url") == auth_server.url
    assert len(auth_server.token_requests) == 1
