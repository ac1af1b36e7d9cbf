"""The stores' mark capability (what an event trigger fired for) and :class:`FiredMarks` on top of it.

Real parts: a redis-server on loopback, a directory. Marks live beside the tokens without touching
them, expire, and are pruned like entries; a watcher whose store is missing or fails keeps its marks
in process memory and says so once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.tokens.fired_marks import FiredMarks, StateLocation, forget_process_marks
from airflow_jwt_provider.tokens.stores.base import MarkStore, TokenStore, open_token_store
from airflow_jwt_provider.tokens.stores.file import FileTokenStore
from tests.conftest import REDIS_CONN_ID
from tests.redis_server import RedisServer

NAME = "ab" * 32


@pytest.fixture(autouse=True)
def fresh_process_marks() -> Iterator[None]:
    forget_process_marks()
    yield
    forget_process_marks()


@pytest.fixture(params=["redis", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenStore]:
    if request.param == "redis":
        request.getfixturevalue("redis_connection")
        yield open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    else:
        yield FileTokenStore(tmp_path / "tokens", lock_wait=1.0)


def test_marks_live_beside_tokens_and_expire(store: TokenStore) -> None:
    assert isinstance(store, MarkStore)
    store.put(NAME, b"JWTB token", ttl=60)
    assert store.get_mark(NAME) is None  # a token is not a mark
    store.put_mark(NAME, b"fired", ttl=0.3)
    assert store.get_mark(NAME) == b"fired"
    assert store.get(NAME) == b"JWTB token"  # nor a mark a token
    time.sleep(0.5)
    assert store.get_mark(NAME) is None
    assert store.get(NAME) == b"JWTB token"


def test_the_file_store_prunes_expired_marks(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    store.put_mark(NAME, b"old", ttl=0.1)
    store.put_mark("cd" * 32, b"new", ttl=60)
    time.sleep(0.2)
    assert store.prune() == 1
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == [f"{'cd' * 32}.mark"]
    assert stat_mode(tmp_path / "tokens" / f"{'cd' * 32}.mark") == 0o600


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_fired_marks_in_redis_survive_the_process_memory(redis_connection: RedisServer) -> None:
    settings = TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID)
    marks = FiredMarks("watch-1", "GET exports/x on 'c'", settings, ttl=60)
    assert marks.location is StateLocation.SHARED_STORE
    marks.remember('"v1"')
    marks.remember_etag('"v1"')
    forget_process_marks()
    again = FiredMarks("watch-1", "GET exports/x on 'c'", settings, ttl=60)
    assert again.fired('"v1"')
    assert not again.fired('"v2"')
    assert again.last_etag() == '"v1"'
    other_watcher = FiredMarks("watch-2", "GET exports/y on 'c'", settings, ttl=60)
    assert not other_watcher.fired('"v1"')
    keys = [key.decode() for key in redis_connection.client().keys("*")]
    assert len(keys) == 2
    assert all(key.startswith("jwt_bearer:{") and key.endswith("}:mark") for key in keys)
    assert not any("watch" in key or "v1" in key for key in keys)


def test_a_failing_store_falls_back_to_memory_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    class BrokenStore:
        description = "a store that is down"

        def get_mark(self, name: str) -> bytes | None:
            nonlocal calls
            calls += 1
            raise ConnectionError("connection refused (Authorization: Bearer hunter2-secret)")

        def put_mark(self, name: str, value: bytes, ttl: float) -> None:
            raise ConnectionError("connection refused")

    settings = TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID)
    marks = FiredMarks("watch-3", "GET exports/z on 'c'", settings, ttl=60, open_store=lambda s: BrokenStore())  # type: ignore[arg-type,return-value]
    assert marks.location is StateLocation.SHARED_STORE
    assert not marks.fired("a")  # the store failed: not known
    assert marks.location is StateLocation.PROCESS_MEMORY
    marks.remember("a")
    assert marks.fired("a")  # memory has it
    assert not marks.fired("b")
    assert calls == 1  # the failed store is left alone afterwards
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cannot be used (ConnectionError" in warnings[0]
    assert "hunter2-secret" not in warnings[0]


def test_a_store_that_failed_is_tried_again_after_a_while(
    redis_connection: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_jwt_provider.tokens.fired_marks as fired_marks

    monkeypatch.setattr(fired_marks, "STORE_RETRY_SECONDS", 0.3)
    real = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    down = True

    class FlakyStore:
        description = "a store that comes back"

        def get_mark(self, name: str) -> bytes | None:
            if down:
                raise ConnectionError("connection refused")
            return real.get_mark(name)  # type: ignore[attr-defined,no-any-return]

        def put_mark(self, name: str, value: bytes, ttl: float) -> None:
            if down:
                raise ConnectionError("connection refused")
            real.put_mark(name, value, ttl)  # type: ignore[attr-defined]

    settings = TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID)
    marks = FiredMarks("watch-4", "GET exports/w on 'c'", settings, ttl=60, open_store=lambda s: FlakyStore())  # type: ignore[arg-type,return-value]
    marks.remember("during-outage")
    assert marks.location is StateLocation.PROCESS_MEMORY
    down = False
    assert marks.location is StateLocation.PROCESS_MEMORY  # left alone for a while
    time.sleep(0.4)
    assert marks.location is StateLocation.SHARED_STORE
    marks.remember("after-outage")
    forget_process_marks()
    assert marks.fired("after-outage")  # from Redis
    assert not marks.fired("during-outage")  # memory only, and memory was forgotten: the documented gap
