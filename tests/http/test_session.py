"""JwtBearerSession and TcpKeepAlive against the local server's API: URLs, timeout, TLS and proxy settings, sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from airflow_jwt_provider.connection.settings import HttpSettings
from airflow_jwt_provider.connection.trusted_hosts import TrustedHosts, parse_trusted_hosts
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.auth import JwtBearerAuth
from airflow_jwt_provider.http.session import JwtBearerSession, TcpKeepAlive
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from devserver.server import LocalAuthorizationServer
from tests.conftest import CredentialsFactory


@pytest.fixture
def credentials(credentials_for: CredentialsFactory) -> JwtBearerCredentials:
    return credentials_for()


def session_for(
    credentials: JwtBearerCredentials,
    base_url: str | None,
    http: HttpSettings | None = None,
    keep_alive: TcpKeepAlive | None = None,
    trusted_hosts: tuple[str, ...] = (),
) -> JwtBearerSession:
    """A session on ``base_url``; the token may also go to ``trusted_hosts`` (``host:port``)."""
    trusted = TrustedHosts(credentials.settings.conn_id, base_url, parse_trusted_hosts(trusted_hosts))
    return JwtBearerSession(
        JwtBearerAuth(credentials, trusted=trusted),
        http or credentials.settings.http,
        base_url=base_url,
        keep_alive=keep_alive,
    )


class RecordingAdapter(HTTPAdapter):
    """A real adapter that also notes the arguments ``requests`` hands it for each send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append({"url": request.url, **kwargs})
        return super().send(request, **kwargs)


# --------------------------------------------------------------------------- URLs


def test_relative_urls_resolve_against_the_base_url(credentials: JwtBearerCredentials, auth_server) -> None:
    with session_for(credentials, auth_server.api_url + "/") as session:
        for endpoint in ("whoami", "/whoami", b"whoami"):
            response = session.get(endpoint)
            assert response.status_code == 200, endpoint
            assert response.url == f"{auth_server.api_url}/whoami"
        assert session.get("items", params={"page": 2}).json()["page"] == 2
    assert [r["path"] for r in auth_server.api_requests] == ["/api/whoami"] * 3 + ["/api/items"]
    assert all(r["subject"] == "alice" for r in auth_server.api_requests)


def test_absolute_urls_pass_unchanged(credentials: JwtBearerCredentials, auth_server) -> None:
    api_host = auth_server.api_url.split("://", 1)[1].split("/", 1)[0]
    with session_for(credentials, "http://api.invalid/v2", trusted_hosts=(api_host,)) as session:
        response = session.get(f"{auth_server.api_url}/whoami")
    assert response.status_code == 200
    assert response.url == f"{auth_server.api_url}/whoami"


def test_a_relative_url_without_base_url_names_host(credentials: JwtBearerCredentials, auth_server) -> None:
    with session_for(credentials, None) as session, pytest.raises(JwtBearerConfigError) as info:
        session.get("whoami")
    assert info.value.field == "host"
    assert "host (the API base URL) is empty" in str(info.value)
    assert "'whoami'" in str(info.value)
    assert "'jwt_credentials'" in str(info.value)  # the connection is named
    assert auth_server.api_requests == []
    assert auth_server.token_requests == []  # refused before any token is fetched


# --------------------------------------------------------------------------- HTTP settings


def test_the_default_timeout_applies_unless_given(credentials: JwtBearerCredentials, auth_server) -> None:
    adapter = RecordingAdapter()
    with session_for(credentials, auth_server.api_url, HttpSettings(timeout=7.5)) as session:
        session.mount("http://", adapter)
        session.get("whoami")
        session.get("whoami", timeout=2)
        session.post("results", json={"n": 1}, timeout=(1, 3))
        session.request("GET", "whoami", timeout=None)  # an explicit None is the caller's choice
    assert [sent["timeout"] for sent in adapter.sent] == [7.5, 2, (1, 3), None]


def test_proxies_come_from_the_http_settings(
    credentials: JwtBearerCredentials, auth_server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local server answers absolute-form requests, so it can stand in for a forward proxy.

    ``api.invalid`` does not resolve: the request can only succeed through the proxy. The
    environment's proxy variables are removed: requests would let them win over Session.proxies.
    """
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    http = HttpSettings(timeout=10, proxies={"http": auth_server.url})
    with session_for(credentials, "http://api.invalid/api", http) as session:
        assert session.proxies == {"http": auth_server.url}
        response = session.get("whoami")
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
    assert auth_server.api_requests[-1]["path"] == "/api/whoami"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word (no TLS server needed)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_verify_comes_from_the_http_settings(
    credentials: JwtBearerCredentials, tmp_path, silent_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these variables win over Session.verify; this test is about the settings alone
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    missing_bundle = str(tmp_path / "no-such-ca.pem")
    with session_for(
        credentials,
        None,
        HttpSettings(timeout=2, verify=missing_bundle),
        trusted_hosts=(f"127.0.0.1:{silent_listener}",),
    ) as session:
        assert session.verify == missing_bundle
        # the bundle is read when the TLS connection is set up: proof the setting reaches the send
        with pytest.raises(OSError, match=r"invalid path: .*no-such-ca\.pem"):
            session.get(f"https://127.0.0.1:{silent_listener}/")
    with session_for(credentials, None, HttpSettings(verify=False)) as session:
        assert session.verify is False
    with session_for(credentials, None) as session:
        assert session.verify is True
        assert session.default_timeout == credentials.settings.http.timeout


# --------------------------------------------------------------------------- TCP keep-alive


def test_keep_alive_socket_options() -> None:
    options = TcpKeepAlive(idle=11, count=5, interval=3).socket_options()
    assert options[: len(HTTPConnection.default_socket_options)] == HTTPConnection.default_socket_options
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in options
    assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 11) in options
    assert (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5) in options
    assert (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 3) in options
    assert TcpKeepAlive(enabled=False).socket_options() == list(HTTPConnection.default_socket_options)
    assert TcpKeepAlive().socket_options() != HTTPConnection.default_socket_options  # no shared list mutated


@pytest.mark.parametrize("enabled", [True, False])
def test_keep_alive_reaches_the_sockets(credentials: JwtBearerCredentials, auth_server, enabled: bool) -> None:
    keep_alive = TcpKeepAlive(enabled=enabled, idle=77, count=4, interval=9)
    # streamed: the socket stays open with the response until its body is read
    with (
        session_for(credentials, auth_server.api_url, keep_alive=keep_alive) as session,
        session.get("whoami", stream=True) as response,
        socket.socket(fileno=os.dup(response.raw.fileno())) as sock,
    ):
        assert response.status_code == 200
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == int(enabled)
        if enabled:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 77
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 9
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0  # urllib3's default is kept
        assert response.json()["sub"] == "alice"


def test_verify_setting_wins_over_requests_ca_bundle(
    credentials_for: Any, tmp_path: Path, silent_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    credentials = credentials_for()
    missing_bundle = str(tmp_path / "private-ca.pem")
    session = session_for(
        credentials,
        None,
        HttpSettings(timeout=2, verify=missing_bundle),
        trusted_hosts=(f"127.0.0.1:{silent_listener}",),
    )
    with pytest.raises(OSError, match=r"invalid path: .*private-ca\.pem"):
        session.get(f"https://127.0.0.1:{silent_listener}/")


def test_proxies_setting_wins_over_http_proxy(
    credentials_for: Any, auth_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = credentials_for()
    credentials.get_token()  # cached first: only the API request is under test
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = HttpSettings(timeout=10, proxies={"http": auth_server.url})
    session = session_for(credentials, "http://api.invalid/api", http)
    assert session.get("whoami").json()["sub"] == "alice"
