"""The :class:`TokenStore` contract: where processes share sealed tokens, and the lock that makes one fetch.

A store keeps opaque bytes (sealed entries, see :mod:`airflow_jwt_provider.tokens.sealing`) under
names that reveal nothing, for a time, and offers the three atomic operations a cluster-wide
single flight needs:

* ``put(name, value, ttl)``: the entry expires by itself (Redis TTL; file entries are pruned);
* ``try_lock(name, ttl)``: a lock per name, taken without waiting, that frees itself if its
  holder dies (a Redis ``SET NX PX`` with a fencing value, released only by its holder; a
  ``flock``, which the kernel releases with the process);
* ``compare_and_delete(name, prefix)``: drop the entry only if it still starts with ``prefix``
  (the tag of the token the API refused), atomically.

Two stores come with the provider: :mod:`~airflow_jwt_provider.tokens.stores.file` (every process
of one machine) and :mod:`~airflow_jwt_provider.tokens.stores.redis` (every worker of a cluster);
others register in the ``airflow_jwt_provider.token_stores`` entry-point group
(:class:`TokenStoreType`). They are opened once per process and settings (:func:`open_token_store`);
what to do when one fails is the shared cache's business (:mod:`airflow_jwt_provider.tokens.shared_cache`),
not theirs: a store raises whatever its backend raises.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from airflow_jwt_provider.common.registry import TOKEN_STORE_GROUP, RegistrationError, Registry
from airflow_jwt_provider.connection.settings import TokenCacheSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError


class StoreLock(Protocol):
    """A held lock of one name; :meth:`release` frees it only if it is still this holder's."""

    def release(self) -> None: ...

    def extend(self, ttl: float) -> bool:
        """Hold the lock ``ttl`` seconds from now (a lease renewed by a live holder); False if it is no longer held.

        A lock the kernel frees with its holder (``flock``) needs no renewal and answers True.
        """
        ...


class TokenStore(Protocol):
    """Sealed tokens by name, shared by processes; see the module docstring."""

    #: How the store is named in warnings (no secret): ``redis connection 'x' (host:port/db)``.
    description: str

    def get(self, name: str) -> bytes | None:
        """The entry of ``name``, or ``None`` if there is none (or it expired)."""
        ...

    def put(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds, replacing any entry."""
        ...

    def try_lock(self, name: str, ttl: float) -> StoreLock | None:
        """The lock of ``name`` if it is free now (held at most ``ttl`` seconds), else ``None``."""
        ...

    def compare_and_delete(self, name: str, prefix: bytes) -> bool:
        """Delete the entry of ``name`` if it starts with ``prefix`` (any entry for ``b""``); whether it did."""
        ...


@runtime_checkable
class MarkStore(Protocol):
    """An optional capability of a store: small values by name, kept for a time, beside the tokens.

    What an event trigger already fired for lives here
    (:mod:`airflow_jwt_provider.tokens.fired_marks`), so that a trigger re-created by the triggerer,
    or started by another triggerer after a restart, does not fire again for the same state. A mark is
    not a token: it is neither sealed nor locked; its name is a hex digest that reveals nothing. Both
    stores of the provider have it; a store of another distribution without it leaves event
    triggers with per-process memory (with a warning).
    """

    def get_mark(self, name: str) -> bytes | None:
        """The mark of ``name``, or ``None`` if there is none (or it expired)."""
        ...

    def put_mark(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds, replacing any mark of that name."""
        ...


@runtime_checkable
class TokenStoreType(Protocol):
    """A registered kind of store (its entry point's object in the ``airflow_jwt_provider.token_stores`` group).

    * ``name``: the ``token_cache`` value that selects it.
    * ``open(settings)``: the store; raises :class:`~airflow_jwt_provider.exceptions.JwtBearerConfigError`
      when it is configured wrongly (a missing extra, a connection of the wrong type) and whatever its
      backend raises when it cannot be reached (the shared cache then degrades).
    * ``describe(settings)``: how warnings name the store before it is opened (no secret).
    """

    @property
    def name(self) -> str: ...

    def open(self, settings: TokenCacheSettings) -> TokenStore: ...

    def describe(self, settings: TokenCacheSettings) -> str: ...


#: Every installed kind of store, the provider's own ones first.
STORES: Registry[TokenStoreType] = Registry(
    TOKEN_STORE_GROUP,
    "token store",
    lambda registration: isinstance(registration, TokenStoreType),
    preferred=("file", "redis"),
)

_STORES: dict[tuple[str, str, str | None, float, float], TokenStore] = {}
_STORES_LOCK = threading.Lock()


def store_type(settings: TokenCacheSettings) -> TokenStoreType:
    """The registration of ``settings.kind`` (the parser only lets registered names through)."""
    try:
        return STORES.get(settings.kind)
    except RegistrationError as exc:
        raise JwtBearerConfigError(f"token_cache {settings.kind!r}: {exc}", field="token_cache") from None


def open_token_store(settings: TokenCacheSettings) -> TokenStore:
    """The store ``settings`` name, opened once per process (a Redis client and its pool, a checked folder).

    Raises :class:`~airflow_jwt_provider.exceptions.JwtBearerConfigError` for a store that is
    configured wrongly (a missing extra, a connection that is not ``redis``), and whatever the
    backend raises when it cannot be reached.
    """
    key = (settings.kind, settings.conn_id, settings.directory, settings.io_timeout, settings.wait)
    store = _STORES.get(key)
    if store is not None:
        return store
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = store_type(settings).open(settings)
        return store


def forget_token_stores() -> None:
    """Forget the stores opened so far (tests; a process that must reconnect)."""
    with _STORES_LOCK:
        _STORES.clear()
