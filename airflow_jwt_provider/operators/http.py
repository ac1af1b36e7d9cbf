"""``JwtBearerHttpOperator``: call an API with a JWT-bearer token, page through it, keep the result.

Deferrable flow: one request per deferral. The trigger sends the request (token, 401
refresh, 429/5xx retries) and hands the answer back; the worker then runs the same code as
in synchronous mode (status check, ``response_check``, ``response_filter``,
``pagination_function``) and, if there is a next page, defers again. User callables
therefore never run in the triggerer (lambdas and DAG-file functions work), and what is
carried from one deferral to the next is the list of page *results* (parsed JSON or filter
output, in an XCom of the task), not raw responses; the trigger itself carries only the
connection id and the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from airflow.sdk import Context

from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.exceptions import JwtBearerError
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.response import check_status, response_body
from airflow_jwt_provider.http.wire import response_from_event
from airflow_jwt_provider.operators.base import JwtBearerRequestOperator, call_with_context

__all__ = ["PAGES_XCOM_KEY", "JwtBearerHttpOperator", "ResponseCheckError", "RetryPolicy"]

#: XCom that carries the results of the pages already fetched from one deferral to the next.
PAGES_XCOM_KEY = "jwt_bearer_pages"


class ResponseCheckError(JwtBearerError):
    """``response_check`` returned a false value: the answer is not what the task expects."""


class JwtBearerHttpOperator(JwtBearerRequestOperator):
    """Call an API of a ``jwt_bearer`` connection; push the answer's JSON (or filtered result) to XCom.

    Request parameters (all templated), ``retry``, ``accepted_statuses``, ``log_response`` and
    ``deferrable``: see :class:`~airflow_jwt_provider.operators.base.JwtBearerRequestOperator`.

    :param response_check: ``check(response, **context) -> bool``, called for every page; a
        false value fails the task with :class:`ResponseCheckError`.
    :param response_filter: ``filter(response, **context) -> value``: what to keep of each page
        instead of its parsed JSON (text when the answer is not JSON).
    :param pagination_function: ``paginate(response) -> dict | None``: the changes for the next
        request (any of ``endpoint``, ``query``, ``json``, ``data``, ``headers``; dicts merge
        into the operator's own, other values replace them), or ``None`` to stop. With it,
        the XCom is the list of page results.

    In deferrable mode every page is one deferral; the callables run on the worker.
    """

    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        response_check: Callable[..., bool] | None = None,
        response_filter: Callable[..., Any] | None = None,
        pagination_function: Callable[[requests.Response], dict[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.response_check = response_check
        self.response_filter = response_filter
        self.pagination_function = pagination_function

    def execute(self, context: Context) -> Any:
        request = self.api_request()
        if self.deferrable:
            if self.pagination_function is not None:
                context["ti"].xcom_push(key=PAGES_XCOM_KEY, value=[])
            self.defer_request(request, method_name="execute_complete")
        pages: list[Any] = []
        next_request: ApiRequest | None = request
        while next_request is not None:
            next_request = self.process_page(context, self.send(next_request), pages)
        return self.result(pages)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger fired: judge this page, then defer for the next one or finish.

        The results of the pages before this one are in the :data:`PAGES_XCOM_KEY` XCom of this
        task instance (kept across deferrals, cleared by Airflow when a new try starts) rather
        than in ``defer(kwargs=...)``, which ``dag.test()`` drops when the trigger fires.
        """
        ti = context["ti"]
        pages: list[Any] = []
        if self.pagination_function is not None:
            pages = list(ti.xcom_pull(task_ids=ti.task_id, key=PAGES_XCOM_KEY, map_indexes=ti.map_index) or [])
        next_request = self.process_page(context, response_from_event(event), pages)
        if next_request is not None:
            ti.xcom_push(key=PAGES_XCOM_KEY, value=pages)
            self.defer_request(next_request, method_name="execute_complete")
        return self.result(pages)

    def process_page(self, context: Context, response: requests.Response, pages: list[Any]) -> ApiRequest | None:
        """Check one answer, append what to keep of it to ``pages``; the next page's request or ``None``."""
        self.log_answer(response)
        check_status(response, self.accepted_statuses)
        if self.response_check is not None and not call_with_context(self.response_check, response, context):
            request = response.request
            raise ResponseCheckError(
                f"response_check returned False for {request.method if request else ''} "
                f"{(response.url or '').split('?', 1)[0]} (HTTP {response.status_code}, page {len(pages) + 1})"
            )
        pages.append(
            call_with_context(self.response_filter, response, context)
            if self.response_filter is not None
            else response_body(response)
        )
        if self.pagination_function is None:
            return None
        changes = self.pagination_function(response)
        return self.api_request().with_changes(changes) if changes else None

    def result(self, pages: list[Any]) -> Any:
        """The XCom value: the list of pages with pagination, else the one page."""
        return pages if self.pagination_function is not None else pages[0]
