"""Local test infrastructure for airflow-jwt-provider (not shipped in the wheel).

* :mod:`devserver.keystores` writes keystores, PEM keys and Google key files at run time
  (certificates expire, so none are committed).
* :mod:`devserver.server` is a real OAuth 2.0 authorization server built on Authlib's server
  side, plus a small protected API, so the client's assertions are checked by code that is
  not the client's own. Its parts live in :mod:`devserver.grants`, :mod:`devserver.token_endpoint`,
  :mod:`devserver.api`, :mod:`devserver.faults` and :mod:`devserver.records`; DPoP (RFC 9449) in
  :mod:`devserver.dpop`, HTTPS and mutual TLS (RFC 8705) in :mod:`devserver.tls`;
  ``python -m devserver`` (:mod:`devserver.cli`) runs it on its own.

Tests and the demo import it with the repository root on ``sys.path``.
"""

from devserver.keystores import (
    Keystore,
    have_keytool,
    make_google_service_account_json,
    make_keystore,
    make_keystore_with_fallback,
    make_pem_key,
)

__all__ = [
    "Keystore",
    "LocalAuthorizationServer",
    "have_keytool",
    "make_google_service_account_json",
    "make_keystore",
    "make_keystore_with_fallback",
    "make_pem_key",
]


def __getattr__(name: str) -> object:
    # The server needs Flask and Authlib (the "devserver" extra); keystores alone do not, so
    # importing the package for keystores must not require them.
    if name == "LocalAuthorizationServer":
        from devserver.server import LocalAuthorizationServer

        return LocalAuthorizationServer
    raise AttributeError(f"module 'devserver' has no attribute {name!r}")
