"""A small, bounded, thread-safe LRU of objects that are slow to build, one per process.

Loading a keystore (decryption, key checks) or building a device signer (an HSM login, a KMS
``GetPublicKey`` round trip with a fresh boto3 client) costs tens to hundreds of milliseconds;
every hook builds credentials, so these are built once per process and digest, and reused.
The caller's digest must cover everything that selects and opens the object, and must not
reveal a secret (a password or PIN goes in only through a hash or a keyed MAC).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessCache(Generic[T]):
    """Objects by digest, least recently used dropped beyond ``max_entries``.

    One build at a time: two threads asking for the same object wait for one build (no
    double decryption, no second HSM login). Failures are not cached: the next call tries again.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self.loads = 0  # how many times an object was really built (benchmarks, tests)

    def get_or_load(self, digest: str, load: Callable[[], T]) -> T:
        with self._lock:  # building is rare and slow: one at a time avoids building twice
            value = self._entries.get(digest)
            if value is not None:
                self._entries.move_to_end(digest)
                return value
            value = load()
            self.loads += 1
            self._entries[digest] = value
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
