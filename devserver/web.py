"""Small Flask helpers shared by the devserver's blueprints.

The blueprints are module-level (no routes defined in closures), so a view finds the
:class:`~devserver.server.LocalAuthorizationServer` that owns the app through the app's
``extensions`` rather than through ``self``.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app, jsonify
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from devserver.server import LocalAuthorizationServer

#: Key under ``app.extensions`` of the server that built the app.
SERVER_EXTENSION = "devserver"


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

    def start(self, host: str, port: int, app: Callable[..., Any]) -> int:
        """Listen on ``host``:``port`` (0: any free port) and serve; the port listened on."""
        if self._httpd is not None:
            raise RuntimeError(f"{self.name} already started")
        self._httpd = make_server(host, port, app, threaded=True, request_handler=self.handler)
        self._httpd.daemon_threads = True
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
