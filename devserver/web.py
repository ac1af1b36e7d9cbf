"""Small Flask helpers shared by the devserver's blueprints.

The blueprints are module-level (no routes defined in closures), so a view finds the
:class:`~devserver.server.LocalAuthorizationServer` that owns the app through the app's
``extensions`` rather than through ``self``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, cast

from flask import Response, current_app, jsonify

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
