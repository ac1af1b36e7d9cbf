"""The async hook: the same connection, tokens and request rules as :class:`JwtBearerHook`, for an event loop.

The triggerer runs every trigger of a deployment on one event loop, so nothing here may block
it. The connection is read with ``await BaseHook.aget_connection``. Loading the key, minting
assertions and calling the token endpoint are the shared synchronous credentials
(:class:`~airflow_jwt_provider.tokens.credentials.JwtBearerCredentials`), run in a worker thread
(``asyncio.to_thread``) and sharing the process-wide token cache, so the refresh margin, error
messages and the 401 rule are those of the synchronous path. Only API requests are
asynchronous, with aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import aiohttp
import requests
from airflow.sdk import BaseHook

from airflow_jwt_provider import CONN_TYPE, DEFAULT_CONN_ID
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.common.telemetry import TELEMETRY, RequestTarget, RetryCause
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.http.request import ApiRequest, resolve_url
from airflow_jwt_provider.http.response import raise_for_status
from airflow_jwt_provider.http.wire import build_response
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE, TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from airflow_jwt_provider.tokens.dpop import NONCES, nonce_challenge, request_headers

#: Errors of one send that are worth another attempt (idempotent methods only).
_TRANSIENT_ERRORS = (aiohttp.ClientConnectionError, asyncio.TimeoutError)


class JwtBearerAsyncHook(BaseHook):
    """Async access tokens and API calls for a ``jwt_bearer`` connection.

    Use it as an async context manager (it owns an ``aiohttp.ClientSession``)::

        async with JwtBearerAsyncHook("my_api") as hook:
            response = await hook.arun("items", params={"page": 1})
            items = await response.json()

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection.
    :param token_cache: where tokens are cached; the process-wide cache by default.
    """

    conn_name_attr = "jwt_bearer_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "JWT Bearer (OAuth 2.0 RFC 7523), async"

    def __init__(self, jwt_bearer_conn_id: str = default_conn_name, *, token_cache: TokenCache | None = None) -> None:
        super().__init__()
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self._token_cache = token_cache if token_cache is not None else TOKEN_CACHE  # an empty cache is falsy
        self._credentials: JwtBearerCredentials | None = None
        self._ssl: ssl.SSLContext | bool | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> JwtBearerAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the aiohttp session (a new one is opened if the hook is used again)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- connection → settings → credentials -----------------------------------------------------

    async def aget_credentials(self) -> JwtBearerCredentials:
        """The connection's credentials: read with the async client, key loaded in a thread (once per hook)."""
        if self._credentials is None:
            conn = await self.aget_connection(self.jwt_bearer_conn_id)
            settings = parse_connection(conn)
            self._credentials = await asyncio.to_thread(
                JwtBearerCredentials.from_settings, settings, cache=self._token_cache
            )
        return self._credentials

    # -- tokens ------------------------------------------------------------------------------------

    async def aget_token(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        force_refresh: bool = False,
        assertion: str | None = None,
    ) -> AccessToken:
        """A valid access token (see :meth:`JwtBearerHook.get_token`); fetched off the event loop."""
        credentials = await self.aget_credentials()
        params = TokenParameters.of(subject, scope, claims, assertion)
        return await asyncio.to_thread(credentials.get_token, params, force_refresh=force_refresh)

    async def amint_assertion(
        self, subject: str | None = None, claims: Mapping[str, Any] | None = None, audience: str | None = None
    ) -> str:
        """A new signed JWT assertion (see :meth:`JwtBearerHook.mint_assertion`); signed off the event loop."""
        credentials = await self.aget_credentials()
        return await asyncio.to_thread(
            credentials.mint_assertion, TokenParameters.of(subject=subject, claims=claims), audience
        )

    # -- requests ----------------------------------------------------------------------------------

    async def arun(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = False,
        check_response: bool = True,
    ) -> requests.Response:
        """Send one request (see :meth:`JwtBearerHook.run`); the answer, as the sync hook gives it.

        Raises :class:`ApiResponseError` for an HTTP error status unless ``check_response`` is false.
        """
        request = ApiRequest(
            endpoint=endpoint,
            method=method,
            query=params,
            json=json,
            data=data,
            headers=headers,
            token=TokenParameters.of(subject, scope, claims),
        )
        response = await self.asend(request, retry=retry)
        if check_response:
            raise_for_status(response)
        return response

    async def asend(
        self, request: ApiRequest, *, retry: RetryPolicy | Mapping[str, Any] | bool | None = False
    ) -> requests.Response:
        """Send ``request`` with its token (one refresh and re-send on 401), retrying per ``retry`` (off by default).

        Returns the last answer whatever its status, read in full and rebuilt as a
        ``requests.Response`` (``json()``, ``text``, ``status_code``, ``headers``), the type the sync
        hook returns, so the same code judges answers of either path.
        """
        credentials = await self.aget_credentials()
        base_url = await asyncio.to_thread(credentials.api_base_url, request.token)  # may need a token
        url = resolve_url(base_url, request.endpoint, conn_id=self.jwt_bearer_conn_id)
        credentials.settings.trusted(base_url).check(url)  # before any token is fetched or sent
        return await RetryPolicy.coerce(retry).acall(
            lambda: self._send_authenticated(credentials, request, url),
            what=request.describe(),
            method=request.method,
            log=self.log,
            transient=_TRANSIENT_ERRORS,
            conn_id=self.jwt_bearer_conn_id,
        )

    async def _send_authenticated(
        self, credentials: JwtBearerCredentials, request: ApiRequest, url: str
    ) -> requests.Response:
        """One send with the cached token; on 401, :meth:`JwtBearerCredentials.refresh_rejected` and one re-send
        (and :meth:`JwtBearerCredentials.refresh_rejected_again` if a cached replacement is refused too).

        A DPoP API asking for its nonce (RFC 9449 §9) first gets one re-send with the same token and a proof
        carrying it, as the synchronous auth does.
        """
        conn_id = credentials.settings.conn_id
        with TELEMETRY.api_span(conn_id, request.method, url) as span:
            resent = 0
            token = await asyncio.to_thread(credentials.get_token, request.token)
            response = await self._send_once(credentials, request, url, token)
            if response.status_code == 401 and token.dpop_key is not None and nonce_challenge(401, response.headers):
                TELEMETRY.retried(conn_id, RequestTarget.API, RetryCause.USE_DPOP_NONCE)
                resent += 1
                response = await self._send_once(credentials, request, url, token)
            if response.status_code == 401:
                refused_at = datetime.now(timezone.utc)
                token = await asyncio.to_thread(credentials.refresh_rejected, request.token, token)
                resent += 1
                response = await self._send_once(credentials, request, url, token)
                if response.status_code == 401:  # a cached replacement revoked with the first: one fetched now
                    again = await asyncio.to_thread(
                        credentials.refresh_rejected_again, request.token, token, refused_at
                    )
                    if again is not None:
                        resent += 1
                        response = await self._send_once(credentials, request, url, again)
            TELEMETRY.api_answered(span, response.status_code, resent=resent)
        return response

    async def _send_once(
        self, credentials: JwtBearerCredentials, request: ApiRequest, url: str, token: AccessToken
    ) -> requests.Response:
        session = await self._client_session(credentials)
        # a DPoP proof is a signature (on a device, an I/O): made in a thread, off the event loop
        headers = {
            **(request.headers or {}),
            **await asyncio.to_thread(request_headers, token, request.method, url),
        }
        async with session.request(
            request.method,
            url,
            params=_query_pairs(request.query),
            json=request.json,
            data=request.data,
            headers=headers,
            ssl=credentials.tls_context or (self._ssl if self._ssl is not None else True),
            proxy=_proxy_for(url, credentials.settings.http.proxies),
            allow_redirects=token.dpop_key is None,  # a proof is made for one URL
        ) as response:
            if token.dpop_key is not None:
                NONCES.remember(url, response.headers)
            return build_response(
                status=response.status,
                reason=response.reason,
                headers=response.headers,
                url=str(response.url),
                method=request.method,
                body=await response.read(),
                encoding=response.charset,
                authorization=headers["Authorization"],  # as requests keeps it on response.request
            )

    async def _client_session(self, credentials: JwtBearerCredentials) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            http = credentials.settings.http
            self._ssl = await asyncio.to_thread(_ssl_option, http.verify)  # a CA bundle is a file read
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=http.timeout),
                trust_env=True,  # like requests: HTTP(S)_PROXY and NO_PROXY from the environment
            )
        return self._session


def _ssl_option(verify: bool | str) -> ssl.SSLContext | bool:
    """``verify`` as aiohttp's ``ssl=``: a CA bundle path becomes a context (reading the file)."""
    if isinstance(verify, bool):
        return verify
    return ssl.create_default_context(cafile=verify)


def _proxy_for(url: str, proxies: Mapping[str, str] | None) -> str | None:
    if not proxies:
        return None
    return proxies.get("https" if url.startswith("https://") else "http")


def _query_pairs(query: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """``requests``' rules: ``None`` values dropped, lists repeated, everything else ``str()``."""
    if not query:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                pairs.append((str(key), str(item)))
    return pairs
