"""``requests`` authentication that adds the bearer token and recovers from a revoked one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase

from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.connection.trusted_hosts import TrustedHosts
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials


class JwtBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer …`` from :class:`JwtBearerCredentials` to each request.

    The token comes from the shared cache and is refreshed ahead of expiry. When the API
    answers 401 anyway (the token was revoked server-side, or the server's clock runs
    ahead), :meth:`JwtBearerCredentials.refresh_rejected` gives a fresh token and the request
    is re-sent once; a second 401 is returned to the caller as is. A request whose body is a
    stream (a file, a generator) cannot be re-sent, and its 401 is returned as is too.

    A request to a host the token must not reach (see :mod:`airflow_jwt_provider.connection.trusted_hosts`)
    fails here, before a token is fetched or anything is sent.

    :param trusted: where the token may go; by default the connection's Host and ``trusted_hosts``.
    """

    def __init__(
        self,
        credentials: JwtBearerCredentials,
        params: TokenParameters = DEFAULT_TOKEN,
        *,
        trusted: TrustedHosts | None = None,
    ) -> None:
        self.credentials = credentials
        self.params = params
        self.trusted = trusted or credentials.settings.trusted(credentials.settings.api_base_url)
        self.retries_on_401 = 0

    def __repr__(self) -> str:
        return f"JwtBearerAuth({self.credentials!r}, {self.params!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.trusted.check(request.url or "")
        token = self.credentials.get_token(self.params)
        request.headers["Authorization"] = token.authorization_header
        request.register_hook("response", self._make_401_handler(token))
        return request

    def _make_401_handler(self, token: AccessToken) -> Callable[..., requests.Response]:
        def handle_401(response: requests.Response, **send_kwargs: Any) -> requests.Response:
            request = response.request
            if response.status_code != 401 or getattr(request, "_jwt_bearer_retried", False):
                return response
            if _body_is_stream(request):
                return response  # a consumed file/iterator body cannot be re-sent
            fresh = self.credentials.refresh_rejected(self.params, token)
            self.retries_on_401 += 1
            response.content  # noqa: B018 -- read the body so the connection can be reused
            response.close()
            retry = request.copy()
            retry.headers["Authorization"] = fresh.authorization_header
            # a mark of ours on requests' object (read with getattr above): the re-send is not re-sent
            retry._jwt_bearer_retried = True  # type: ignore[attr-defined]
            retry.hooks["response"] = []  # no second retry
            new_response = response.connection.send(retry, **send_kwargs)
            new_response.history.append(response)
            new_response.request = retry
            return new_response

        return handle_401


def _body_is_stream(request: requests.PreparedRequest) -> bool:
    body = request.body
    return body is not None and not isinstance(body, (bytes, str))
