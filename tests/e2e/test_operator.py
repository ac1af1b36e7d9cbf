"""The operator end to end, synchronous and deferrable: pagination, token revocation, retries, refusals."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

MODES = ["sync", "deferred"]
ALL_IDS = list(range(1, 24))


def items_calls(server: Any) -> list[tuple[str | None, int]]:
    """(page asked, status) of every /api/items request, in order."""
    return [(r["query"].get("page"), r["status"]) for r in server.api_requests if r["path"] == "/api/items"]


def successful_token_requests(server: Any) -> int:
    return sum(1 for r in server.token_requests if r["success"])


def flatten(pages: list[list[int]]) -> list[int]:
    return [i for page in pages for i in page]


@pytest.mark.parametrize("mode", MODES)
def test_pagination_collects_every_page(mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    result = run_dag(f"jwt_e2e_pages_{mode}")

    assert result.states == {"list_items": "success"}, result.output[-3000:]
    assert result.xcom("list_items") == [
        [1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10],
        [11, 12, 13, 14, 15],
        [16, 17, 18, 19, 20],
        [21, 22, 23],
    ]
    assert items_calls(auth_server) == [(None, 200), ("2", 200), ("3", 200), ("4", 200), ("5", 200)]
    assert all(r["query"]["per_page"] == "5" for r in auth_server.api_requests)  # merged into every page
    assert successful_token_requests(auth_server) == 1


@pytest.mark.parametrize("mode", MODES)
def test_token_revoked_mid_run_is_refreshed_once(
    mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any
) -> None:
    """The server revokes every token after page 2: page 3 gets 401, one new token, one re-send."""
    jwt_connection()

    def revoke_after_page_2(dag: Any) -> None:
        task = dag.task_dict["list_items"]
        paginate = task.pagination_function

        def revoking(response: Any) -> Any:
            if response.json()["page"] == 2:
                auth_server.revoke_all_tokens()
            return paginate(response)

        task.pagination_function = revoking

    result = run_dag(f"jwt_e2e_pages_{mode}", prepare=revoke_after_page_2)

    assert result.states == {"list_items": "success"}, result.output[-3000:]
    assert flatten(result.xcom("list_items")) == ALL_IDS
    assert items_calls(auth_server) == [(None, 200), ("2", 200), ("3", 401), ("3", 200), ("4", 200), ("5", 200)]
    assert successful_token_requests(auth_server) == 2


@pytest.mark.parametrize("mode", MODES)
def test_429_waits_for_retry_after(mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any) -> None:
    jwt_connection()
    auth_server.fail_next("items", 429, retry_after=1)
    result = run_dag(f"jwt_e2e_pages_{mode}")

    assert result.states == {"list_items": "success"}, result.output[-3000:]
    assert flatten(result.xcom("list_items")) == ALL_IDS
    assert items_calls(auth_server)[:3] == [(None, 429), (None, 200), ("2", 200)]
    assert "answered HTTP 429; retrying in 1.0 s (attempt 2 of 3)" in result.output


@pytest.mark.parametrize("mode", MODES)
def test_503_without_retry_after_backs_off_exponentially(
    mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any
) -> None:
    jwt_connection()
    auth_server.fail_next("items", 503, count=2)
    result = run_dag(f"jwt_e2e_pages_{mode}")

    assert result.states == {"list_items": "success"}, result.output[-3000:]
    assert items_calls(auth_server)[:3] == [(None, 503), (None, 503), (None, 200)]
    assert "answered HTTP 503; retrying in 0.2 s (attempt 2 of 3)" in result.output
    assert "answered HTTP 503; retrying in 0.4 s (attempt 3 of 3)" in result.output


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("failure", "expected_calls"),
    [
        pytest.param({"status": 503, "count": 5}, [(None, 503)] * 3, id="attempts-exhausted"),
        pytest.param({"status": 429, "retry_after": 120}, [(None, 429)], id="retry-after-beyond-max-wait"),
    ],
)
def test_retries_are_bounded(
    mode: str, failure: dict[str, Any], expected_calls: list[Any], run_dag: Any, jwt_connection: Any, auth_server: Any
) -> None:
    jwt_connection()
    auth_server.fail_next("items", **failure)
    result = run_dag(f"jwt_e2e_pages_{mode}")

    assert result.states == {"list_items": "failed"}
    assert items_calls(auth_server) == expected_calls
    assert f"GET {auth_server.api_url}/items failed: HTTP {failure['status']}" in result.output


@pytest.mark.parametrize("mode", MODES)
def test_refused_answers_fail_the_task_with_a_clear_message(
    mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any, no_secret_in: Any
) -> None:
    conn = jwt_connection()
    result = run_dag(f"jwt_e2e_refusals_{mode}")

    assert result.states == dict.fromkeys(["check_fails", "bad_request", "unexpected_status"], "failed")
    api = auth_server.api_url
    assert f"ResponseCheckError: response_check returned False for GET {api}/whoami (HTTP 200, page 1)" in result.output
    assert f"ApiResponseError: GET {api}/items failed: HTTP 400 BAD REQUEST" in result.output
    assert (
        f"ApiResponseError: POST {api}/results answered HTTP 201 CREATED, "
        "which is not one of the accepted statuses [200]" in result.output
    )
    no_secret_in(result.output, [conn["extra"]["keystore_password"]])
