"""``requests`` authentication that adds the bearer token and recovers from a revoked one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import requests
from requests.auth import AuthBase

from airflow_jwt_provider.common.telemetry import TELEMETRY, RequestTarget, RetryCause
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.connection.trusted_hosts import TrustedHosts
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from airflow_jwt_provider.tokens.dpop import NONCES, nonce_challenge, request_headers


class JwtBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer …`` (or ``DPoP …`` with its proof) from :class:`JwtBearerCredentials`.

    The token comes from the shared cache and is refreshed ahead of expiry. When the API
    answers 401 anyway (the token was revoked server-side, or the server's clock runs
    ahead), :meth:`JwtBearerCredentials.refresh_rejected` gives a fresh token and the request
    is re-sent once; a second 401 is returned to the caller as is, unless the replacement came from a
    cache and predates the first 401 (:meth:`JwtBearerCredentials.refresh_rejected_again`: then one
    token fetched now, and one more re-send). A DPoP API that asks for its
    nonce (``use_dpop_nonce``, RFC 9449 §9) gets the request once more with a new proof carrying it,
    before any token is thrown away. A request whose body is a stream (a file, a generator) cannot be
    re-sent, and its 401 is returned as is too.

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
        self.trusted.check(request.url or "")  # before a token is fetched or a proof is made
        token = self.credentials.get_token(self.params)
        request.headers.update(request_headers(token, request.method or "GET", request.url or ""))
        request.register_hook("response", self._make_401_handler(token))
        return request

    def _make_401_handler(self, token: AccessToken) -> Callable[..., requests.Response]:
        def handle_401(response: requests.Response, **send_kwargs: Any) -> requests.Response:
            if token.dpop_key is not None:
                NONCES.remember(response.request.url or "", response.headers)
            if response.status_code != 401 or _body_is_stream(response.request):
                return response  # a consumed file/iterator body cannot be re-sent
            used = token
            if token.dpop_key is not None and nonce_challenge(401, response.headers):
                TELEMETRY.retried(self.credentials.settings.conn_id, RequestTarget.API, RetryCause.USE_DPOP_NONCE)
                response = self._resend(response, used, send_kwargs)  # the same token, a proof with the nonce
                if response.status_code != 401:
                    return response
            refused_at = datetime.now(timezone.utc)
            fresh = self.credentials.refresh_rejected(self.params, used)
            self.retries_on_401 += 1
            response = self._resend(response, fresh, send_kwargs)
            if response.status_code == 401:  # a cached replacement revoked with the first: one fetched now
                again = self.credentials.refresh_rejected_again(self.params, fresh, refused_at)
                if again is not None:
                    self.retries_on_401 += 1
                    response = self._resend(response, again, send_kwargs)
            return response

        return handle_401

    @staticmethod
    def _resend(response: requests.Response, token: AccessToken, send_kwargs: dict[str, Any]) -> requests.Response:
        """``response``'s request sent once more with ``token`` (and a new proof); its answer, with the history."""
        request = response.request
        response.content  # noqa: B018 -- read the body so the connection can be reused
        response.close()
        retry = request.copy()
        retry.headers.update(request_headers(token, retry.method or "GET", retry.url or ""))
        retry.hooks["response"] = []  # requests' adapter does not run hooks: each re-send is decided here
        new_response = response.connection.send(retry, **send_kwargs)
        if token.dpop_key is not None:
            NONCES.remember(retry.url or "", new_response.headers)
        new_response.history = [*response.history, response]  # every answer before it, in order
        new_response.request = retry
        return new_response


def _body_is_stream(request: requests.PreparedRequest) -> bool:
    body = request.body
    return body is not None and not isinstance(body, (bytes, str))
