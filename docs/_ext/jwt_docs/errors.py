"""The errors page's examples, produced by the provider's own code at documentation build time.

Why generated and not typed: a message typed into a page drifts as soon as someone rewords it in
the code. Each :class:`Case` below sets up a connection that is wrong in one documented way and
calls the public API (``parse_connection``, ``JwtBearerHook.mint_assertion`` / ``get_token`` /
``run``) the way a task does; the exception it raises is what the page shows. Keys and keystores are
made in a temporary directory, and the token endpoint and API are a small HTTP server on 127.0.0.1
answering the way real servers fail (nothing leaves the machine). The temporary paths and the
loopback address are replaced by example values (``/keys/…``, ``https://login.example.com``) so
the page reads like a deployment's, and stays the same from one build to the next.

``tests/docs/test_errors_page.py`` runs every case too: a case that stops raising, raises another
exception class than the page says, or whose message no longer names the setting at fault fails the
tests, and so does a message that contains one of the secrets the case put in the connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .keys import EXAMPLE_API, EXAMPLE_TOKEN_URL, STORE_PASSWORD, pem, pkcs12, platform_jwt

#: Secrets the cases put in connections (and :data:`~jwt_docs.keys.STORE_PASSWORD`): none may appear in a message.
WRONG_PASSWORD = "docs-wrong-pass-0815"
CLIENT_SECRET = "docs-client-secret-2323"


# -- a token endpoint and API that fail the way real ones do -------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: each path is one way a server fails (or a plain success)."""

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
        ok = {"access_token": "docs-access-token-ok", "token_type": "Bearer", "expires_in": 3600}
        if self.path == "/invalid-client":
            self._answer(401, {"error": "invalid_client", "error_description": "Invalid client secret"})
        elif self.path == "/expired":
            # the server's clock is 900 s ahead of this machine's (date_time_string: its Date header says so)
            self._answer(400, {"error": "invalid_grant", "error_description": "The token is expired"})
        elif self.path == "/html":
            self._answer(502, "<html><body>Bad gateway</body></html>", "text/html", Retry_After="0")
        elif self.path == "/bearer-for-dpop":
            self._answer(200, ok)
        else:
            self._answer(200, ok)

    def do_GET(self) -> None:
        if self.path.startswith("/api/forbidden"):
            self._answer(403, {"message": "insufficient scope"})
        else:
            self._answer(200, {"ok": True})


@contextlib.contextmanager
def _server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the cases -------------------------------------------------------------------------------------


@dataclass
class Workspace:
    """Where a case runs: a temporary directory and the local server's base URL."""

    directory: Path
    server: str

    def connection(self, conn_id: str, extra: dict[str, Any], **fields: Any) -> str:
        """Define ``conn_id`` as Airflow reads it from the environment; return the id."""
        document = {"conn_type": "jwt_bearer", "login": "my-client", **fields, "extra": extra}
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(document)
        return conn_id


@dataclass(frozen=True)
class Case:
    """One documented error: how to cause it, the exception the page names, what the user does about it."""

    title: str
    exception: str
    #: the setting (or header, or answer) the message must name
    names: str
    fix: str
    cause: Callable[[Workspace], object]


def _parse(ws: Workspace, extra: dict[str, Any], **fields: Any) -> object:
    from airflow.sdk import Connection

    from airflow_jwt_provider.connection.parser import parse_connection

    conn_id = fields.pop("conn_id", "box_api")
    document = {"conn_type": "jwt_bearer", "login": "my-client", **fields}
    return parse_connection(Connection(conn_id=conn_id, extra=json.dumps(extra), **document))


def _hook(ws: Workspace, conn_id: str, extra: dict[str, Any], **fields: Any) -> Any:
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

    return JwtBearerHook(ws.connection(conn_id, extra, **fields))


def _typo(ws: Workspace) -> object:
    return _parse(ws, {"auth_url": EXAMPLE_TOKEN_URL, "key_file": "/keys/k.p12", "keystore_pasword": STORE_PASSWORD})


def _preset_claim(ws: Workspace) -> object:
    return _parse(ws, {"preset": "box", "key_file": "/keys/box.p12", "subject": "1234567"}, password=CLIENT_SECRET)


def _other_signer(ws: Workspace) -> object:
    extra = {"auth_url": EXAMPLE_TOKEN_URL, "signer": "pkcs11", "key_file": "/keys/k.p12"}
    extra.update(pkcs11_module="/usr/lib/softhsm/libsofthsm2.so", pkcs11_token_label="jwt-signing")
    return _parse(ws, extra, conn_id="hsm_api")


def _both_bindings(ws: Workspace) -> object:
    return _parse(ws, {"auth_url": EXAMPLE_TOKEN_URL, "key_file": "/keys/k.p12", "dpop": True, "mtls": True})


def _wrong_algorithm(ws: Workspace) -> object:
    key = pem(ws.directory / "k.pem")
    extra = {"auth_url": f"{ws.server}/token", "key_file": str(key), "algorithm": "RS256"}
    return _hook(ws, "box_api", extra).mint_assertion()


def _wrong_password(ws: Workspace) -> object:
    store = pkcs12(ws.directory / "k.p12")
    extra = {"auth_url": f"{ws.server}/token", "key_file": str(store), "keystore_password": WRONG_PASSWORD}
    return _hook(ws, "box_api", extra).mint_assertion()


def _no_such_alias(ws: Workspace) -> object:
    store = pkcs12(ws.directory / "k.p12")
    extra = {"auth_url": f"{ws.server}/token", "key_file": str(store), "keystore_password": STORE_PASSWORD}
    return _hook(ws, "box_api", {**extra, "key_alias": "signing-2027"}).mint_assertion()


def _expired_certificate(ws: Workspace) -> object:
    store = pkcs12(ws.directory / "k.p12", expired=True)
    extra = {"auth_url": f"{ws.server}/token", "key_file": str(store), "keystore_password": STORE_PASSWORD}
    return _hook(ws, "box_api", extra).mint_assertion()


def _expired_file(ws: Workspace) -> object:
    token = ws.directory / "token"
    token.write_text(platform_jwt(expired=True))
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "file", "assertion_file": str(token)}
    return _hook(ws, "k8s_api", extra).get_token()


def _unset_variable(ws: Workspace) -> object:
    os.environ.pop("AZURE_FEDERATED_TOKEN_FILE", None)
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "file"}
    extra["assertion_file"] = "$AZURE_FEDERATED_TOKEN_FILE"
    return _hook(ws, "entra_api", extra).get_token()


def _github_outside_actions(ws: Workspace) -> object:
    for name in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        os.environ.pop(name, None)
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "github_actions", "assertion_audience": "api"}
    return _hook(ws, "gha_api", extra).get_token()


def _per_call_subject(ws: Workspace) -> object:
    token = ws.directory / "token"
    token.write_text(platform_jwt(expired=True))
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "file", "assertion_file": str(token)}
    return _hook(ws, "k8s_api", extra).get_token(subject="someone-else")


def _token_hook(ws: Workspace, path: str, conn_id: str = "box_api", **extra: Any) -> Any:
    store = pkcs12(ws.directory / "k.p12")
    base = {"auth_url": f"{ws.server}{path}", "key_file": str(store), "keystore_password": STORE_PASSWORD}
    return _hook(ws, conn_id, {**base, **extra}, password=CLIENT_SECRET, host=f"{ws.server}/api")


def _invalid_client(ws: Workspace) -> object:
    return _token_hook(ws, "/invalid-client").get_token()


def _clock(ws: Workspace) -> object:
    return _token_hook(ws, "/expired").get_token()


def _html(ws: Workspace) -> object:
    return _token_hook(ws, "/html").get_token()


def _bearer_for_dpop(ws: Workspace) -> object:
    return _token_hook(ws, "/bearer-for-dpop", dpop=True).get_token()


def _untrusted_host(ws: Workspace) -> object:
    return _token_hook(ws, "/token").run("https://files.example.net/download/1")


def _forbidden(ws: Workspace) -> object:
    return _token_hook(ws, "/token").run("forbidden/items")


CASES: tuple[Case, ...] = (
    Case("A typo in an extra key", "JwtBearerConfigError", "keystore_password", "fix the named key", _typo),
    Case(
        "A preset's mandatory claim is missing",
        "JwtBearerConfigError",
        "box_sub_type",
        "add the claim (the message names the vendor page)",
        _preset_claim,
    ),
    Case(
        "A setting of another signer",
        "JwtBearerConfigError",
        "key_file",
        "remove the leftover setting, or correct `signer`",
        _other_signer,
    ),
    Case("Two bindings at once", "JwtBearerConfigError", "dpop", "choose `dpop` or `mtls`", _both_bindings),
    Case(
        "The algorithm does not fit the key",
        "JwtBearerConfigError",
        "algorithm",
        "remove `algorithm` (it follows the key) or correct it",
        _wrong_algorithm,
    ),
    Case(
        "The keystore password is wrong",
        "KeystoreError",
        "keystore_password",
        "check the password; PKCS#12 cannot tell a wrong password from a damaged file",
        _wrong_password,
    ),
    Case(
        "No such key in the keystore",
        "KeystoreError",
        "signing-2027",
        "correct `key_alias` (the message lists the entries)",
        _no_such_alias,
    ),
    Case(
        "The key's certificate has expired",
        "KeystoreError",
        "expired",
        "renew the key pair and register it ([Rotating a key](keys.md#rotating-a-key)); a certificate "
        "expiring within 30 days is a warning in the task log",
        _expired_certificate,
    ),
    Case(
        "The platform's JWT in assertion_file has expired",
        "AssertionSourceError",
        "assertion_file",
        "check the projected volume's `expirationSeconds` and the kubelet; the task fails before any request",
        _expired_file,
    ),
    Case(
        "The variable naming the token file is not set",
        "AssertionSourceError",
        "AZURE_FEDERATED_TOKEN_FILE",
        "run the worker in a pod of a service account with workload identity enabled",
        _unset_variable,
    ),
    Case(
        "github_actions outside a GitHub Actions job",
        "AssertionSourceError",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "grant the workflow `permissions: id-token: write`, or use another source",
        _github_outside_actions,
    ),
    Case(
        "A per-call subject with a platform's JWT",
        "JwtBearerConfigError",
        "subject",
        "use a connection per identity, or `assertion_source: sign`",
        _per_call_subject,
    ),
    Case(
        "The server refuses the client",
        "TokenEndpointError",
        "invalid_client",
        "check Login, Password and `client_auth`",
        _invalid_client,
    ),
    Case(
        "The clocks disagree",
        "TokenEndpointError",
        "clock",
        "synchronise the clock (NTP)",
        _clock,
    ),
    Case(
        "Something else answered instead of the token endpoint",
        "TokenEndpointError",
        "text/html",
        "check `auth_url` and the proxies",
        _html,
    ),
    Case(
        "A Bearer token where DPoP was asked for",
        "TokenEndpointError",
        "dpop_allow_bearer",
        "enable DPoP for the client on the server, or accept unbound tokens with `dpop_allow_bearer`",
        _bearer_for_dpop,
    ),
    Case(
        "A request to a host the connection does not trust",
        "JwtBearerConfigError",
        "trusted_hosts",
        "list the host in `trusted_hosts` (https only), or call the API base",
        _untrusted_host,
    ),
    Case(
        "The API refuses the call",
        "ApiResponseError",
        "403",
        "check the scope and the subject's rights",
        _forbidden,
    ),
)


@dataclass(frozen=True)
class Produced:
    """What a case raised: the exception's class name and its message, as the page shows it."""

    case: Case
    exception: str
    message: str


def produce(case: Case, server: str | None = None) -> Produced:
    """Run ``case`` in a fresh workspace; the exception it raised, with example values for local ones."""
    if server is None:
        with _server() as started:
            return produce(case, started)
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE

    saved = dict(os.environ)
    TOKEN_CACHE.invalidate()
    with tempfile.TemporaryDirectory(prefix="jwt-docs-errors-") as directory:
        try:
            case.cause(Workspace(Path(directory), server))
        except Exception as exc:
            message = str(exc).replace(f"{server}/api", EXAMPLE_API)
            message = re.sub(re.escape(server) + r"/[\w-]+", EXAMPLE_TOKEN_URL, message)
            message = message.replace(server, "https://login.example.com")
            message = message.replace(str(Path(directory).resolve()), "/keys").replace(directory, "/keys")
            return Produced(case, type(exc).__name__, message)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    raise AssertionError(f"error case {case.title!r} raised nothing")


def mismatch(produced: Produced) -> str | None:
    """Why ``produced`` is not what the page says about its case (its class, the setting it names), if so."""
    case = produced.case
    if produced.exception != case.exception:
        return f"raised {produced.exception}, not {case.exception}: {produced.message}"
    if case.names not in produced.message:
        return f"its message no longer names {case.names!r}: {produced.message}"
    return None


def produce_all() -> list[Produced]:
    """Every case, against one local server; a case that no longer fits its entry stops the build.

    The page states each case's exception class and the setting its message names; showing a message
    that says otherwise (say, a connection error because loopback is unreachable) would be worse than
    no page, so the build fails instead, naming the case.
    """
    with _server() as server:
        produced = [produce(case, server) for case in CASES]
    wrong = [f"{p.case.title!r} {why}" for p in produced if (why := mismatch(p))]
    if wrong:
        raise RuntimeError("errors page: " + "; ".join(wrong))
    return produced


def errors_markdown(produced: list[Produced]) -> str:
    """One entry per case: the situation, the exception, the message the code produced, what to do."""
    lines: list[str] = []
    for item in produced:
        lines += [
            f"### {item.case.title}",
            "",
            f"`{item.exception}`:",
            "",
            "```text",
            textwrap.fill(item.message, 96, break_long_words=False, break_on_hyphens=False),
            "```",
            "",
            f"What to do: {item.case.fix}.",
            "",
        ]
    return "\n".join(lines)
