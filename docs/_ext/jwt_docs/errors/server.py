"""A token endpoint and API on 127.0.0.1 that fail the way real servers do, one way per path.

A case points ``auth_url`` at ``<server>/<path>``: each path of :data:`TOKEN_ANSWERS` answers a token
request the way some server refuses one (its status and the OAuth error body RFC 6749 §5.2 defines),
so the provider's explanation of that answer is what the page shows. Any other path issues a token.
The API (``/api/…``) answers 403 under ``/api/forbidden``; the authorization server metadata
(RFC 8414) is not served, as on a server that publishes none.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The access token every successful answer carries (it must never appear in a message).
ACCESS_TOKEN = "docs-access-token-ok"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
TOKEN = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}
METADATA_PATH = "/.well-known/oauth-authorization-server"


def _error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


#: Token-endpoint path → (status, JSON body): each a refusal (or an odd answer) a real server gives.
TOKEN_ANSWERS: dict[str, tuple[int, object]] = {
    "/invalid-client": (401, _error("invalid_client", "Invalid client secret")),
    # the server's clock is 900 s ahead of this machine's (its Date header says so: date_time_string)
    "/expired": (400, _error("invalid_grant", "The token is expired")),
    # a platform's JWT whose issuer nobody registered with the server (Keycloak's wording)
    "/untrusted-issuer": (400, _error("invalid_grant", "Invalid token issuer")),
    # a server that wants client_id in the request even without client authentication (node-oidc-provider)
    "/no-client-auth": (400, _error("invalid_request", "no client authentication mechanism provided")),
    "/bad-dpop-proof": (400, _error("invalid_dpop_proof", "unsupported DPoP proof signing algorithm")),
    # RFC 8693 §2.2.1: an exchanged ID token is answered with token_type N_A
    "/id-token": (200, {**TOKEN, "token_type": "N_A", "issued_token_type": ID_TOKEN_TYPE}),
}


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: see the module docstring."""

    def log_message(self, *args: Any) -> None:  # quiet: the build output is the warnings only
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: 900 s ahead on ``/expired`` (a server whose clock is ahead of this machine's)."""
        ahead = 900 if self.path == "/expired" else 0
        return formatdate((timestamp or time.time()) + ahead, usegmt=True)

    def _answer(self, status: int, body: object, content_type: str = "application/json", **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/html":  # a proxy's page instead of the token endpoint's answer
            self._answer(502, "<html><body>Bad gateway</body></html>", "text/html", Retry_After="0")
        else:
            self._answer(*TOKEN_ANSWERS.get(self.path, (200, TOKEN)))

    def do_GET(self) -> None:
        if self.path.startswith("/api/forbidden"):
            self._answer(403, {"message": "insufficient scope"})
        elif self.path.endswith(METADATA_PATH):
            self._answer(404, {"error": "not_found"})
        else:
            self._answer(200, {"ok": True})


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """The server on a free port of 127.0.0.1, for the ``with`` block; its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
