"""ApiRequest: the request description shared by the hook, the operator, the sensor and the trigger."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.request import ApiRequest


def test_pagination_changes_merge_dicts_and_replace_the_rest() -> None:
    first = ApiRequest(
        endpoint="items", query={"per_page": 5}, headers={"A": "1"}, token=TokenParameters(subject="bob")
    )
    second = first.with_changes({"query": {"page": 2}, "headers": {"B": "2"}})
    assert second == ApiRequest(
        endpoint="items",
        query={"per_page": 5, "page": 2},
        headers={"A": "1", "B": "2"},
        token=TokenParameters(subject="bob"),
    )
    assert first.with_changes({"endpoint": "https://next.example.com/p2", "query": None}).query is None
    assert ApiRequest(method="POST", data="x").with_changes({"json": {"a": 1}}) == ApiRequest(
        method="POST", json={"a": 1}
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"params": {}}, "unknown key"), (["page", 2], "must return a dict")],
)
def test_pagination_changes_are_checked(changes: object, message: str) -> None:
    with pytest.raises(JwtBearerConfigError, match=message):
        ApiRequest(endpoint="items").with_changes(changes)  # type: ignore[arg-type]


def test_request_normalises_method_and_get_data() -> None:
    assert ApiRequest(method="get", data={"page": 2}) == ApiRequest(method="GET", query={"page": 2})
    with pytest.raises(JwtBearerConfigError, match="json and data"):
        ApiRequest(method="POST", json={}, data="x")
    request = ApiRequest(endpoint="e", token=TokenParameters(claims={"c": [1, 2]}))
    assert request.to_dict() == {"endpoint": "e", "method": "GET", "token": {"claims": {"c": [1, 2]}}}
    assert ApiRequest.from_dict(request.to_dict()) == request
