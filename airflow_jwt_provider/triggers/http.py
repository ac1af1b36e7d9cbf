"""The trigger of the deferrable operator and sensor: one API call, or a poll, from the triggerer.

Everything it does goes through :class:`~airflow_jwt_provider.hooks.jwt_bearer_async.JwtBearerAsyncHook`'s
public API, so the token cache, the 401 rule and the retry policy are those of every other path.

This module is light: the async hook (aiohttp, the signing stack) is imported in a worker thread
when the trigger first runs (:func:`~airflow_jwt_provider.triggers._hook.async_hook_class`).
The serialized trigger (stored in the metadata database, shown in the UI) holds the
connection id and the request description: no token, assertion, password or key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_jwt_provider.common.imports import import_callable
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.http.polling import PollOutcome, PollSpec
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.wire import error_event, response_to_wire, success_event
from airflow_jwt_provider.triggers._hook import async_hook_class

if TYPE_CHECKING:
    from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook

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
        # BaseTrigger.__init__ is unannotated, and mypy's untyped_calls_exclude does not reach super() calls.
        super().__init__()  # type: ignore[no-untyped-call]
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
            hook_class = await async_hook_class()  # off the loop
            async with hook_class(self.jwt_bearer_conn_id) as hook:
                if self.poll is None:
                    response = await hook.asend(self.request, retry=self.retry)
                else:
                    response = await self._poll(hook, self.poll)
        except Exception as exc:  # reported to the worker, which fails the task with the message
            self.log.error("%s failed: %s", self.request.describe(), exc)
            yield TriggerEvent(error_event(exc))
            return
        yield TriggerEvent(success_event(response_to_wire(response)))

    async def _poll(self, hook: JwtBearerAsyncHook, spec: PollSpec) -> requests.Response:
        check: Callable[[requests.Response], Any] | None = None
        if spec.response_check:
            check = await asyncio.to_thread(import_callable, spec.response_check)  # imports read files
        polls = 0
        while True:
            response = await hook.asend(self.request, retry=self.retry)
            polls += 1
            # The check is user code: it runs in a thread too, in case it is slow.
            outcome = await asyncio.to_thread(spec.outcome, response, check)
            if outcome is not PollOutcome.WAIT:
                self.log.info(
                    "%s: %s after %d poll(s) (HTTP %s)",
                    self.request.describe(),
                    "done" if outcome is PollOutcome.DONE else "stopped",
                    polls,
                    response.status_code,
                )
                return response
            self.log.info(
                "%s: not yet (HTTP %s); next poll in %s s", self.request.describe(), response.status_code, spec.interval
            )
            await asyncio.sleep(spec.interval)
