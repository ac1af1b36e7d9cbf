"""One token request per token for every process that shares a store: the miss path of a shared cache.

The per-process :class:`~airflow_jwt_provider.tokens.cache.TokenCache` stays in front: a token in
memory is used without touching the store, and within a process one thread at a time fetches a
given key. When memory has no valid token, that thread asks :meth:`SharedTokenCache.obtain`:

1. read the store: a sealed entry that opens and is still valid is the answer;
2. else take the key's cluster-wide lock (``SET NX PX`` with a fencing value / ``flock``), read
   the store once more (another process may have stored the token meanwhile), fetch, store;
3. while another process holds the lock, poll the store (20 ms, growing to 250 ms) for the token
   it is fetching, and take the lock if it frees up.

The lock is a lease: its holder renews it every third of ``token_cache_wait`` while it fetches
(:class:`_Lease`), so a lock whose holder was killed frees itself within ``token_cache_wait``
(Redis; a file lock at once) and nobody waits longer than that on a dead holder. A live holder
keeps its lock however long its token request takes (a slow endpoint, a 429 or 503 with
``Retry-After`` it honours): the others wait for its token rather than each sending their own, so
an endpoint that rate-limits or fails gets one request at a time from the whole cluster, and one
after it recovers. A waiter gives up and fetches for itself only when the holder has had longer
than its token request can take (``longest_fetch``: every attempt of the retry policy timing out).

A store that fails (unreachable, slow past ``token_cache_io_timeout``, refusing) never fails a
task: the token is fetched directly, a warning says so once per ten minutes per store and
process, and the store is left alone for :data:`BYPASS_SECONDS` before it is tried again. An
entry that does not open (corrupt, altered, sealed with another key) is treated as missing,
also with one warning, and the fresh token replaces it. Only a store that is *configured*
wrongly (a missing extra, a connection of the wrong type) is an error, naming the setting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from airflow_jwt_provider.common.redaction import redact_text
from airflow_jwt_provider.common.telemetry import TELEMETRY, Degradation, LockWait
from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.sealing import SealError, TokenSeal
from airflow_jwt_provider.tokens.stores.base import StoreLock, TokenStore, open_token_store, store_type

log = logging.getLogger(__name__)

#: After a store failure, this process fetches tokens directly for this long before trying the store again.
BYPASS_SECONDS = 30.0
#: One warning per store and kind of problem per process in this many seconds (the rest go to DEBUG).
WARNING_INTERVAL = 600.0
#: Polling a lock held by another process: first and longest pause.
FIRST_POLL = 0.02
MAX_POLL = 0.25
#: Entries whose token must be refreshed within this many seconds are not worth storing.
MIN_ENTRY_TTL = 1.0


class _StoreHealth:
    """What one process knows about one store: when to try it again, when it last warned about what."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bypass_until = 0.0
        self.warned_at: dict[str, float] = {}


_HEALTH: dict[tuple[str, ...], _StoreHealth] = {}
_HEALTH_LOCK = threading.Lock()


def _health_of(settings: TokenCacheSettings) -> _StoreHealth:
    key = (settings.kind, settings.conn_id, str(settings.directory))
    with _HEALTH_LOCK:
        return _HEALTH.setdefault(key, _StoreHealth())


def reset_store_health() -> None:
    """Forget failures and warnings (tests; an operator who fixed the store and wants it used at once)."""
    with _HEALTH_LOCK:
        _HEALTH.clear()


class _Lease:
    """Keeps a held lock alive while its holder fetches: renewed every third of ``ttl`` by a daemon thread.

    Why: a lock that expired under a live holder (a slow endpoint, a ``Retry-After`` honoured) would
    let a second process fetch too, then a third, and after an outage all of them would be granted
    a token at once. A holder that is killed stops renewing: its lock frees itself within ``ttl``.
    A renewal that fails (the store went away, the lock was lost) stops the renewals and nothing
    else: the fetch goes on, and the lock expires by itself.
    """

    __slots__ = ("_lock", "_stop", "_thread", "_ttl")

    def __init__(self, lock: StoreLock, ttl: float) -> None:
        self._lock = lock
        self._ttl = ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="jwt-bearer-lock-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                if not self._lock.extend(self._ttl):
                    return
            except Exception:  # the store failed: the holder's fetch goes on, the lock expires by itself
                log.debug("Renewing the shared token cache's lock failed", exc_info=True)
                return


class SharedTokenCache:
    """The shared-store side of one connection's token cache; see the module docstring.

    :param conn_id: the ``jwt_bearer`` connection (named in warnings).
    :param settings: which store, how long to wait for another process, how long a call may take.
    :param secret: returns the secret the entries are sealed with (called once, when first needed:
        a remote signer may have to sign for it).
    :param open_store: opens the store (:func:`~airflow_jwt_provider.tokens.stores.base.open_token_store`).
    :param longest_fetch: the longest a token request can take, retries included: how long a waiter
        trusts a live holder (beyond ``token_cache_wait``) before it fetches for itself.
    """

    def __init__(
        self,
        conn_id: str,
        settings: TokenCacheSettings,
        secret: Callable[[], bytes],
        *,
        open_store: Callable[[TokenCacheSettings], TokenStore] = open_token_store,
        longest_fetch: float = 0.0,
    ) -> None:
        self.conn_id = conn_id
        self.longest_fetch = longest_fetch
        self.settings = settings
        self._secret = secret
        self._open_store = open_store
        self._seal: TokenSeal | None = None
        self._health = _health_of(settings)

    def __repr__(self) -> str:
        return f"SharedTokenCache(conn_id={self.conn_id!r}, token_cache={self.settings.kind!r})"

    # -- the miss path -------------------------------------------------------------------------------

    def obtain(self, key: str, fetch: Callable[[], AccessToken], *, force: bool = False) -> AccessToken:
        """A valid token for ``key`` from the store, or from ``fetch`` (once for every process sharing the store).

        ``force`` fetches anew whatever the store holds, and stores the result.
        """
        seal = self.seal()
        store = self._store()
        if store is None:
            return fetch()
        name = seal.entry_name(key)
        if force:
            return self._fetch_and_put(store, seal, name, key, fetch)
        try:
            found = self._read(store, seal, name, key)
            if found is not None:
                return found
            lock = store.try_lock(name, self.settings.wait)
        except Exception as exc:
            self._unavailable(exc)
            return fetch()
        if lock is None:
            waited = self._wait_for_other(store, seal, name, key)
            if isinstance(waited, AccessToken):
                return waited
            if waited is None:  # waited long enough, or the store failed meanwhile
                return self._fetch_and_put(store, seal, name, key, fetch)
            lock = waited
        try:
            try:
                found = self._read(store, seal, name, key)  # stored while this process took the lock?
            except Exception as exc:
                self._unavailable(exc)
                return fetch()
            if found is not None:
                return found
            with _Lease(lock, self.settings.wait):
                return self._fetch_and_put(store, seal, name, key, fetch)
        finally:
            try:
                lock.release()
            except Exception as exc:  # the lock expires by itself
                self._unavailable(exc)

    def _fetch_and_put(
        self, store: TokenStore, seal: TokenSeal, name: str, key: str, fetch: Callable[[], AccessToken]
    ) -> AccessToken:
        token = fetch()
        self._put(store, seal, name, key, token)
        return token

    def _wait_for_other(
        self, store: TokenStore, seal: TokenSeal, name: str, key: str
    ) -> AccessToken | StoreLock | None:
        """Poll for the token another process is fetching: the token, the lock once it is free, or None.

        How long it waited, and how the wait ended, is a metric (``shared_cache.lock_wait.*``): the
        bound a deployment relies on (``token_cache_wait``) is observable, not only promised.
        """
        started = time.monotonic()
        outcome, found = self._poll_for_other(store, seal, name, key, started)
        TELEMETRY.waited_for_lock(self.conn_id, self.settings.kind, time.monotonic() - started, outcome)
        return found

    def _poll_for_other(
        self, store: TokenStore, seal: TokenSeal, name: str, key: str, started: float
    ) -> tuple[LockWait, AccessToken | StoreLock | None]:
        deadline = started + self.settings.wait + self.longest_fetch
        pause = FIRST_POLL
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.info(
                    "Connection %r: another process has been fetching this token for %.1f s, longer than a "
                    "token request can take ([jwt_bearer] token_cache_wait plus the retries); fetching it here too",
                    self.conn_id,
                    time.monotonic() - started,
                )
                return LockWait.TIMED_OUT, None
            time.sleep(min(pause, remaining))
            pause = min(pause * 1.5, MAX_POLL)
            try:
                token = self._read(store, seal, name, key)
                if token is not None:
                    return LockWait.TOKEN, token
                lock = store.try_lock(name, self.settings.wait)
            except Exception as exc:
                self._unavailable(exc)
                return LockWait.STORE_FAILED, None
            if lock is not None:
                return LockWait.LOCK, lock

    def invalidate(self, key: str, token: AccessToken | None) -> None:
        """Drop the stored entry of ``key`` if it still holds ``token`` (any entry for ``None``)."""
        store = self._store()
        if store is None:
            return
        seal = self.seal()
        prefix = seal.entry_prefix(token) if token is not None else b""
        try:
            store.compare_and_delete(seal.entry_name(key), prefix)
        except Exception as exc:
            self._unavailable(exc)

    # -- pieces --------------------------------------------------------------------------------------

    def seal(self) -> TokenSeal:
        """The connection's seal (its secret computed once per object)."""
        if self._seal is None:
            self._seal = TokenSeal(self._secret())
        return self._seal

    def _store(self) -> TokenStore | None:
        """The store, or None while it is being bypassed after a failure (or cannot be opened)."""
        if time.monotonic() < self._health.bypass_until:
            return None
        try:
            return self._open_store(self.settings)
        except JwtBearerConfigError:
            raise
        except Exception as exc:
            self._unavailable(exc)
            return None

    def _read(self, store: TokenStore, seal: TokenSeal, name: str, key: str) -> AccessToken | None:
        entry = store.get(name)
        if entry is None:
            return None
        try:
            token = seal.open(key, entry)
        except SealError as exc:
            TELEMETRY.shared_cache_degraded(self.conn_id, self.settings.kind, Degradation.UNREADABLE_ENTRY)
            self._warn(
                "unreadable",
                f"holds an entry for this connection that cannot be used ({exc}); fetching a new token, "
                "which replaces it",
            )
            return None
        return token if token.valid else None

    def _put(self, store: TokenStore, seal: TokenSeal, name: str, key: str, token: AccessToken) -> None:
        ttl = (token.refresh_at - datetime.now(timezone.utc)).total_seconds()
        if ttl < MIN_ENTRY_TTL:
            return
        try:
            store.put(name, seal.seal(key, token), ttl)
        except Exception as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: BaseException) -> None:
        TELEMETRY.shared_cache_degraded(self.conn_id, self.settings.kind, Degradation.UNAVAILABLE)
        with self._health.lock:
            self._health.bypass_until = time.monotonic() + BYPASS_SECONDS
        problem = redact_text(f"{type(exc).__name__}: {exc}")[:300]
        self._warn(
            "unavailable",
            f"cannot be used ({problem}); fetching tokens directly, and trying the cache again in "
            f"{BYPASS_SECONDS:.0f} s",
        )

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._health.lock:
            last = self._health.warned_at.get(kind)
            loud = last is None or now - last >= WARNING_INTERVAL
            if loud:
                self._health.warned_at[kind] = now
        store = self._description()
        log.log(
            logging.WARNING if loud else logging.DEBUG,
            "Connection %r: the shared token cache (token_cache %s, %s) %s",
            self.conn_id,
            self.settings.kind,
            store,
            message,
        )

    def _description(self) -> str:
        return store_type(self.settings).describe(self.settings)
