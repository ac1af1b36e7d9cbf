"""JwtBearerHttpTrigger on its own: serialization, and its async run against the real local server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.serde import deserialize, serialize

from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.http.polling import PollSpec
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.wire import response_from_event
from airflow_jwt_provider.triggers.http import CLASSPATH, JwtBearerHttpTrigger
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, CLIENT_SECRET, STORE_PASSWORD, connection_extra, register

FAST = RetryPolicy(max_attempts=3, backoff=0.05, max_wait=5).to_dict()


@pytest.fixture
def conn_id(
    auth_server: LocalAuthorizationServer, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> str:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    return set_connection(
        "jwt_trigger",
        host=auth_server.api_url,
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        extra=connection_extra(store, auth_server),
    )


def trigger(conn_id: str, endpoint: str = "whoami", **kwargs: Any) -> JwtBearerHttpTrigger:
    request = kwargs.pop("request", {"endpoint": endpoint})
    return JwtBearerHttpTrigger(jwt_bearer_conn_id=conn_id, request=request, **kwargs)


async def first_event(t: JwtBearerHttpTrigger) -> dict[str, Any]:
    async for event in t.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def statuses(server: LocalAuthorizationServer, path: str) -> list[int]:
    return [r["status"] for r in server.api_requests if r["path"] == path]


# -------------------------------------------------------------------------- serialize


def test_serialize_round_trips_through_airflow_serde() -> None:
    original = trigger(
        "some_conn",
        request=ApiRequest(
            endpoint="items", query={"page": 2}, token=TokenParameters(subject="bob", claims={"tenant": "t1"})
        ).to_dict(),
        retry=FAST,
        poll=PollSpec(interval=2.5, expected_json={"state": "done"}).to_dict(),
    )
    classpath, kwargs = original.serialize()
    assert classpath == CLASSPATH
    assert set(kwargs) == {"jwt_bearer_conn_id", "request", "retry", "poll"}
    rebuilt = JwtBearerHttpTrigger(**deserialize(serialize(kwargs)))
    assert rebuilt.serialize() == original.serialize()
    assert rebuilt.request == ApiRequest(
        endpoint="items", query={"page": 2}, token=TokenParameters(subject="bob", claims={"tenant": "t1"})
    )


async def test_serialized_kwargs_hold_no_secret_even_after_a_run(conn_id: str, auth_server: Any) -> None:
    t = trigger(conn_id, "whoami")
    event = await first_event(t)
    assert event["status"] == "success"
    token = JwtBearerHook(conn_id).get_token().access_token  # the one the run cached and used
    text = repr(t.serialize()) + repr(serialize(t.serialize()[1]))
    for secret in (token, CLIENT_SECRET, STORE_PASSWORD):
        assert secret not in text
    assert "eyJ" not in text  # no JWT (assertion)
    assert token not in repr(event)  # the event carries the answer, not the request's header


# -------------------------------------------------------------------------- run: one request


async def test_run_sends_one_request_with_a_bearer_token(conn_id: str, auth_server: Any) -> None:
    event = await first_event(trigger(conn_id, request={"endpoint": "whoami", "token": {"subject": "carol"}}))

    response = response_from_event(event)
    assert response.status_code == 200
    assert response.json()["sub"] == "carol"
    assert response.request.method == "GET"
    assert response.url == f"{auth_server.api_url}/whoami"
    assert [(r["auth_scheme"], r["subject"]) for r in auth_server.api_requests] == [("Bearer", "carol")]


async def test_run_posts_json_and_query(conn_id: str, auth_server: Any) -> None:
    request = ApiRequest(endpoint="results", method="POST", json={"n": 1}, query={"tag": ["a", "b"], "skip": None})
    event = await first_event(trigger(conn_id, request=request.to_dict()))

    assert response_from_event(event).status_code == 201
    assert auth_server.results == [{"n": 1}]
    assert auth_server.api_requests[0]["query"] == {"tag": "a"}  # the server keeps the first of repeated keys


async def test_revoked_token_is_refreshed_once_and_the_request_resent(conn_id: str, auth_server: Any) -> None:
    JwtBearerHook(conn_id).get_token()  # cached, as from an earlier page
    auth_server.revoke_all_tokens()

    event = await first_event(trigger(conn_id))

    assert response_from_event(event).status_code == 200
    assert statuses(auth_server, "/api/whoami") == [401, 200]
    assert sum(r["success"] for r in auth_server.token_requests) == 2


async def test_a_second_401_is_returned_not_retried_again(conn_id: str, auth_server: Any) -> None:
    auth_server.fail_next("whoami", 401, count=2)
    event = await first_event(trigger(conn_id))

    assert response_from_event(event).status_code == 401
    assert statuses(auth_server, "/api/whoami") == [401, 401]


async def test_429_waits_for_retry_after(conn_id: str, auth_server: Any) -> None:
    auth_server.fail_next("whoami", 429, retry_after=1)
    started = time.monotonic()
    event = await first_event(trigger(conn_id, retry=FAST))

    assert response_from_event(event).status_code == 200
    assert time.monotonic() - started >= 1.0
    assert statuses(auth_server, "/api/whoami") == [429, 200]


@pytest.mark.parametrize(
    ("method", "status", "failures", "expected"),
    [
        ("GET", 500, 5, [500, 500, 500]),  # idempotent: retried, up to max_attempts
        ("POST", 503, 1, [503, 201]),  # not processed: retried whatever the method
        ("POST", 500, 1, [500]),  # may have been applied: not retried
    ],
)
async def test_5xx_retries_depend_on_the_method(
    conn_id: str, auth_server: Any, method: str, status: int, failures: int, expected: list[int]
) -> None:
    endpoint = "whoami" if method == "GET" else "results"
    auth_server.fail_next(endpoint, status, count=failures)
    request = ApiRequest(endpoint=endpoint, method=method, json={"n": 1} if method == "POST" else None)
    event = await first_event(trigger(conn_id, request=request.to_dict(), retry=FAST))

    assert response_from_event(event).status_code == expected[-1]
    assert statuses(auth_server, f"/api/{endpoint}") == expected


@pytest.mark.timing
async def test_retry_after_beyond_max_wait_returns_at_once(conn_id: str, auth_server: Any) -> None:
    auth_server.fail_next("whoami", 429, retry_after=3600)
    started = time.monotonic()
    event = await first_event(trigger(conn_id, retry=FAST))

    assert response_from_event(event).status_code == 429
    assert time.monotonic() - started < 1.0


async def test_token_endpoint_refusal_becomes_an_error_event(
    auth_server: Any, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> None:
    conn_id = set_connection(
        "jwt_unregistered",
        host=auth_server.api_url,
        login="nobody-registered-this",
        extra=connection_extra(keystores["default"], auth_server),
    )
    event = await first_event(trigger(conn_id))

    assert event["status"] == "error"
    assert event["error_type"] == "TokenEndpointError"
    assert STORE_PASSWORD not in event["message"]
    with pytest.raises(Exception, match="The trigger failed") as raised:
        response_from_event(event)
    assert type(raised.value).__name__ == "TokenEndpointError"
    assert not auth_server.api_requests


async def test_wrong_keystore_password_becomes_an_error_event_without_the_password(
    auth_server: Any, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> None:
    wrong = "wrong-password-987"
    conn_id = set_connection(
        "jwt_wrong_password",
        host=auth_server.api_url,
        login=CLIENT_ID,
        extra=connection_extra(keystores["default"], auth_server, keystore_password=wrong),
    )
    event = await first_event(trigger(conn_id))

    assert (event["status"], event["error_type"]) == ("error", "KeystoreError")
    assert wrong not in event["message"]


# -------------------------------------------------------------------------- run: polling


async def test_poll_until_expected_json(conn_id: str, auth_server: Any) -> None:
    poll = PollSpec(interval=0.05, expected_json={"state": "done"}).to_dict()
    event = await first_event(trigger(conn_id, "jobs/j1", poll=poll))

    assert response_from_event(event).json() == {"job_id": "j1", "state": "done", "polls": 3}
    assert statuses(auth_server, "/api/jobs/j1") == [200, 200, 200]


async def test_poll_with_an_importable_check(conn_id: str, auth_server: Any) -> None:
    auth_server.job_ready_after = 2
    poll = PollSpec(interval=0.05, response_check="tests.e2e.checks.job_is_done").to_dict()
    event = await first_event(trigger(conn_id, "jobs/j2", poll=poll))

    assert response_from_event(event).json()["polls"] == 2


async def test_poll_waits_through_waiting_statuses_and_stops_on_a_refusal(conn_id: str, auth_server: Any) -> None:
    auth_server.fail_next("jobs/j3", 404, count=2)
    poll = PollSpec(interval=0.05, expected_json={"state": "done"}).to_dict()
    event = await first_event(trigger(conn_id, "jobs/j3", poll=poll))
    assert statuses(auth_server, "/api/jobs/j3") == [404, 404, 200, 200, 200]
    assert response_from_event(event).json()["state"] == "done"

    auth_server.fail_next("jobs/j4", 403)
    event = await first_event(trigger(conn_id, "jobs/j4", poll=poll))
    assert response_from_event(event).status_code == 403  # the worker fails the task with it
    assert statuses(auth_server, "/api/jobs/j4") == [403]


# -------------------------------------------------------------------------- the event loop


@pytest.mark.timing
async def test_token_fetch_does_not_block_the_event_loop(conn_id: str, auth_server: Any) -> None:
    """The token endpoint answers 503 + Retry-After: 1 first: the token client sleeps a second.

    That sleep is in the synchronous token code; the loop must keep ticking meanwhile.
    """
    auth_server.fail_next("/oauth2/token", 503, retry_after=1)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    event = await first_event(trigger(conn_id))
    done.set()
    await ticking

    assert event["status"] == "success", event
    assert time.monotonic() - started >= 1.0  # the token client did wait
    assert max(gaps) < 0.5, f"the loop stalled for {max(gaps):.2f} s"


# -------------------------------------------------------------------------- DPoP in the triggerer


async def test_a_dpop_connection_proves_each_poll_and_its_payloads_hold_no_key_or_proof(
    auth_server: LocalAuthorizationServer, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> None:
    """The trigger rebuilds its credentials from the connection id: the key and proofs never enter its kwargs."""
    from airflow_jwt_provider.tokens.dpop import NONCES

    NONCES.clear()
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_api_nonce = True  # the API's nonce round trip happens on the event loop too
    conn_id = set_connection(
        "jwt_trigger_dpop",
        host=auth_server.api_url,
        login=CLIENT_ID,
        extra=connection_extra(store, auth_server, dpop=True),
    )
    t = trigger(conn_id, "whoami")
    event = await first_event(t)
    assert response_from_event(event).json()["sub"] == "alice"
    calls = [(r["status"], r["nonce_challenge"], r["dpop_verified"]) for r in auth_server.api_requests]
    assert calls == [(401, True, False), (200, False, True)]  # the nonce challenge, then the call with it
    token = JwtBearerHook(conn_id).get_token()
    assert token.dpop_key is not None
    from tests.e2e.conftest import JWT_PATTERN

    text = repr(t.serialize()) + repr(serialize(t.serialize()[1])) + repr(event)
    assert JWT_PATTERN.search(text) is None  # no proof, no assertion
    assert token.access_token not in text
    assert token.dpop_key.jkt not in text
    NONCES.clear()
