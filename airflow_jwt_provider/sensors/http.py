"""``JwtBearerHttpSensor``: wait until an API of a ``jwt_bearer`` connection says a thing is ready.

Poke and reschedule modes poke from the worker. Deferrable mode hands the whole wait to
:class:`~airflow_jwt_provider.triggers.http.JwtBearerHttpTrigger`, which polls every
``poke_interval`` from the triggerer and fires once the condition holds: the worker is
used twice (defer, then finish), however long the wait. The condition must then be
evaluable in the triggerer, which runs no DAG file: ``expected_json`` always is; a
``response_check`` function must be importable (an installed module or the plugins folder).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

import requests
from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from airflow_jwt_provider.common.imports import import_callable
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.http.polling import PollOutcome, PollSpec, callable_path
from airflow_jwt_provider.http.response import check_status, response_body
from airflow_jwt_provider.http.wire import response_from_event
from airflow_jwt_provider.operators.base import REQUEST_TEMPLATE_FIELDS, JwtBearerRequestOperator, call_with_context

__all__ = ["JwtBearerHttpSensor", "RetryPolicy"]


class JwtBearerHttpSensor(JwtBearerRequestOperator, BaseSensorOperator):
    """Poke an endpoint until its answer satisfies the condition; push that answer's JSON to XCom.

    Request parameters (all templated), ``retry``, ``accepted_statuses``, ``log_response`` and
    ``deferrable``: see :class:`~airflow_jwt_provider.operators.base.JwtBearerRequestOperator`;
    ``poke_interval``, ``timeout``, ``mode``...: see ``BaseSensorOperator``.

    The condition, checked on each answer:

    * a status in ``waiting_statuses`` (default 404: "not there yet") means not yet;
    * any other status that is not accepted fails the task (a 401 after the token refresh,
      a 500 after the retries...);
    * otherwise ``expected_json`` (``{"state": "done"}``; ``"a.b"`` reaches into objects) must
      match the answer's JSON, and ``response_check(response, **context)`` must return true.
      In deferrable mode ``response_check`` is called with the response only, in the
      triggerer, so it must be importable there (or given as a dotted path).
    """

    template_fields: Sequence[str] = (*REQUEST_TEMPLATE_FIELDS, "expected_json")
    ui_color = "#e1f5fe"

    def __init__(
        self,
        *,
        response_check: Callable[..., bool] | str | None = None,
        expected_json: Mapping[str, Any] | None = None,
        waiting_statuses: Collection[int] = (404,),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.response_check = response_check
        self.expected_json = expected_json
        self.waiting_statuses = tuple(waiting_statuses)

    def poll_spec(self, response_check: str | None = None) -> PollSpec:
        return PollSpec(
            interval=self.poke_interval,
            waiting_statuses=self.waiting_statuses,
            accepted_statuses=self.accepted_statuses,
            expected_json=self.expected_json,
            response_check=response_check,
        )

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            check = callable_path(self.response_check) if self.response_check is not None else None
            self.defer_request(
                self.api_request(),
                method_name="execute_complete",
                poll=self.poll_spec(check),
                timeout=timedelta(seconds=self.timeout) if self.timeout else None,
            )
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue:
        response = self.send(self.api_request())
        self.log_answer(response)
        check = None
        if self.response_check is not None:
            check = self._context_check(self.response_check, context)
        outcome = self.poll_spec().outcome(response, check)
        if outcome is PollOutcome.FAIL:
            check_status(response, self.accepted_statuses)
        done = outcome is PollOutcome.DONE
        return PokeReturnValue(is_done=done, xcom_value=response_body(response) if done else None)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The trigger saw the condition hold (or a status that ends the wait, which fails here)."""
        response = response_from_event(event)
        self.log_answer(response)
        check_status(response, self.accepted_statuses)
        return response_body(response)

    @staticmethod
    def _context_check(check: Callable[..., Any] | str, context: Context) -> Callable[[requests.Response], Any]:
        if isinstance(check, str):
            check = import_callable(check)
        func = check
        return lambda response: call_with_context(func, response, context)
