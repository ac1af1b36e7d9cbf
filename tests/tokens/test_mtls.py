"""The mTLS context (RFC 8705): the connection's key and certificate in a real TLS handshake on loopback.

A small TLS server (``ssl`` from the standard library, client certificates requested and checked
against the test CA) answers with the SHA-256 thumbprint of the certificate it was shown: what a
resource server binds a token to.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_jwt_provider.tokens.mtls import ContextAdapter, certificate_binding, client_tls_context
from devserver.tls import CertificateAuthority, server_context, thumbprint


class EchoServer:
    """Answers every GET with the thumbprint of the client certificate of the TLS connection (or null)."""

    def __init__(self, authority: CertificateAuthority) -> None:
        certificate, key = authority.issue_server_certificate([], ["127.0.0.1"])
        context = server_context(authority, certificate, key)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
                body = json.dumps({"x5t#S256": thumbprint(der) if der else None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority("mtls unit test CA")


@pytest.fixture(scope="module")
def server(authority: CertificateAuthority) -> Iterator[EchoServer]:
    echo = EchoServer(authority)
    yield echo
    echo.stop()


@pytest.fixture(scope="module")
def ca_file(authority: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(authority.pem)
    return str(path)


def client(authority: CertificateAuthority, name: str = "airflow-client") -> tuple[Any, x509.Certificate]:
    certificate_pem, key_pem = authority.issue_client_certificate(name)
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    return key, x509.load_pem_x509_certificate(certificate_pem.encode())


def test_requests_presents_the_certificate_and_trusts_only_the_contexts_ca(
    authority: CertificateAuthority, server: EchoServer, ca_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key, certificate = client(authority)
    context = client_tls_context(key, certificate, ca_file)
    session = requests.Session()
    session.mount("https://", ContextAdapter(context))
    # An environment bundle that trusts nothing here must neither replace nor pollute the pinned context.
    empty_bundle = tmp_path / "other.pem"
    empty_bundle.write_text(CertificateAuthority("unrelated CA").pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(empty_bundle))
    answer = session.get(server.url, timeout=10).json()
    assert answer["x5t#S256"] == certificate_binding(certificate)
    assert context.cert_store_stats()["x509_ca"] == 1  # only the CA the connection named


def test_the_key_never_stays_on_disk(authority: CertificateAuthority, ca_file: str) -> None:
    before = set(Path(tempfile.gettempdir()).glob("jwt-bearer-mtls-*"))
    key, certificate = client(authority, "no-file-left")
    client_tls_context(key, certificate, ca_file)
    assert set(Path(tempfile.gettempdir()).glob("jwt-bearer-mtls-*")) == before


def test_one_context_per_certificate_and_trust_in_a_process(authority: CertificateAuthority, ca_file: str) -> None:
    key, certificate = client(authority, "cached")
    assert client_tls_context(key, certificate, ca_file) is client_tls_context(key, certificate, ca_file)
    assert client_tls_context(key, certificate, True) is not client_tls_context(key, certificate, ca_file)


def test_a_server_the_context_does_not_trust_is_refused(authority: CertificateAuthority, server: EchoServer) -> None:
    key, certificate = client(authority, "system-trust")
    session = requests.Session()
    session.mount("https://", ContextAdapter(client_tls_context(key, certificate, True)))  # the system's CAs
    with pytest.raises(requests.exceptions.SSLError):
        session.get(server.url, timeout=10)


def test_aiohttp_presents_the_same_certificate(
    authority: CertificateAuthority, server: EchoServer, ca_file: str
) -> None:
    key, certificate = client(authority, "async")
    context = client_tls_context(key, certificate, ca_file)

    async def call() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(server.url, ssl=context) as response:
            return dict(await response.json())

    assert asyncio.run(call())["x5t#S256"] == certificate_binding(certificate)


def test_the_echo_server_sees_no_certificate_without_the_context(server: EchoServer, ca_file: str) -> None:
    """The server side of the test can tell: a plain client shows no certificate."""
    assert requests.get(server.url, verify=ca_file, timeout=10).json() == {"x5t#S256": None}
