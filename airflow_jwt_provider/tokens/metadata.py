"""The token endpoint from the authorization server's metadata (RFC 8414), when only ``auth_issuer`` is set.

``<issuer>/.well-known/oauth-authorization-server`` names the ``token_endpoint``; a client that uses
mutual TLS takes ``mtls_endpoint_aliases.token_endpoint`` instead when the server lists one (RFC 8705 §5:
servers often ask for client certificates on another host). The document must name the issuer it was
asked for (RFC 8414 §3.3). Read once per issuer and process.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError

METADATA_PATH = "/.well-known/oauth-authorization-server"
_DOCUMENTS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()
#: Issuers whose metadata a process keeps (a deployment has a handful).
MAX_ISSUERS = 64


def token_endpoint_of(settings: JwtBearerSettings, *, mtls: bool) -> str:
    """The token endpoint ``auth_issuer``'s metadata names (its mTLS alias when ``mtls``)."""
    issuer = settings.client_assertion.issuer
    assert issuer is not None
    document = _metadata(settings, issuer)
    aliases = document.get("mtls_endpoint_aliases")
    if mtls and isinstance(aliases, dict) and isinstance(aliases.get("token_endpoint"), str):
        return str(aliases["token_endpoint"])
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: the metadata of auth_issuer {issuer} names no token_endpoint; "
            "set auth_url",
            field="auth_url",
        )
    return endpoint


def _metadata(settings: JwtBearerSettings, issuer: str) -> dict[str, Any]:
    with _LOCK:
        known = _DOCUMENTS.get(issuer)
    if known is not None:
        return known
    url = issuer.rstrip("/") + METADATA_PATH
    http = settings.http
    try:
        response = requests.get(
            url,
            timeout=http.timeout,
            verify=http.verify,
            proxies=dict(http.proxies) if http.proxies else None,
            headers={"Accept": "application/json"},
        )
        document = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        document = None
    if not isinstance(document, dict):
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: the metadata of auth_issuer {issuer} ({url}) cannot be read; check "
            "auth_issuer, or set auth_url",
            field="auth_issuer",
        )
    if document.get("issuer") != issuer:
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: {url} names issuer {str(document.get('issuer'))[:200]!r}, not "
            f"auth_issuer {issuer!r} (RFC 8414 §3.3); set auth_issuer to the server's issuer",
            field="auth_issuer",
        )
    with _LOCK:
        if len(_DOCUMENTS) >= MAX_ISSUERS:
            _DOCUMENTS.pop(next(iter(_DOCUMENTS)))
        _DOCUMENTS[issuer] = document
    return document


def forget_metadata() -> None:
    with _LOCK:
        _DOCUMENTS.clear()
