"""A ``requests.Session`` for one API: base URL, default timeout, TLS settings (mTLS too), token auth, keep-alive."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.connection import HTTPConnection

from airflow_jwt_provider.common.telemetry import TELEMETRY
from airflow_jwt_provider.connection.settings import HttpSettings
from airflow_jwt_provider.http.auth import JwtBearerAuth
from airflow_jwt_provider.http.request import resolve_url
from airflow_jwt_provider.tokens.mtls import ContextAdapter


@dataclass(frozen=True)
class TcpKeepAlive:
    """TCP keep-alive probes, as ``HttpHook``'s ``tcp_keep_alive*`` arguments set them.

    A long request through a NAT or a firewall that drops idle connections would otherwise
    hang until the timeout; probes keep the connection known to the middleboxes.

    :param idle: seconds of silence before the first probe.
    :param count: unanswered probes before the connection is dropped.
    :param interval: seconds between probes.
    """

    enabled: bool = True
    idle: int = 120
    count: int = 20
    interval: int = 30

    def socket_options(self) -> list[tuple[int, int, int]]:
        options = list(HTTPConnection.default_socket_options)
        if not self.enabled:
            return options
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for name, value in (("TCP_KEEPIDLE", self.idle), ("TCP_KEEPINTVL", self.interval), ("TCP_KEEPCNT", self.count)):
            if hasattr(socket, name):  # Linux; macOS lacks TCP_KEEPIDLE
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
        return options


class JwtBearerSession(requests.Session):
    """A session whose requests carry the bearer token and the connection's HTTP settings.

    Relative URLs are resolved against ``base_url`` (the connection's host), and every
    request gets the connection's timeout unless it sets its own, so that a forgotten
    ``timeout=`` cannot hang a task forever.
    """

    def __init__(
        self,
        auth: JwtBearerAuth,
        http: HttpSettings,
        base_url: str | None = None,
        *,
        keep_alive: TcpKeepAlive | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.auth = auth
        self.base_url = base_url
        self.conn_id = auth.credentials.settings.conn_id
        self.default_timeout = http.timeout
        self.verify = http.verify
        self.connection_proxies = dict(http.proxies or {})
        self.proxies.update(self.connection_proxies)
        socket_options = keep_alive.socket_options() if keep_alive is not None else None
        if socket_options is not None or tls_context is not None:
            # mTLS (RFC 8705): the API sees the certificate the token is bound to, over the same context
            self.mount("https://", ContextAdapter(tls_context, socket_options))
            self.mount("http://", ContextAdapter(None, socket_options))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        # requests lets REQUESTS_CA_BUNDLE and HTTP(S)_PROXY override what is set on a Session;
        # the connection's verify and proxies must win, so they go with each request.
        kwargs.setdefault("verify", self.verify)
        if self.connection_proxies:
            kwargs.setdefault("proxies", dict(self.connection_proxies))
        if isinstance(method, bytes):  # requests decodes a bytes method as ASCII too
            method = method.decode("ascii")
        if isinstance(url, bytes):
            url = url.decode("ascii")
        url = self.url_for(url)
        with TELEMETRY.api_span(self.conn_id, method, url) as span:
            response = super().request(method, url, *args, **kwargs)
            TELEMETRY.api_answered(span, response.status_code, resent=len(response.history))
        return response

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """On a redirect: requests drops ``Authorization`` for another host; a DPoP proof is dropped always (it
        names one URL), and for the same host the token goes with a new proof for the new URL."""
        super().rebuild_auth(prepared_request, response)
        prepared_request.headers.pop("DPoP", None)
        if str(prepared_request.headers.get("Authorization", "")).startswith("DPoP ") and callable(self.auth):
            self.auth(prepared_request)

    def url_for(self, endpoint: str | None) -> str:
        """``endpoint`` resolved against the connection's API base; an absolute URL is returned as it is."""
        return resolve_url(self.base_url, endpoint, conn_id=self.conn_id)
