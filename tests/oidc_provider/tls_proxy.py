"""A TLS-terminating proxy in front of node-oidc-provider, for RFC 8705 (mutual TLS), written for the tests.

node-oidc-provider serves plain HTTP and reads the client certificate from the ``x-client-cert`` header a
TLS-terminating proxy sets (the harness's ``features.mTLS``). :class:`MtlsProxy` is that proxy: HTTPS on 127.0.0.1
with a certificate of a test CA, client certificates requested (``CERT_OPTIONAL``) and verified against that CA and
the self-signed certificates it is told to trust; each request is forwarded to node with the verified certificate as
``x-client-cert`` (PEM, URL-encoded as nginx's ``$ssl_client_escaped_cert``); a header of that name from the client
is dropped. Paths under ``/api/`` are a certificate-bound protected resource instead (RFC 8705 §3): a bearer token
introspected at node, served only over a TLS connection with the certificate the token is bound to
(``cnf.x5t#S256``).

Nothing here imports ``airflow_jwt_provider``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import requests

from devserver.tls import CertificateAuthority, server_context
from tests.oidc_provider.harness import INTROSPECTOR_ID, INTROSPECTOR_SECRET

#: Request headers passed on to node (the others stay here).
_FORWARDED = ("Content-Type", "Accept", "Authorization", "DPoP", "User-Agent")
#: Response headers passed back.
_RETURNED = ("Content-Type", "DPoP-Nonce", "WWW-Authenticate", "Cache-Control", "Pragma")


def x5t_s256(der: bytes) -> str:
    """RFC 8705 §3.1: base64url (no padding) SHA-256 of the DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


@dataclass
class Exchange:
    """One request the proxy received: the certificate the TLS handshake verified, and what was answered."""

    method: str
    path: str
    client_x5t: str | None  # x5t#S256 of the client certificate; None: the client presented none
    status: int
    reason: str | None = None  # why the resource refused it


class MtlsProxy:
    """HTTPS with client certificates on 127.0.0.1, forwarding to ``upstream`` (node) and serving ``/api/``."""

    def __init__(self, authority: CertificateAuthority, trusted_self_signed: list[str]) -> None:
        certificate, key = authority.issue_server_certificate(["localhost"], ["127.0.0.1"])
        self.context = server_context(authority, certificate, key)
        for pem in trusted_self_signed:  # self_signed_tls_client_auth: the handshake must accept them too
            self.context.load_verify_locations(cadata=pem)
        self.upstream = ""  # node's issuer, set once it runs
        self.exchanges: list[Exchange] = []
        self.handshake_failures: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                # The handshake in the request's thread, not in the accepting one.
                request.settimeout(10)
                try:
                    tls = proxy.context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    with proxy._lock:
                        proxy.handshake_failures.append(f"{type(exc).__name__}: {exc}")
                    return
                try:
                    Handler(tls, client_address, self)
                finally:
                    with contextlib.suppress(OSError):
                        tls.shutdown(socket.SHUT_RDWR)
                    tls.close()

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="mtls-proxy", daemon=True)

    def start(self) -> MtlsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        connection = handler.connection
        assert isinstance(connection, ssl.SSLSocket)
        der = connection.getpeercert(binary_form=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        exchange = Exchange(handler.command, handler.path, x5t_s256(der) if der else None, 0)
        if handler.path.startswith("/api/"):
            status, headers, content = self._resource(handler, exchange)
        else:
            status, headers, content = self._forward(handler, body, der)
        exchange.status = status
        with self._lock:
            self.exchanges.append(exchange)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(content)

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes, der: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {name: handler.headers[name] for name in _FORWARDED if handler.headers.get(name) is not None}
        if der:  # only the certificate of the handshake: never a client's own x-client-cert header
            headers["x-client-cert"] = quote(ssl.DER_cert_to_PEM_cert(der), safe="")
        response = requests.request(
            handler.command,
            self.upstream + handler.path,
            data=body or None,
            headers=headers,
            timeout=10,
            allow_redirects=False,
        )
        returned = {name: response.headers[name] for name in _RETURNED if name in response.headers}
        return response.status_code, returned, response.content

    def _resource(self, handler: BaseHTTPRequestHandler, exchange: Exchange) -> tuple[int, dict[str, str], bytes]:
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        info: dict[str, Any] = {}
        if scheme.lower() != "bearer" or not token:
            exchange.reason = "no bearer token"
        else:
            info = requests.post(
                f"{self.upstream}/token/introspection",
                data={"token": token, "client_id": INTROSPECTOR_ID, "client_secret": INTROSPECTOR_SECRET},
                timeout=10,
            ).json()
            bound = (info.get("cnf") or {}).get("x5t#S256")
            if info.get("active") is not True:
                exchange.reason = "token not active"
            elif not bound:
                exchange.reason = "token not bound to a certificate"
            elif exchange.client_x5t is None:
                exchange.reason = "no client certificate"
            elif bound != exchange.client_x5t:
                exchange.reason = "certificate mismatch"
        if exchange.reason is not None:
            body = json.dumps({"error": "invalid_token", "error_description": exchange.reason}).encode()
            challenge = f'Bearer error="invalid_token", error_description="{exchange.reason}"'
            return 401, {"Content-Type": "application/json", "WWW-Authenticate": challenge}, body
        content = json.dumps({"client_id": info.get("client_id"), "x5t#S256": exchange.client_x5t}).encode()
        return 200, {"Content-Type": "application/json"}, content
