"""The token stores on real parts: a redis-server on loopback, a directory; their locks across processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.tokens.stores.base import TokenStore, open_token_store
from airflow_jwt_provider.tokens.stores.file import FileTokenStore, FileTokenStoreError
from airflow_jwt_provider.tokens.stores.redis import INSTALL_HINT, RedisTokenStore
from tests.conftest import REDIS_CONN_ID, REPO_ROOT
from tests.redis_server import RedisServer

NAME = "ab" * 32
OTHER = "cd" * 32


@pytest.fixture(params=["redis", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenStore]:
    if request.param == "redis":
        request.getfixturevalue("redis_connection")
        yield open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    else:
        yield FileTokenStore(tmp_path / "tokens", lock_wait=1.0)


def test_put_get_replace(store: TokenStore) -> None:
    assert store.get(NAME) is None
    store.put(NAME, b"JWTB first", ttl=60)
    assert store.get(NAME) == b"JWTB first"
    store.put(NAME, b"JWTB second", ttl=60)
    assert store.get(NAME) == b"JWTB second"
    assert store.get(OTHER) is None


def test_entries_expire(store: TokenStore) -> None:
    store.put(NAME, b"JWTB short-lived", ttl=0.3)
    assert store.get(NAME) == b"JWTB short-lived"
    time.sleep(0.5)
    assert store.get(NAME) is None


def test_compare_and_delete_drops_only_the_named_entry(store: TokenStore) -> None:
    store.put(NAME, b"JWTB-tag-1 body", ttl=60)
    assert not store.compare_and_delete(NAME, b"JWTB-tag-2")  # another token is stored now: kept
    assert store.get(NAME) == b"JWTB-tag-1 body"
    assert store.compare_and_delete(NAME, b"JWTB-tag-1")
    assert store.get(NAME) is None
    assert not store.compare_and_delete(NAME, b"JWTB-tag-1")  # nothing left to delete
    store.put(NAME, b"anything", ttl=60)
    assert store.compare_and_delete(NAME, b"")  # an empty prefix: any entry


def test_a_lock_is_held_until_released(store: TokenStore) -> None:
    lock = store.try_lock(NAME, ttl=30)
    assert lock is not None
    assert store.try_lock(NAME, ttl=30) is None
    assert store.try_lock(OTHER, ttl=30) is not None  # one lock per name
    lock.release()
    again = store.try_lock(NAME, ttl=30)
    assert again is not None
    again.release()


def test_a_redis_lock_expires_and_an_expired_holder_cannot_free_the_next(redis_connection: RedisServer) -> None:
    store = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    first = store.try_lock(NAME, ttl=0.3)
    assert first is not None
    time.sleep(0.5)
    second = store.try_lock(NAME, ttl=30)
    assert second is not None, "the lock of a holder that went away must expire"
    first.release()  # late: its fencing value no longer matches
    assert store.try_lock(NAME, ttl=30) is None, "the first holder freed the second holder's lock"
    second.release()
    assert store.try_lock(NAME, ttl=30) is not None


def test_a_redis_lock_s_lease_is_renewed_by_its_holder_only(redis_connection: RedisServer) -> None:
    store = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    first = store.try_lock(NAME, ttl=0.4)
    assert first is not None
    for _ in range(3):  # renewed past three of its terms: still held
        time.sleep(0.2)
        assert first.extend(0.4)
    assert store.try_lock(NAME, ttl=30) is None
    time.sleep(0.6)  # no longer renewed: it expires
    second = store.try_lock(NAME, ttl=30)
    assert second is not None
    assert not first.extend(30), "an expired holder renewed the next holder's lock"
    assert redis_connection.client().pttl(f"jwt_bearer:{{{NAME}}}:lock") > 29_000
    second.release()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.tokens.stores.base import open_token_store
from airflow_jwt_provider.tokens.stores.file import FileTokenStore
kind, where, name = sys.argv[1:4]
if kind == "file":
    store = FileTokenStore(Path(where))
else:
    store = open_token_store(TokenCacheSettings(kind="redis", conn_id=where))
lock = store.try_lock(name, ttl=float(sys.argv[4]))
print("locked" if lock else "busy", flush=True)
time.sleep(600)
"""


@pytest.mark.timing
@pytest.mark.parametrize("kind", ["redis", "file"])
def test_a_lock_held_by_a_killed_process_frees_itself(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGKILL gives the holder no chance to release: the kernel (flock) or the PX expiry (Redis) does."""
    if kind == "redis":
        request.getfixturevalue("redis_connection")
        store: TokenStore = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
        where = REDIS_CONN_ID
    else:
        store = FileTokenStore(tmp_path / "tokens")
        where = str(tmp_path / "tokens")
    ttl = 1.5
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, kind, where, NAME, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout is not None
        said = ""
        while said not in ("locked", "busy", "exited"):  # Airflow may log on stdout first
            said = holder.stdout.readline().strip() or ("exited" if holder.poll() is not None else "")
        assert said == "locked"
        assert store.try_lock(NAME, ttl=30) is None
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed = time.monotonic()
        while (lock := store.try_lock(NAME, ttl=30)) is None:
            assert time.monotonic() - killed < ttl + 1, "the lock of the killed process was not freed"
            time.sleep(0.05)
        lock.release()
        if kind == "file":
            assert time.monotonic() - killed < 0.5  # the kernel frees an flock with its process
    finally:
        holder.kill()
        holder.wait(timeout=10)


# --------------------------------------------------------------------------- the file store


def test_the_directory_and_its_files_are_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "tokens"
    store = FileTokenStore(directory)
    store.put(NAME, b"JWTB entry", ttl=60)
    lock = store.try_lock(NAME, ttl=30)
    assert lock is not None
    lock.release()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert [f.name for f in files] == [f"{NAME}.lock", f"{NAME}.token"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert path.stat().st_uid == os.geteuid()
    assert b"JWTB entry" in (directory / f"{NAME}.token").read_bytes()


def test_a_directory_open_to_others_is_made_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    FileTokenStore(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_directory_of_another_user_or_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileTokenStoreError, match="not a directory"):
        FileTokenStore(tmp_path / "link")
    if os.geteuid() == 0:
        other = tmp_path / "other"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)  # nobody
        with pytest.raises(FileTokenStoreError, match="belongs to user id 65534"):
            FileTokenStore(other)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    for index in range(20):
        store.put(NAME, f"JWTB {index}".encode(), ttl=60)
    assert store.get(NAME) == b"JWTB 19"
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == [f"{NAME}.token"]


def test_prune_removes_expired_entries_and_stale_unused_locks(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    store.put(NAME, b"JWTB expires", ttl=0.1)
    store.put(OTHER, b"JWTB lives", ttl=60)
    for name in (NAME, OTHER):
        lock = store.try_lock(name, ttl=30)
        assert lock is not None
        lock.release()
    old = time.time() - 7200
    os.utime(tmp_path / "tokens" / f"{NAME}.lock", (old, old))
    time.sleep(0.2)
    assert store.prune() == 2  # the expired entry, then its old lock file
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == [f"{OTHER}.lock", f"{OTHER}.token"]
    assert store.get(OTHER) == b"JWTB lives"


def test_the_default_directory_is_under_airflow_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert FileTokenStore.directory_for(None) == tmp_path / "jwt_bearer_token_cache"
    assert FileTokenStore.directory_for("~/x") == Path("~/x").expanduser()


# --------------------------------------------------------------------------- the redis store


def test_redis_keys_name_no_subject_and_expire(redis_connection: RedisServer) -> None:
    store = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID))
    store.put(NAME, b"JWTB entry", ttl=30)
    lock = store.try_lock(NAME, ttl=5)
    client = redis_connection.client()
    assert sorted(client.keys("*")) == [f"jwt_bearer:{{{NAME}}}:lock".encode(), f"jwt_bearer:{{{NAME}}}:token".encode()]
    assert 25_000 < client.pttl(f"jwt_bearer:{{{NAME}}}:token") <= 30_000
    assert 0 < client.pttl(f"jwt_bearer:{{{NAME}}}:lock") <= 5_000
    assert lock is not None
    lock.release()


def test_the_redis_store_is_opened_once_per_process(redis_connection: RedisServer) -> None:
    settings = TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID)
    assert open_token_store(settings) is open_token_store(settings)
    assert REDIS_CONN_ID in open_token_store(settings).description


@pytest.mark.timing
def test_redis_calls_are_bounded_by_the_io_timeout(redis_connection: RedisServer) -> None:
    store = open_token_store(TokenCacheSettings(kind="redis", conn_id=REDIS_CONN_ID, io_timeout=0.2))
    store.put(NAME, b"JWTB entry", ttl=30)  # connected
    redis_connection.pause()
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match=r"[Tt]imeout"):
            store.get(NAME)
        assert time.monotonic() - started < 1.5
    finally:
        redis_connection.resume()


class SilentRedis:
    """A TCP server on loopback that accepts connections, reads what it is sent and never answers.

    What a Redis frozen by a full disk, a stopped process or a dead network path looks like to a
    client: connecting works (the kernel accepts), every read times out. It counts the connections
    a client makes, which is how many attempts one call cost.
    """

    def __init__(self) -> None:
        import socket
        import threading

        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)  # kept open and never answered

    def close(self) -> None:
        self._listener.close()
        for connection in self._open:
            connection.close()


def test_a_store_call_is_one_attempt_whatever_redis_py_retries_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py 6+ retries timed-out commands three times with a backoff unless told not to: one attempt here.

    Counted, not timed: a frozen Redis sees one connection per store call, with any redis-py release.
    """
    import redis

    silent = SilentRedis()
    monkeypatch.setenv("AIRFLOW_CONN_SILENT_REDIS", f"redis://127.0.0.1:{silent.port}/0")
    try:
        store = RedisTokenStore.from_connection("silent_redis", io_timeout=0.2)
        for call in (
            lambda: store.get(NAME),
            lambda: store.put(NAME, b"JWTB x", ttl=5),
            lambda: store.try_lock(NAME, 5),
        ):
            before = silent.connections
            with pytest.raises((redis.exceptions.TimeoutError, redis.exceptions.ConnectionError)):
                call()
            assert silent.connections - before == 1, (
                f"redis-py {redis.__version__} made {silent.connections - before} attempts"
            )
    finally:
        silent.close()


def test_the_redis_connection_must_exist_and_be_of_type_redis(
    redis_connection: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(JwtBearerConfigError, match="token_cache_conn_id 'nowhere': no such Airflow connection") as info:
        RedisTokenStore.from_connection("nowhere", io_timeout=0.5)
    assert info.value.field == "token_cache_conn_id"
    monkeypatch.setenv("AIRFLOW_CONN_NOT_REDIS", json.dumps({"conn_type": "http", "host": "127.0.0.1"}))
    with pytest.raises(JwtBearerConfigError, match="of type 'http', not 'redis'"):
        RedisTokenStore.from_connection("not_redis", io_timeout=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_CLUSTER", f"{redis_connection.url}?cluster=true")
    with pytest.raises(JwtBearerConfigError, match="Redis Cluster connection"):
        RedisTokenStore.from_connection("redis_cluster", io_timeout=0.5)


def test_a_missing_redis_provider_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.redis.hooks.redis", None)  # `import` now raises ImportError
    with pytest.raises(JwtBearerConfigError, match="apache-airflow-providers-redis") as info:
        RedisTokenStore.from_connection(REDIS_CONN_ID, io_timeout=0.5)
    assert INSTALL_HINT in str(info.value)
    assert info.value.field == "token_cache"
