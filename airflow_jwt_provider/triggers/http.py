"""The trigger of the deferrable operator and sensor: API calls from the triggerer, with aiohttp.

The triggerer runs every trigger of the deployment on one event loop, so nothing here may
block it. The connection is read with ``await BaseHook.aget_connection``; loading the key,
minting the assertion and calling the token endpoint are the hook's synchronous code, run in
a worker thread (``asyncio.to_thread``) and sharing the process-wide token cache with every
other trigger of the same connection. Only the API request itself is asynchronous.

The serialized trigger (stored in the metadata database, shown in the UI) holds the
connection id and the request description: no token, assertion, password or key.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import requests
from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_jwt_provider.access_token import AccessToken
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.triggers.api_request import (
    DONE,
    WAIT,
    ApiRequest,
    PollSpec,
    RetryPolicy,
    error_event,
    import_callable,
    log_retry,
    response_from_wire,
    response_to_wire,
    success_event,
)

CLASSPATH = "airflow_jwt_provider.triggers.http.JwtBearerHttpTrigger"


class JwtBearerHttpTrigger(BaseTrigger):
    """Send one API request, or poll one until a condition holds, and fire with the answer.

    Without ``poll``: one request (401 → one token refresh and re-send; 429/5xx → retries per
    ``retry``), then an event with the answer, whatever its status: the worker judges it with
    the same code as in synchronous mode. With ``poll`` (the deferrable sensor): the request
    is repeated every ``poll["interval"]`` seconds until :meth:`PollSpec.outcome` says done
    or fail.

    Events: ``{"status": "success", "response": <wire answer>}`` or
    ``{"status": "error", "error_type": ..., "message": ...}`` (token endpoint refused, key
    unreadable, network error...).

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection.
    :param request: :meth:`ApiRequest.to_dict` of the request.
    :param retry: :meth:`RetryPolicy.to_dict`; the default policy when omitted.
    :param poll: :meth:`PollSpec.to_dict`, to poll instead of sending once.
    """

    def __init__(
        self,
        jwt_bearer_conn_id: str,
        request: Mapping[str, Any],
        retry: Mapping[str, Any] | None = None,
        poll: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self.request = ApiRequest.from_dict(request)
        self.retry = RetryPolicy.coerce(retry)
        self.poll = PollSpec.from_dict(poll) if poll else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "jwt_bearer_conn_id": self.jwt_bearer_conn_id,
                "request": self.request.to_dict(),
                "retry": self.retry.to_dict(),
                "poll": self.poll.to_dict() if self.poll else None,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with await AsyncApiClient.connect(self.jwt_bearer_conn_id, log=self.log) as client:
                if self.poll is None:
                    wire = await client.send(self.request, self.retry)
                else:
                    wire = await self._poll(client, self.poll)
        except Exception as exc:  # reported to the worker, which fails the task with the message
            self.log.error("%s failed: %s", self.request.describe(), exc)
            yield TriggerEvent(error_event(exc))
            return
        yield TriggerEvent(success_event(wire))

    async def _poll(self, client: AsyncApiClient, spec: PollSpec) -> dict[str, Any]:
        check: Callable[[requests.Response], Any] | None = None
        if spec.response_check:
            check = await asyncio.to_thread(import_callable, spec.response_check)  # imports read files
        polls = 0
        while True:
            wire = await client.send(self.request, self.retry)
            polls += 1
            # The check is user code: it runs in a thread too, in case it is slow.
            outcome = await asyncio.to_thread(spec.outcome, response_from_wire(wire), check)
            if outcome != WAIT:
                self.log.info(
                    "%s: %s after %d poll(s) (HTTP %s)",
                    self.request.describe(),
                    "done" if outcome == DONE else "stopped",
                    polls,
                    wire["status"],
                )
                return wire
            self.log.info(
                "%s: not yet (HTTP %s); next poll in %s s", self.request.describe(), wire["status"], spec.interval
            )
            await asyncio.sleep(spec.interval)


class AsyncApiClient:
    """aiohttp requests with bearer tokens of one ``jwt_bearer`` connection, for an event loop.

    Built by :meth:`connect`, which does the blocking set-up (key loading) off the loop. The
    token logic is the hook's: :class:`~airflow_jwt_provider.credentials.JwtBearerCredentials`
    called through ``asyncio.to_thread``, so the token cache, refresh margin and error
    messages are those of the synchronous path.
    """

    def __init__(
        self,
        hook: JwtBearerHook,
        session: aiohttp.ClientSession,
        ssl_option: ssl.SSLContext | bool,
        log: Any,
    ) -> None:
        self.hook = hook
        self.session = session
        self.ssl_option = ssl_option
        self.log = log

    @classmethod
    async def connect(cls, conn_id: str, *, log: Any) -> AsyncApiClient:
        conn = await BaseHook.aget_connection(conn_id)
        # Built from the connection read above: the hook's own lookup uses the blocking client.
        hook = JwtBearerHook.from_connection(conn)
        await asyncio.to_thread(lambda: hook.credentials)  # reads and decrypts the key
        ssl_option = await asyncio.to_thread(_ssl_option, hook.settings.verify)
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=hook.settings.timeout),
            trust_env=True,  # like requests: HTTP(S)_PROXY and NO_PROXY from the environment
        )
        return cls(hook, session, ssl_option, log)

    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def send(self, request: ApiRequest, retry: RetryPolicy) -> dict[str, Any]:
        """Send ``request``, retrying 429/5xx per ``retry``; the last answer in wire form."""
        url = await self._url(request)
        attempt = 1
        while True:
            wire = await self._send_authenticated(request, url)
            wait = retry.delay(attempt, wire["status"], request.method, _header(wire, "Retry-After"))
            if wait is None:
                return wire
            log_retry(self.log, request, wire["status"], attempt, retry, wait)
            await asyncio.sleep(wait)
            attempt += 1

    async def _url(self, request: ApiRequest) -> str:
        # api_base_url may need a token (Salesforce's instance_url): off the loop.
        base_url = await asyncio.to_thread(self.hook.api_base_url, request.subject, request.scope, request.claims)
        return self.hook.url_for(request.endpoint, base_url)

    async def _send_authenticated(self, request: ApiRequest, url: str) -> dict[str, Any]:
        """One send with the cached token; on 401, one refresh and one re-send (as ``JwtBearerAuth``)."""
        token = await self._token(request)
        wire = await self._send_once(request, url, token)
        if wire["status"] == 401:
            self.log.info("%s answered 401; fetching a new token and sending once more", request.describe())
            token = await self._token(request, refused=token)
            wire = await self._send_once(request, url, token)
        return wire

    async def _token(self, request: ApiRequest, refused: AccessToken | None = None) -> AccessToken:
        credentials = self.hook.credentials
        identity = {"subject": request.subject, "scope": request.scope, "claims": request.claims}

        def fetch() -> AccessToken:
            if refused is not None:
                credentials.invalidate(refused, **identity)
            return credentials.get_token(**identity)

        return await asyncio.to_thread(fetch)

    async def _send_once(self, request: ApiRequest, url: str, token: AccessToken) -> dict[str, Any]:
        headers = {**(request.headers or {}), "Authorization": token.authorization_header}
        async with self.session.request(
            request.method,
            url,
            params=_query_pairs(request.query),
            json=request.json,
            data=request.data,
            headers=headers,
            ssl=self.ssl_option,
            proxy=self._proxy(url),
        ) as response:
            body = await response.read()
            return response_to_wire(
                status=response.status,
                reason=response.reason,
                headers=response.headers,
                url=str(response.url),
                method=request.method,
                body=body,
                encoding=response.charset,
            )

    def _proxy(self, url: str) -> str | None:
        proxies = self.hook.settings.proxies or {}
        return proxies.get("https" if url.startswith("https://") else "http")


def _ssl_option(verify: bool | str) -> ssl.SSLContext | bool:
    """``verify`` as aiohttp's ``ssl=``: a CA bundle path becomes a context (reading the file)."""
    if isinstance(verify, bool):
        return verify
    return ssl.create_default_context(cafile=verify)


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


def _header(wire: Mapping[str, Any], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in (wire.get("headers") or {}).items() if k.lower() == lowered), None)
