"""``requests`` authentication that adds the bearer token and recovers from a revoked one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.auth import AuthBase

from airflow_jwt_provider.access_token import AccessToken
from airflow_jwt_provider.credentials import JwtBearerCredentials


class JwtBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer …`` from :class:`JwtBearerCredentials` to each request.

    The token comes from the shared cache and is refreshed ahead of expiry. When the API
    answers 401 anyway (the token was revoked server-side, or the server's clock runs
    ahead), the token is invalidated, a new one fetched, and the request re-sent once;
    a second 401 is returned to the caller as is.
    """

    def __init__(
        self,
        credentials: JwtBearerCredentials,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        self.credentials = credentials
        self.subject = subject
        self.scope = scope
        self.claims = dict(claims or {})
        self.retries_on_401 = 0

    def __repr__(self) -> str:
        return f"JwtBearerAuth({self.credentials!r}, subject={self.subject!r}, scope={self.scope!r})"

    def _token(self, force_refresh: bool = False) -> AccessToken:
        return self.credentials.get_token(
            subject=self.subject, scope=self.scope, claims=self.claims, force_refresh=force_refresh
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token()
        request.headers["Authorization"] = token.authorization_header
        request.register_hook("response", self._make_401_handler(token))
        return request

    def _make_401_handler(self, token: AccessToken) -> Any:
        def handle_401(response: requests.Response, **send_kwargs: Any) -> requests.Response:
            request = response.request
            if response.status_code != 401 or getattr(request, "_jwt_bearer_retried", False):
                return response
            if _body_is_stream(request):
                return response  # a consumed file/iterator body cannot be re-sent
            self.credentials.invalidate(token, subject=self.subject, scope=self.scope, claims=self.claims)
            fresh = self._token()
            self.retries_on_401 += 1
            response.content  # noqa: B018 -- read the body so the connection can be reused
            response.close()
            retry = request.copy()
            retry.headers["Authorization"] = fresh.authorization_header
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
