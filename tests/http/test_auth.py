"""JwtBearerAuth on a plain ``requests`` session against the local server's API: the bearer header and the 401 rule."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.http.auth import JwtBearerAuth
from devserver.server import LocalAuthorizationServer
from tests.conftest import CredentialsFactory


def statuses(server: LocalAuthorizationServer, path: str) -> list[int]:
    return [r["status"] for r in server.api_requests if r["path"] == path]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_the_bearer_header_is_added(credentials_for: CredentialsFactory, auth_server, http: requests.Session) -> None:
    credentials = credentials_for()
    auth = JwtBearerAuth(credentials)

    response = http.get(f"{auth_server.api_url}/echo-headers", auth=auth, timeout=10)

    assert response.status_code == 200
    assert response.json()["Authorization"] == "Bearer"  # the server echoes the scheme only
    assert response.request.headers["Authorization"] == credentials.get_token().authorization_header
    assert [(r["auth_scheme"], r["subject"]) for r in auth_server.api_requests] == [("Bearer", "alice")]
    assert auth.retries_on_401 == 0


def test_the_token_follows_the_parameters(credentials_for: CredentialsFactory, auth_server, http) -> None:
    credentials = credentials_for()
    bob = JwtBearerAuth(credentials, TokenParameters(subject="bob", scope="read"))
    answer = http.get(f"{auth_server.api_url}/whoami", auth=bob, timeout=10).json()
    assert (answer["sub"], answer["scope"]) == ("bob", "read")
    assert "bob" in repr(bob)


def test_a_revoked_token_is_refreshed_once_and_the_request_resent(
    credentials_for: CredentialsFactory, auth_server, http
) -> None:
    credentials = credentials_for()
    auth = JwtBearerAuth(credentials)
    rejected = credentials.get_token()
    auth_server.revoke_all_tokens()

    response = http.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    fresh = credentials.get_token()
    assert fresh.access_token != rejected.access_token
    assert response.request.headers["Authorization"] == fresh.authorization_header
    assert response.history[0].request.headers["Authorization"] == rejected.authorization_header
    assert statuses(auth_server, "/api/whoami") == [401, 200]
    assert len(auth_server.token_requests) == 2
    assert auth.retries_on_401 == 1


def test_a_json_body_is_resent_once(credentials_for: CredentialsFactory, auth_server, http) -> None:
    auth = JwtBearerAuth(credentials_for())
    auth.credentials.get_token()
    auth_server.revoke_all_tokens()

    response = http.post(f"{auth_server.api_url}/results", json={"n": 1}, auth=auth, timeout=10)

    assert response.status_code == 201
    assert response.json()["received"] == {"n": 1}
    assert auth_server.results == [{"n": 1}]
    assert statuses(auth_server, "/api/results") == [401, 201]


def test_a_second_401_is_returned_as_is(credentials_for: CredentialsFactory, auth_server, http) -> None:
    auth = JwtBearerAuth(credentials_for())
    auth_server.fail_next("whoami", 401, count=2)

    response = http.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10)

    assert response.status_code == 401
    assert len(response.history) == 1
    assert statuses(auth_server, "/api/whoami") == [401, 401]
    assert len(auth_server.token_requests) == 2  # the first token and one refresh, no loop
    assert auth.retries_on_401 == 1
    # the next request is sent normally with the token in the cache
    assert http.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10).status_code == 200
    assert len(auth_server.token_requests) == 2


def _generator_body() -> Iterator[bytes]:
    yield b'{"n": '
    yield b"2}"


@pytest.mark.parametrize("body_kind", ["generator", "file"])
def test_a_streamed_body_is_not_resent(
    credentials_for: CredentialsFactory, auth_server, http, tmp_path: Path, body_kind: str
) -> None:
    auth = JwtBearerAuth(credentials_for())
    auth.credentials.get_token()
    auth_server.revoke_all_tokens()
    body_file = tmp_path / "body.json"
    body_file.write_bytes(b'{"n": 2}')

    with body_file.open("rb") as handle:
        body = _generator_body() if body_kind == "generator" else handle
        response = http.post(
            f"{auth_server.api_url}/results",
            data=body,
            headers={"Content-Type": "application/json"},
            auth=auth,
            timeout=10,
        )

    assert response.status_code == 401
    assert response.history == []
    assert statuses(auth_server, "/api/results") == [401]
    assert auth_server.results == []
    assert len(auth_server.token_requests) == 1  # no refresh for a request that cannot be re-sent
    assert auth.retries_on_401 == 0


def test_threads_that_get_401_at_once_share_one_refresh(credentials_for: CredentialsFactory, auth_server) -> None:
    auth = JwtBearerAuth(credentials_for())
    auth.credentials.get_token()
    auth_server.revoke_all_tokens()
    callers = 6
    barrier = threading.Barrier(callers)
    codes: list[int] = []

    def caller() -> None:
        with requests.Session() as session:
            barrier.wait()
            codes.append(session.get(f"{auth_server.api_url}/whoami", auth=auth, timeout=10).status_code)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert codes == [200] * callers
    assert len(auth_server.token_requests) == 2  # the revoked token, then one refresh for every caller
