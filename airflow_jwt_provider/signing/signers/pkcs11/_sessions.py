"""This process's logged-in sessions on PKCS#11 tokens: one per (module, token), locked, fork-aware.

Opening a PKCS#11 library and logging in costs a round trip to the device (and HSMs limit
concurrent sessions), so every :class:`~.signer.Pkcs11Signer` of a process on one token shares
one :class:`TokenLink`. PKCS#11 forbids sharing a session across processes: after a fork
(Celery prefork, the task supervisor) the child re-initialises the library and opens its own.

python-pkcs11 initialises the library with ``C_Initialize(NULL)``, which tells the library that
the application will not call it from several threads at once (many HSM modules then do no
locking of their own), so every call into a token goes through that token's lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_jwt_provider.exceptions import KeystoreError

INSTALL_HINT = "pip install 'airflow-jwt-provider[pkcs11]'"

_T = TypeVar("_T")


def import_pkcs11(field: str) -> Any:
    try:
        import pkcs11
    except ImportError:
        raise KeystoreError(
            f"signing with a PKCS#11 device ({field}) needs the optional dependency python-pkcs11: {INSTALL_HINT}",
            field=field,
        ) from None
    return pkcs11


def library(pkcs11: Any, module_path: str) -> Any:
    """python-pkcs11's library object for ``module_path`` (a real path), however it was first loaded.

    python-pkcs11 keeps one object per path *string*: if other code in the process loaded the
    module through a symlink, a second object would call C_Initialize again and fail.
    """
    for loaded_path in list(getattr(pkcs11, "_loaded", {})):
        if loaded_path != module_path and os.path.realpath(loaded_path) == module_path:
            return pkcs11.lib(loaded_path)
    return pkcs11.lib(module_path)


#: A per-process key for the PIN tag below: the tag tells whether a PIN is the one the
#: session logged in with, without keeping a comparable hash of the PIN anywhere else.
_PIN_TAG_KEY = secrets.token_bytes(32)


def _pin_tag(pin: str) -> bytes:
    return hmac.new(_PIN_TAG_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


class TokenLink:
    """This process's logged-in session on one token of one PKCS#11 module, and its lock.

    Every operation runs under the lock (see the module notes for why) through :meth:`run`,
    which (re)opens the session when needed and retries once when the device dropped it.
    """

    def __init__(self, module_path: str, token_label: str) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.session: Any = None
        self.generation = 0  # bumped at every new session: signers re-find their key handle
        self._pin_tag: bytes | None = None

    def run(self, pkcs11: Any, pin: str, operation: Callable[[Any], _T]) -> _T:
        with self.lock:
            if self.pid != os.getpid():
                self._after_fork(pkcs11)
            session = self._session_for(pkcs11, pin)
            try:
                return operation(session)
            except (
                pkcs11.SessionClosed,
                pkcs11.SessionHandleInvalid,
                pkcs11.UserNotLoggedIn,
                pkcs11.DeviceRemoved,
                pkcs11.TokenNotPresent,
                pkcs11.ObjectHandleInvalid,
                pkcs11.KeyHandleInvalid,
            ):
                self._forget()
                return operation(self._session_for(pkcs11, pin))

    def _session_for(self, pkcs11: Any, pin: str) -> Any:
        tag = _pin_tag(pin)
        if self.session is not None and hmac.compare_digest(tag, self._pin_tag or b""):
            return self.session
        if self.session is not None:
            # Another PIN than the one logged in with: log out, so that the device checks this
            # one (a logged-in application would get CKR_USER_ALREADY_LOGGED_IN, not a verdict).
            self.close()
        token = library(pkcs11, self.module_path).get_token(token_label=self.token_label)
        self.session = token.open(user_pin=pin)
        self._pin_tag = tag
        self.generation += 1
        return self.session

    def _forget(self) -> None:
        """Drop a session the device no longer knows (closing it would only fail again)."""
        self.session = None
        self._pin_tag = None

    def close(self) -> None:
        with self.lock:
            session, self.session, self._pin_tag = self.session, None, None
            if session is not None and self.pid == os.getpid():
                with contextlib.suppress(Exception):  # the session is gone either way
                    session.close()

    def _after_fork(self, pkcs11: Any) -> None:
        # The parent's session is not ours: forget it without closing it (closing would close the
        # parent's), and give the library the C_Initialize that PKCS#11 asks of a forked child.
        self._forget()
        self.pid = os.getpid()
        _reinitialize_after_fork(pkcs11, self.module_path)


_LINKS: dict[tuple[str, str], TokenLink] = {}
_LINKS_LOCK = threading.Lock()
_REINITIALIZED_IN: dict[str, int] = {}


def _reinitialize_after_fork(pkcs11: Any, module_path: str) -> None:
    with _LINKS_LOCK:
        if _REINITIALIZED_IN.get(module_path) == os.getpid():
            return
        _REINITIALIZED_IN[module_path] = os.getpid()
        loaded = library(pkcs11, module_path)
        try:
            loaded.reinitialize()
        except pkcs11.PKCS11Error:
            # Modules that reset themselves on fork refuse C_Finalize; initialise only.
            loaded.initialize()


def _reset_locks_in_child() -> None:
    """After a fork, give the child fresh locks: a parent thread may have held one at the fork, forever."""
    global _LINKS_LOCK
    _LINKS_LOCK = threading.Lock()
    for link in _LINKS.values():
        link.lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_locks_in_child)


def link_for(module_path: str, token_label: str) -> TokenLink:
    with _LINKS_LOCK:
        link = _LINKS.get((module_path, token_label))
        if link is None:
            link = _LINKS[(module_path, token_label)] = TokenLink(module_path, token_label)
        return link


def close_sessions() -> None:
    """Log out and close every session this process opened (tests, orderly shutdown)."""
    with _LINKS_LOCK:
        links = list(_LINKS.values())
        _LINKS.clear()
    for link in links:
        link.close()
