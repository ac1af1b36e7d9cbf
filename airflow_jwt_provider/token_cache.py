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
from collections.abc import Callable

from airflow_jwt_provider.access_token import AccessToken


def cache_key(**parts: object) -> str:
    """A stable digest of ``parts`` (JSON-able values; order of keyword arguments is irrelevant)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class TokenCache:
    """Tokens by cache key, refreshed when no longer :attr:`AccessToken.valid`."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

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
            return seen
        with self._key_lock(key):
            current = self._tokens.get(key)
            replaced_meanwhile = current is not None and current is not seen
            if current is not None and current.valid and (not force_refresh or replaced_meanwhile):
                return current
            token = fetch()
            self._tokens[key] = token
            return token

    def invalidate(self, key: str | None = None, *, token: AccessToken | None = None) -> None:
        """Forget the token of ``key`` (all tokens when ``key`` is None).

        With ``token``, forget it only if it is still the cached one: a caller that saw a
        401 must not throw away the fresh token another thread just fetched.
        """
        with self._lock:
            if key is None:
                self._tokens.clear()
            elif token is None or self._tokens.get(key) is token:
                self._tokens.pop(key, None)


#: The cache shared by every hook of the process.
TOKEN_CACHE = TokenCache()
