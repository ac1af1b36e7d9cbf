"""JwtBearerHttpOperator without a run: its arguments, templated fields and page handling.

(End to end, with ``dag.test()`` and the local server: ``tests/e2e/test_operator.py``.)
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.exceptions import ApiResponseError, JwtBearerConfigError
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.wire import build_response
from airflow_jwt_provider.operators.http import JwtBearerHttpOperator, ResponseCheckError
from airflow_jwt_provider.triggers.http import JwtBearerHttpTrigger


def answer(body: bytes = b'{"items": [1, 2], "next_page": 2}', status: int = 200) -> Any:
    return build_response(
        status=status,
        reason="OK",
        headers={"Content-Type": "application/json"},
        url="http://api.test/api/items?page=1",
        method="GET",
        body=body,
        encoding="utf-8",
    )


def test_request_fields_are_templated_and_params_is_left_to_airflow() -> None:
    fields = set(JwtBearerHttpOperator.template_fields)
    assert {"endpoint", "method", "query", "json", "data", "headers", "subject", "scope", "claims"} <= fields
    assert "jwt_bearer_conn_id" in fields
    assert "params" not in fields


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    op = JwtBearerHttpOperator(task_id="t", endpoint="items", retry={"max_attempts": 2})
    assert op.retry == RetryPolicy(max_attempts=2)
    assert op.deferrable is False  # [operators] default_deferrable is False here
    with pytest.raises(JwtBearerConfigError, match="unknown key"):
        JwtBearerHttpOperator(task_id="t2", retry={"tries": 2})


def test_process_page_filters_checks_and_paginates() -> None:
    op = JwtBearerHttpOperator(
        task_id="t",
        endpoint="items",
        query={"per_page": 2},
        response_filter=lambda response, ds: [ds, *response.json()["items"]],
        pagination_function=lambda response: {"query": {"page": response.json()["next_page"]}},
    )
    pages: list[Any] = []
    next_request = op.process_page({"ds": "2024-01-01"}, answer(), pages)  # type: ignore[arg-type]
    assert pages == [["2024-01-01", 1, 2]]
    assert next_request == ApiRequest(endpoint="items", query={"per_page": 2, "page": 2})
    assert op.result(pages) == pages


def test_failing_response_check_names_the_request() -> None:
    op = JwtBearerHttpOperator(task_id="t", endpoint="items", response_check=lambda response: False)
    with pytest.raises(
        ResponseCheckError, match=r"returned False for GET http://api.test/api/items \(HTTP 200, page 1\)"
    ):
        op.process_page({}, answer(), [])  # type: ignore[arg-type]
    with pytest.raises(ApiResponseError, match="HTTP 503"):
        op.process_page({}, answer(b"busy", 503), [])  # type: ignore[arg-type]


def test_deferrable_operator_defers_with_the_request_only() -> None:
    op = JwtBearerHttpOperator(
        task_id="t", endpoint="items", query={"page": 1}, subject="bob", retry=False, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, JwtBearerHttpTrigger)
    assert trigger.serialize()[1] == {
        "jwt_bearer_conn_id": "jwt_bearer_default",
        "request": {"endpoint": "items", "method": "GET", "query": {"page": 1}, "token": {"subject": "bob"}},
        "retry": RetryPolicy(max_attempts=1).to_dict(),
        "poll": None,
    }
    assert deferred.value.method_name == "execute_complete"


def test_sync_operator_with_list_and_object_claims(auth_server: Any, keystores: Any, set_connection: Any) -> None:
    from tests.conftest import CLIENT_ID, connection_extra, register

    store = keystores["default"]
    register(auth_server, store)
    set_connection("jwt_claims", login=CLIENT_ID, host=auth_server.api_url, extra=connection_extra(store, auth_server))
    op = JwtBearerHttpOperator(
        task_id="t",
        jwt_bearer_conn_id="jwt_claims",
        endpoint="whoami",
        claims={"roles": ["a", "b"], "ctx": {"tenant": "t1"}},
        deferrable=False,
    )
    assert op.execute({})["sub"] == "alice"  # type: ignore[arg-type]
    claims = [r["assertion_claims"] for r in auth_server.token_requests if r["success"]][-1]
    assert (claims["roles"], claims["ctx"]) == (["a", "b"], {"tenant": "t1"})
