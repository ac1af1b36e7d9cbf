"""Small Flask helpers shared by the devserver's blueprints.

The blueprints are module-level (no routes defined in closures), so a view finds the
:class:`~devserver.server.LocalAuthorizationServer` that owns the app through the app's
``extensions`` rather than through ``self``.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app, jsonify
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from devserver.server import LocalAuthorizationServer

#: Key under ``app.extensions`` of the server that built the app.
SERVER_EXTENSION = "devserver"
#: Seconds a client has to finish its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Told of each failed TLS handshake: the client's address and the error.
TlsErrorCallback = Callable[[str, str], None]

log = logging.getLogger("devserver")


def local_server() -> LocalAuthorizationServer:
    """The server whose app is handling the current request."""
    return cast("LocalAuthorizationServer", current_app.extensions[SERVER_EXTENSION])


def json_error(error: str, description: str, status: int) -> tuple[Response, int]:
    return jsonify(error=error, error_description=description), status


def auth_scheme(header: str | None) -> str | None:
    """Only the scheme of an Authorization header: the rest is a credential."""
    if not header:
        return None
    return header.split(None, 1)[0]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HandshakeInThread(WSGIRequestHandler):
    """TLS handshake in the request's thread, not in the accepting one (werkzeug's way).

    werkzeug wraps the listening socket, so ``accept`` does the handshake on the serving thread: one client
    that connects and says nothing would stall every other. Here the listening socket does not handshake
    on accept; each request thread does, with a timeout, and a failed handshake (an untrusted client
    certificate, plain HTTP on the HTTPS port) ends that connection quietly, reported to the server's
    ``on_tls_error``.
    """

    def setup(self) -> None:
        self.tls_error: str | None = None
        connection = self.request
        if isinstance(connection, ssl.SSLSocket):
            connection.settimeout(HANDSHAKE_TIMEOUT)
            try:
                connection.do_handshake()
            except (OSError, ValueError) as exc:
                self.tls_error = str(exc) or type(exc).__name__
            else:
                connection.settimeout(None)
        super().setup()

    def handle(self) -> None:
        if self.tls_error is None:
            super().handle()
            return
        address = self.client_address[0] if isinstance(self.client_address, tuple) else str(self.client_address)
        log.debug("TLS handshake with %s failed: %s", address, self.tls_error)
        callback: TlsErrorCallback | None = getattr(self.server, "on_tls_error", None)
        if callback is not None:
            callback(address, self.tls_error)


class ServingThread:
    """A WSGI app served from a daemon thread (the devserver's and the platform's lifecycle, written once).

    :param name: the thread's name. :param handler: the request handler class (quiet logging, own ``Date``).
    """

    def __init__(self, name: str, handler: type[WSGIRequestHandler]) -> None:
        self.name = name
        self.handler = handler
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(
        self,
        host: str,
        port: int,
        app: Callable[..., Any],
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_tls_error: TlsErrorCallback | None = None,
    ) -> int:
        """Listen on ``host``:``port`` (0: any free port) and serve; the port listened on.

        With ``ssl_context``, serve HTTPS (the handshake in each request's thread, see
        :class:`_HandshakeInThread`); ``on_tls_error`` is told of each failed handshake.
        """
        if self._httpd is not None:
            raise RuntimeError(f"{self.name} already started")
        handler = self.handler
        if ssl_context is not None:
            handler = type(f"Tls{handler.__name__}", (_HandshakeInThread, handler), {})
        self._httpd = make_server(host, port, app, threaded=True, request_handler=handler)
        self._httpd.daemon_threads = True
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            self._httpd.ssl_context = ssl_context  # werkzeug: wsgi.url_scheme https, SSL_CLIENT_CERT
            self._httpd.on_tls_error = on_tls_error  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=self.name, daemon=True
        )
        self._thread.start()
        return self._httpd.server_port

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
