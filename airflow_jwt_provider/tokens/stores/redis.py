"""``token_cache: redis``: sealed tokens in a Redis that every worker of the cluster reaches.

The Redis is named by an Airflow connection of type ``redis``, as apache-airflow-providers-redis
defines it (host, port, password, ``db`` and TLS extras), and opened with that provider's
``RedisHook``, so it lives wherever connections live (secrets backend, environment) and can be the
Celery broker's own Redis. Needs the ``[redis]`` extra (``pip install 'airflow-jwt-provider[redis]'``).

* **Names.** ``jwt_bearer:{<entry name>}:token`` and ``jwt_bearer:{<entry name>}:lock``; the
  entry name is an HMAC (:mod:`airflow_jwt_provider.tokens.sealing`), and the braces keep an
  entry and its lock in one hash slot.
* **Marks.** ``jwt_bearer:{<name>}:mark``: the small values of the store's mark capability (what an
  event trigger already fired for), written with ``SET … PX`` like entries.
* **Expiry.** Entries are written with ``SET … PX`` (the token's refresh time); locks with
  ``SET NX PX`` (the wait bound), renewed by their live holder (``PEXPIRE`` by the fencing value,
  a lease), so a lock whose holder was killed frees itself within the wait bound and a slow but
  live holder keeps it.
* **Fencing.** A lock's value is a random fencing token; releasing it and deleting an entry on a
  401 are one Lua script (``GET`` and compare, then ``DEL``), so a holder whose lock expired never
  frees the next holder's lock, and a 401 never drops a token another worker just stored.
* **Timeouts.** Every call is bounded by ``[jwt_bearer] token_cache_io_timeout`` (connect and
  read) and made once (redis-py's own retries are turned off: :func:`bounded_connection_kwargs`), so
  a Redis that hangs costs a task that much, not a stuck task.

A Redis Cluster connection (``cluster: true``) is refused with a clear error for now.
"""

from __future__ import annotations

import secrets
from typing import Any

from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError

INSTALL_HINT = "pip install 'airflow-jwt-provider[redis]'"
#: The Airflow connection type of apache-airflow-providers-redis.
REDIS_CONN_TYPE = "redis"
KEY_PREFIX = "jwt_bearer"

#: Deletes KEYS[1] if its value starts with ARGV[1]; 1 if it did. Releases a lock (the fencing
#: value is the whole value) and drops a refused token's entry (its tag is the prefix).
_DELETE_IF_PREFIX = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Sets KEYS[1] to expire in ARGV[2] ms if its value is ARGV[1]; 1 if it did. Renews a held lock's lease.
_EXPIRE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def _redis_hook_class(conn_id: str) -> Any:
    try:
        from airflow.providers.redis.hooks.redis import RedisHook
    except ImportError:
        raise JwtBearerConfigError(
            f"token_cache 'redis' (connection {conn_id!r}) needs the optional dependency "
            f"apache-airflow-providers-redis: {INSTALL_HINT}; or set token_cache to memory or file",
            field="token_cache",
        ) from None
    return RedisHook


def bounded_connection_kwargs(io_timeout: float) -> dict[str, Any]:
    """Connection settings under which one store call costs at most about ``io_timeout``, whatever redis-py's defaults.

    redis-py 6 and later retry a command that timed out or lost its connection (three times, with a
    backoff of up to ten seconds) unless told otherwise, and ``retry_on_timeout=False`` no longer
    turns that off: a hanging Redis would hold a task for many seconds. The shared cache has its own
    rule for a failing store (fetch directly, leave the store alone for a while), so the client
    makes exactly one attempt: no retry object with retries, no error worth retrying.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": io_timeout,
        "socket_connect_timeout": io_timeout,
        "retry_on_timeout": False,
        "retry_on_error": [],
        "retry": Retry(NoBackoff(), 0),
    }


class RedisLock:
    """A held ``SET NX PX`` lock; released by its fencing value only."""

    __slots__ = ("_fence", "_key", "_store")

    def __init__(self, store: RedisTokenStore, key: str, fence: bytes) -> None:
        self._store = store
        self._key = key
        self._fence = fence

    def release(self) -> None:
        self._store._delete_if_prefix(keys=[self._key], args=[self._fence])

    def extend(self, ttl: float) -> bool:
        """Renew the lease by the fencing value: a lock that expired and was taken by another stays theirs."""
        return bool(self._store._expire_if_equal(keys=[self._key], args=[self._fence, max(1, int(ttl * 1000))]))


class RedisTokenStore:
    """A :class:`~airflow_jwt_provider.tokens.stores.base.TokenStore` in Redis; see the module docstring.

    :param client: a ``redis.Redis`` client (its calls bounded by timeouts).
    :param description: how warnings name it.
    """

    def __init__(self, client: Any, description: str) -> None:
        self.client = client
        self.description = description
        self._delete_if_prefix = client.register_script(_DELETE_IF_PREFIX)
        self._expire_if_equal = client.register_script(_EXPIRE_IF_EQUAL)

    def __repr__(self) -> str:
        return f"RedisTokenStore({self.description})"

    @classmethod
    def from_connection(cls, conn_id: str, *, io_timeout: float) -> RedisTokenStore:
        """The store of the Airflow ``redis`` connection ``conn_id``, every call bounded by ``io_timeout``."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        hook_class = _redis_hook_class(conn_id)
        hook = hook_class(redis_conn_id=conn_id)
        try:
            conn = hook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise JwtBearerConfigError(
                f"token_cache_conn_id {conn_id!r}: no such Airflow connection; define a connection of type "
                "redis (e.g. AIRFLOW_CONN_" + conn_id.upper() + "='redis://host:6379?db=1') or name another "
                "in token_cache_conn_id",
                field="token_cache_conn_id",
            ) from None
        if conn.conn_type != REDIS_CONN_TYPE:
            raise JwtBearerConfigError(
                f"token_cache_conn_id {conn_id!r} is a connection of type {conn.conn_type!r}, not 'redis'; "
                "name an Airflow connection of type redis (apache-airflow-providers-redis)",
                field="token_cache_conn_id",
            )
        if str(conn.extra_dejson.get("cluster", "")).lower() in ("true", "1"):
            raise JwtBearerConfigError(
                f"token_cache_conn_id {conn_id!r} is a Redis Cluster connection (extra cluster: true), which "
                "the token cache does not support; name a standalone Redis (the Celery broker's, for "
                "example) or set token_cache to memory or file",
                field="token_cache_conn_id",
            )
        client = hook.get_conn()  # connects lazily: nothing is sent yet
        client.connection_pool.connection_kwargs.update(bounded_connection_kwargs(io_timeout))
        db = conn.extra_dejson.get("db") or 0
        return cls(client, f"redis connection {conn_id!r} ({conn.host}:{conn.port or 6379}/{db})")

    @staticmethod
    def _entry_key(name: str) -> str:
        return f"{KEY_PREFIX}:{{{name}}}:token"

    @staticmethod
    def _lock_key(name: str) -> str:
        return f"{KEY_PREFIX}:{{{name}}}:lock"

    @staticmethod
    def _mark_key(name: str) -> str:
        return f"{KEY_PREFIX}:{{{name}}}:mark"

    def get(self, name: str) -> bytes | None:
        value = self.client.get(self._entry_key(name))
        return bytes(value) if value is not None else None

    def put(self, name: str, value: bytes, ttl: float) -> None:
        self.client.set(self._entry_key(name), value, px=max(1, int(ttl * 1000)))

    def get_mark(self, name: str) -> bytes | None:
        """The mark of ``name`` (:class:`~airflow_jwt_provider.tokens.stores.base.MarkStore`), or ``None``."""
        value = self.client.get(self._mark_key(name))
        return bytes(value) if value is not None else None

    def put_mark(self, name: str, value: bytes, ttl: float) -> None:
        """Keep the mark ``value`` under ``name`` for ``ttl`` seconds (``SET … PX``)."""
        self.client.set(self._mark_key(name), value, px=max(1, int(ttl * 1000)))

    def try_lock(self, name: str, ttl: float) -> RedisLock | None:
        fence = secrets.token_hex(16).encode("ascii")
        key = self._lock_key(name)
        if self.client.set(key, fence, nx=True, px=max(1, int(ttl * 1000))):
            return RedisLock(self, key, fence)
        return None

    def compare_and_delete(self, name: str, prefix: bytes) -> bool:
        return bool(self._delete_if_prefix(keys=[self._entry_key(name)], args=[prefix]))


class RedisTokenStoreType:
    """Registration of ``token_cache: redis`` (the ``airflow_jwt_provider.token_stores`` entry point)."""

    name = "redis"

    def open(self, settings: TokenCacheSettings) -> RedisTokenStore:
        return RedisTokenStore.from_connection(settings.conn_id, io_timeout=settings.io_timeout)

    def describe(self, settings: TokenCacheSettings) -> str:
        return f"redis connection {settings.conn_id!r}"


REDIS = RedisTokenStoreType()
