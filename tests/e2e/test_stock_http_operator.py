"""The http provider's ``HttpOperator`` with a ``jwt_bearer`` connection.

Synchronous mode is supported: Airflow builds the hook from the connection type, so the
requests go through ``JwtBearerHook`` (bearer token, 401 refresh). Deferrable mode is not:
``HttpTrigger``/``HttpAsyncHook`` read the connection themselves, turn Login/Password into
HTTP Basic credentials and send every other extra as a header. The provider's code never
runs on that path, so it cannot be fixed from here; the docs warn against it (docs/dags/http-operator.md), and the
second test pins the behaviour the warning describes.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import CLIENT_ID, CLIENT_SECRET, STORE_PASSWORD

pytestmark = pytest.mark.slow


def test_stock_http_operator_sync_mode_uses_the_jwt_bearer_hook(
    run_dag: Any, jwt_connection: Any, auth_server: Any
) -> None:
    jwt_connection()
    result = run_dag("jwt_e2e_stock_http")

    assert result.states == dict.fromkeys(["whoami", "list_items", "post_result"], "success"), result.output[-3000:]
    assert result.xcom("whoami")["sub"] == "alice"
    assert result.xcom("list_items") == list(range(1, 24))
    assert auth_server.results == [{"from": "HttpOperator"}]
    assert {(r["auth_scheme"], r["status"]) for r in auth_server.api_requests} == {("Bearer", 200), ("Bearer", 201)}
    pages = [r["query"] for r in auth_server.api_requests if r["path"] == "/api/items"]
    assert pages == [{"page": str(n), "per_page": "10"} for n in (1, 2, 3)]  # GET data → query string


class _Recorder(BaseHTTPRequestHandler):
    """Records the headers of every request and answers ``{}``: stands for any API."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _stock_connection(set_connection: Any, recorder: ThreadingHTTPServer, auth_server: Any, **extra: Any) -> None:
    set_connection(
        "jwt_stock_deferred",
        host=f"http://127.0.0.1:{recorder.server_port}/api",
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        extra={
            "auth_url": auth_server.token_url,
            "key_file": "/keys/client.p12",
            "keystore_password": STORE_PASSWORD,
            "subject": "alice",
            **extra,
        },
    )


def test_stock_http_operator_deferrable_mode_sends_connection_secrets_not_a_token(
    run_dag: Any, set_connection: Any, recorder: ThreadingHTTPServer, auth_server: Any
) -> None:
    _stock_connection(set_connection, recorder, auth_server)
    result = run_dag("jwt_e2e_stock_http_deferred")

    assert result.states == {"echo_headers": "success"}  # HttpOperator sees nothing wrong
    (headers,) = recorder.seen  # type: ignore[attr-defined]
    basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert headers["Authorization"] == basic  # the client secret, to the API host
    assert headers["keystore_password"] == STORE_PASSWORD  # a connection extra, as a header
    assert headers["auth_url"] == auth_server.token_url
    assert not auth_server.token_requests  # and no token was ever fetched


def test_stock_http_operator_deferrable_mode_fails_on_typed_extras_before_sending(
    run_dag: Any, set_connection: Any, recorder: ThreadingHTTPServer, auth_server: Any
) -> None:
    """A connection saved from the 3.x form stores numbers and objects: aiohttp refuses them as headers."""
    _stock_connection(set_connection, recorder, auth_server, lifetime=60, claims={"tenant": "t1"})
    result = run_dag("jwt_e2e_stock_http_deferred")

    assert result.states == {"echo_headers": "failed"}
    assert recorder.seen == []  # type: ignore[attr-defined]
    assert "Unexpected error in the operation" in result.output
    assert json.dumps(STORE_PASSWORD) not in result.output
