"""The part the operator and the sensor have in common: the templated request and how it is sent.

Both describe one API call with the same templated fields, send it with the same hook and
retry policy when synchronous, and hand it to the same trigger when deferrable. Keeping
that here (rather than in each) is what makes the two behave alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import requests
from airflow.sdk import BaseOperator, Context, conf

from airflow_jwt_provider import DEFAULT_CONN_ID
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.http.polling import PollSpec
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.response import body_excerpt

if TYPE_CHECKING:
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

REQUEST_TEMPLATE_FIELDS: tuple[str, ...] = (
    "jwt_bearer_conn_id",
    "endpoint",
    "method",
    "query",
    "json",
    "data",
    "headers",
    "subject",
    "scope",
    "claims",
)


class JwtBearerRequestOperator(BaseOperator):
    """Base class: one API call of a ``jwt_bearer`` connection, described by templated fields.

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection (its host is the API base URL).
    :param endpoint: path relative to the connection's host, or an absolute URL.
    :param method: HTTP method.
    :param query: URL query parameters (``params`` is Airflow's, for DAG params).
    :param json: JSON body.
    :param data: form (dict) or raw (str) body; a GET's dict ``data`` becomes the query, as
        with ``HttpOperator``.
    :param headers: extra request headers (``Authorization`` is set by the provider).
    :param subject: the token's ``sub`` (the user or account to act as); the connection's by default.
    :param scope: the scope to request; the connection's by default.
    :param claims: extra assertion claims for this call.
    :param retry: retries of 429/5xx answers: a :class:`RetryPolicy`, a dict of its fields,
        ``True`` (default policy) or ``False`` (none).
    :param accepted_statuses: statuses that count as success; default: any below 400.
    :param log_response: log the status and the start of each answer's body (never the token,
        which is in the request, not the answer).
    :param deferrable: send the request from the triggerer instead of holding a worker slot.
    """

    template_fields: Sequence[str] = REQUEST_TEMPLATE_FIELDS
    template_fields_renderers = {"query": "json", "json": "json", "headers": "json", "claims": "json", "data": "py"}

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "GET",
        query: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        jwt_bearer_conn_id: str = DEFAULT_CONN_ID,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = None,
        accepted_statuses: Collection[int] | None = None,
        log_response: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self.endpoint = endpoint
        self.method = method
        self.query = query
        self.json = json
        self.data = data
        self.headers = headers
        self.subject = subject
        self.scope = scope
        self.claims = claims
        self.retry = RetryPolicy.coerce(retry)  # checked when the DAG is parsed, not when it runs
        self.accepted_statuses = tuple(accepted_statuses) if accepted_statuses else None
        self.log_response = log_response
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> JwtBearerHook:
        # Imported here, not at the top: a DAG file that only declares the operator must not pay
        # for the signing stack (cryptography, PyJWT) each time the dag-processor parses it.
        from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

        return JwtBearerHook(self.jwt_bearer_conn_id, method=self.method)

    def api_request(self) -> ApiRequest:
        """The request the (rendered) fields describe."""
        return ApiRequest(
            endpoint=self.endpoint,
            method=self.method,
            query=self.query,
            json=self.json,
            data=self.data,
            headers=self.headers,
            token=TokenParameters.of(self.subject, self.scope, self.claims),
        )

    def send(self, request: ApiRequest) -> requests.Response:
        """Send synchronously (token refresh on 401, retries on 429/5xx); the answer, any status."""
        return self.hook.send(request, retry=self.retry)

    def defer_request(
        self,
        request: ApiRequest,
        *,
        method_name: str,
        poll: PollSpec | None = None,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | None = None,
    ) -> NoReturn:
        """Hand ``request`` to :class:`JwtBearerHttpTrigger`; resume in ``method_name`` with the event."""
        from airflow_jwt_provider.triggers.http import JwtBearerHttpTrigger  # aiohttp: only when deferring

        if not request.idempotent:
            self.log.warning(
                "%s is deferred: if the triggerer restarts while it runs, the request may be sent twice",
                request.describe(),
            )
        self.defer(
            trigger=JwtBearerHttpTrigger(
                jwt_bearer_conn_id=self.jwt_bearer_conn_id,
                request=request.to_dict(),
                retry=self.retry.to_dict(),
                poll=poll.to_dict() if poll else None,
            ),
            method_name=method_name,
            kwargs=kwargs,
            timeout=timeout,
        )

    def log_answer(self, response: requests.Response) -> None:
        if self.log_response:
            request = response.request
            self.log.info(
                "%s %s answered HTTP %s: %s",
                request.method if request else "",
                (response.url or "").split("?", 1)[0],
                response.status_code,
                body_excerpt(response),
            )


def call_with_context(func: Callable[..., Any], response: requests.Response, context: Context) -> Any:
    """``func(response, **<the context variables it names>)``, as ``HttpOperator`` calls its callables."""
    from airflow.sdk.bases.decorator import determine_kwargs  # at run time only: DAG parsing skips it

    return func(response, **determine_kwargs(func, [response], context))
