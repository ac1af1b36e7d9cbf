"""What an event trigger already fired for: kept where the connection shares its tokens, or in this process.

Airflow's triggerer runs an asset watcher's trigger for as long as its DAG is active, and creates
it anew from its serialized arguments whenever it ends, when the triggerer restarts, or when
another triggerer takes it over. A watcher that must fire once per change of a resource therefore
cannot keep "what I fired for" in the trigger object: it keeps it here, under a key derived from
the trigger's serialized arguments (the same trigger gets the same key wherever it runs).

* With a shared token cache (``token_cache`` ``redis`` or ``file``), the marks live in that store
  (its :class:`~airflow_jwt_provider.tokens.stores.base.MarkStore` capability), for ``ttl``
  seconds: a restarted triggerer, or another one, sees them.
* With ``token_cache: memory`` (or a store without marks), they live in this process's memory,
  bounded: a re-created trigger in the same triggerer sees them, a restarted triggerer does not and
  may fire once more for the state it finds. That is logged once per watcher and process, as a warning.
* A store that fails (unreachable, slow) is left alone for :data:`STORE_RETRY_SECONDS`, with one
  warning; meanwhile marks go to memory only (memory always has them too), then the store is tried again.

Names are SHA-256 digests of the watcher's key and the identity: they reveal neither. Every method
does blocking I/O (Redis, the disk): an event loop calls them in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

from airflow_jwt_provider.common.redaction import redact_text
from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.tokens.stores.base import MarkStore, TokenStore, open_token_store

log = logging.getLogger(__name__)

#: Marks kept in process memory at most (oldest dropped first): a few per watcher.
MAX_PROCESS_MARKS = 10_000
#: After a store failure, a watcher keeps its marks in memory only for this long, then tries the store again.
STORE_RETRY_SECONDS = 30.0
_FIRED = b"fired"


class StateLocation(Enum):
    """Where a watcher's marks live (:attr:`FiredMarks.location`)."""

    #: The connection's shared token store: survives a triggerer restart, seen by every triggerer.
    SHARED_STORE = "shared_store"
    #: This process's memory: survives a re-created trigger, not a restarted triggerer.
    PROCESS_MEMORY = "process_memory"


class _ProcessMarks:
    """Marks in this process's memory: bounded, expiring, shared by every trigger of the process."""

    def __init__(self, max_entries: int = MAX_PROCESS_MARKS) -> None:
        self._marks: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, name: str) -> bytes | None:
        with self._lock:
            found = self._marks.get(name)
            if found is None:
                return None
            expires, value = found
            if time.monotonic() >= expires:
                del self._marks[name]
                return None
            return value

    def put(self, name: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._marks[name] = (time.monotonic() + ttl, value)
            self._marks.move_to_end(name)
            while len(self._marks) > self._max_entries:
                self._marks.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._marks.clear()


PROCESS_MARKS = _ProcessMarks()
_WARNED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()


def forget_process_marks() -> None:
    """Forget the marks and warnings of this process (tests; what a triggerer restart does)."""
    PROCESS_MARKS.clear()
    with _WARNED_LOCK:
        _WARNED.clear()


class FiredMarks:
    """The identities one watcher fired for, and the last ``ETag`` it saw; see the module docstring.

    :param watch_key: what identifies the watcher wherever it runs (a digest of its serialized arguments).
    :param description: how log lines name the watcher (no secret): ``GET exports/daily on 'my_api'``.
    :param settings: the connection's token cache settings: where the marks go.
    :param ttl: seconds a mark is kept (a change seen again after that fires again).
    :param open_store: opens the store (:func:`~airflow_jwt_provider.tokens.stores.base.open_token_store`).
    """

    def __init__(
        self,
        watch_key: str,
        description: str,
        settings: TokenCacheSettings,
        *,
        ttl: float,
        open_store: Callable[[TokenCacheSettings], TokenStore] = open_token_store,
    ) -> None:
        self.watch_key = watch_key
        self.description = description
        self.settings = settings
        self.ttl = ttl
        self._open_store = open_store
        self._store: MarkStore | None = None
        self._resolved = False
        self._retry_at = 0.0

    @property
    def location(self) -> StateLocation:
        """Where the marks go now (the shared store, unless there is none or it failed)."""
        return StateLocation.SHARED_STORE if self._shared() is not None else StateLocation.PROCESS_MEMORY

    def fired(self, identity: str) -> bool:
        """Whether this watcher already fired for ``identity`` (within ``ttl``)."""
        name = self._name("fired", identity)
        if PROCESS_MARKS.get(name) is not None:
            return True
        store = self._shared()
        if store is None:
            return False
        try:
            return store.get_mark(name) is not None
        except Exception as exc:
            self._store_failed(exc)
            return False

    def remember(self, identity: str) -> None:
        """This watcher fired for ``identity``: in process memory always, in the shared store when there is one."""
        self._put(self._name("fired", identity), _FIRED)

    def last_etag(self) -> str | None:
        """The ``ETag`` of the last answer this watcher saw (for ``If-None-Match``), or ``None``."""
        name = self._name("etag", "")
        value = PROCESS_MARKS.get(name)
        store = self._shared()
        if value is None and store is not None:
            try:
                value = store.get_mark(name)
            except Exception as exc:
                self._store_failed(exc)
        return value.decode("utf-8", "replace") if value else None

    def remember_etag(self, etag: str) -> None:
        self._put(self._name("etag", ""), etag.encode("utf-8"))

    # -- pieces ----------------------------------------------------------------------------------------

    def _name(self, kind: str, identity: str) -> str:
        return hashlib.sha256(f"jwt_bearer_watch\0{kind}\0{self.watch_key}\0{identity}".encode()).hexdigest()

    def _put(self, name: str, value: bytes) -> None:
        PROCESS_MARKS.put(name, value, self.ttl)
        store = self._shared()
        if store is None:
            return
        try:
            store.put_mark(name, value, self.ttl)
        except Exception as exc:
            self._store_failed(exc)

    def _shared(self) -> MarkStore | None:
        if self._resolved:
            retry_due = self._store is None and 0.0 < self._retry_at <= time.monotonic()  # after a failure
            if not retry_due:
                return self._store
        self._resolved, self._retry_at = True, 0.0
        if not self.settings.shared:
            self._warn_once(
                "memory",
                f"token_cache is {self.settings.kind!r}: what it fired for is kept in this triggerer's memory only, "
                "so a triggerer restart may fire once more for the state it finds; set token_cache to redis "
                "(or file, on one machine) to keep it across restarts",
            )
            return None
        try:
            store = self._open_store(self.settings)
        except JwtBearerConfigError:
            raise
        except Exception as exc:
            self._store_failed(exc)
            return None
        if not isinstance(store, MarkStore):
            self._warn_once(
                "no-marks",
                f"the token store {store.description} cannot keep marks: what it fired for is kept in this "
                "triggerer's memory only, so a triggerer restart may fire once more for the state it finds",
            )
            return None
        self._store = store
        return store

    def _store_failed(self, exc: BaseException) -> None:
        """A failing store: process memory only for :data:`STORE_RETRY_SECONDS`, then the store again."""
        self._store = None
        self._resolved = True
        self._retry_at = time.monotonic() + STORE_RETRY_SECONDS
        problem = redact_text(f"{type(exc).__name__}: {exc}")[:300]
        self._warn_once(
            "store-failed",
            f"the shared token store cannot be used ({problem}): what it fires for is kept in this "
            f"triggerer's memory, and the store tried again in {STORE_RETRY_SECONDS:.0f} s; a triggerer restart "
            "meanwhile may fire once more for the state it finds",
        )

    def _warn_once(self, kind: str, message: str) -> None:
        with _WARNED_LOCK:
            if (kind, self.watch_key) in _WARNED:
                return
            _WARNED.add((kind, self.watch_key))
        log.warning("Event trigger %s: %s", self.description, message)
