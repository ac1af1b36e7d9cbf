"""A thread-safe, process-wide cache of access tokens.

One token request at a time per cache key: concurrent callers (mapped tasks in one
worker process, a session shared by threads) wait for the same fetch instead of each
minting an assertion. The key holds everything that changes the token, so two
connections that differ only in their subject never share one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from airflow_jwt_provider.common.redaction import LIVE_TOKENS
from airflow_jwt_provider.tokens.access_token import AccessToken

#: Tokens kept per process at most (a token and its fields take well under a kilobyte).
DEFAULT_MAX_ENTRIES = 1024


def cache_key(**parts: object) -> str:
    """A stable digest of ``parts`` (JSON-able values; order of keyword arguments is irrelevant)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _KeyLock:
    """The lock of one cache key, kept only while somebody fetches or waits for that key."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class TokenCache:
    """Tokens by cache key, refreshed when no longer :attr:`AccessToken.valid`; bounded in size.

    Memory stays bounded in a process that lives for weeks and impersonates many subjects:
    at most ``max_entries`` tokens are kept (the least recently used go first), expired ones
    are swept out as new ones arrive, and a key's lock exists only while a fetch for that key
    is under way or awaited.

    :param max_entries: how many tokens to keep at most.
    """

    #: Seconds between two sweeps of expired tokens.
    SWEEP_INTERVAL = 60.0

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._tokens: OrderedDict[str, AccessToken] = OrderedDict()
        self._key_locks: dict[str, _KeyLock] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + self.SWEEP_INTERVAL

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def pending_locks(self) -> int:
        """Keys with a fetch under way or awaited (for tests and diagnostics)."""
        return len(self._key_locks)

    def peek(self, key: str) -> AccessToken | None:
        """The cached token for ``key``, valid or not, without fetching."""
        return self._tokens.get(key)

    def get(
        self,
        key: str,
        fetch: Callable[[], AccessToken],
        *,
        force_refresh: bool = False,
    ) -> AccessToken:
        """Return a valid token for ``key``, calling ``fetch`` at most once across waiting threads.

        ``force_refresh`` fetches anew unless another thread replaced the token while this
        one waited for the lock (so that ten callers refreshing at once make one request).
        """
        seen = self._tokens.get(key)
        if seen is not None and seen.valid and not force_refresh:
            self._touch(key)
            return seen
        key_lock = self._acquire_key_lock(key)
        try:
            with key_lock.lock:
                current = self._tokens.get(key)
                replaced_meanwhile = current is not None and current is not seen
                if current is not None and current.valid and (not force_refresh or replaced_meanwhile):
                    return current
                token = fetch()
                self._store(key, token)
                return token
        finally:
            self._release_key_lock(key, key_lock)

    def invalidate(self, key: str | None = None, *, token: AccessToken | None = None) -> None:
        """Forget the token of ``key`` (all tokens when ``key`` is None).

        With ``token``, forget it only if it is still the cached one: a caller that saw a
        401 must not throw away the fresh token another thread just fetched.
        """
        with self._lock:
            if key is None:
                for dropped in self._tokens.values():
                    LIVE_TOKENS.discard(dropped.access_token)
                self._tokens.clear()
            elif token is None or self._tokens.get(key) is token:
                dropped_token = self._tokens.pop(key, None)
                if dropped_token is not None:
                    LIVE_TOKENS.discard(dropped_token.access_token)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _touch(self, key: str) -> None:
        with self._lock:
            if key in self._tokens:
                self._tokens.move_to_end(key)

    def _store(self, key: str, token: AccessToken) -> None:
        LIVE_TOKENS.add(token.access_token)
        with self._lock:
            previous = self._tokens.pop(key, None)
            if previous is not None and previous.access_token != token.access_token:
                LIVE_TOKENS.discard(previous.access_token)
            self._tokens[key] = token
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + self.SWEEP_INTERVAL
                for stale in [k for k, t in self._tokens.items() if t.expired]:
                    LIVE_TOKENS.discard(self._tokens.pop(stale).access_token)
            while len(self._tokens) > self.max_entries:
                _, evicted = self._tokens.popitem(last=False)
                LIVE_TOKENS.discard(evicted.access_token)

    def _acquire_key_lock(self, key: str) -> _KeyLock:
        with self._lock:
            key_lock = self._key_locks.get(key)
            if key_lock is None:
                key_lock = self._key_locks[key] = _KeyLock()
            key_lock.users += 1
            return key_lock

    def _release_key_lock(self, key: str, key_lock: _KeyLock) -> None:
        with self._lock:
            key_lock.users -= 1
            if key_lock.users == 0:
                del self._key_locks[key]


#: The cache shared by every hook of the process.
TOKEN_CACHE = TokenCache()
