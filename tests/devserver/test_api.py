"""devserver.api: the protected API, its bearer-token check and what it records."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devserver.server import LocalAuthorizationServer
from tests.devserver.helpers import SigningKey, api, token_for


@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", "Basic dXNlcjpwYXNz"])
def test_api_needs_a_token_it_issued(server: LocalAuthorizationServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(server.api_url + "/whoami", headers=headers, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert server.api_requests[-1]["auth_scheme"] == (authorization.split()[0] if authorization else None)


def test_access_tokens_expire_on_the_server_clock(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    access_token = token_for(server, keys)
    server.clock_offset = 3601
    response = api(server, "/whoami", access_token)
    assert response.status_code == 401
    assert "expired" in response.json()["error_description"]


def test_revoked_tokens_are_refused(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    assert api(server, "/whoami", access_token).status_code == 200
    server.revoke_all_tokens()
    response = api(server, "/whoami", access_token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["error"] == "invalid_token"
    fresh = token_for(server, keys)  # revocation is of existing tokens only
    assert api(server, "/whoami", fresh).status_code == 200


def test_items_pagination(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    seen: list[dict[str, Any]] = []
    page: int | None = 1
    pages = 0
    while page is not None:
        body = api(server, "/items", access_token, params={"page": page, "per_page": 5}).json()
        assert body["page"] == page
        assert body["total"] == 23
        seen += body["items"]
        page = body["next_page"]
        pages += 1
    assert pages == 5
    assert seen == [{"id": n, "name": f"item-{n}"} for n in range(1, 24)]
    assert server.api_requests[0]["query"] == {"page": "1", "per_page": "5"}
    assert api(server, "/items", access_token, params={"page": "x"}).status_code == 400


def test_post_results(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys, sub="bob")
    response = api(server, "/results", access_token, method="POST", json={"rows": 3})
    assert response.status_code == 201
    assert response.json() == {"received": {"rows": 3}, "sub": "bob"}
    assert server.results == [{"rows": 3}]


def test_job_polling(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    states = [api(server, "/jobs/j1", access_token).json()["state"] for _ in range(4)]
    assert states == ["running", "running", "done", "done"]
    server.job_ready_after = 1
    assert api(server, "/jobs/j2", access_token).json() == {"job_id": "j2", "state": "done", "polls": 1}


def test_echo_headers_hides_the_credential(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    response = api(server, "/echo-headers", access_token, headers={"X-Trace": "abc"})
    echoed = response.json()
    assert echoed["Authorization"] == "Bearer"
    assert echoed["X-Trace"] == "abc"
    assert access_token not in response.text


def test_an_export_changes_version_and_etag_and_answers_304_to_its_etag(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    access_token = token_for(server, keys)
    assert api(server, "/exports/daily", access_token).status_code == 404  # not published yet
    changed = requests.post(f"{server.url}/_devserver/exports/daily", json={"status": "ready"}, timeout=10)
    assert changed.json() == {"export_id": "daily", "version": 1, "status": "ready"}

    first = api(server, "/exports/daily", access_token)
    assert (first.status_code, first.headers["ETag"], first.json()["status"]) == (200, '"v1"', "ready")
    unchanged = api(server, "/exports/daily", access_token, headers={"If-None-Match": '"v0", "v1"'})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["ETag"]) == (304, b"", '"v1"')
    assert [r["if_none_match"] for r in server.api_requests[-2:]] == [None, '"v0", "v1"']

    server.exports.update("daily", rows=3)
    second = api(server, "/exports/daily", access_token, headers={"If-None-Match": '"v1"'})
    assert (second.status_code, second.headers["ETag"], second.json()["rows"]) == (200, '"v2"', 3)
    server.exports.update("daily", etag=False)
    assert "ETag" not in api(server, "/exports/daily", access_token, headers={"If-None-Match": '"v2"'}).headers
    assert api(server, "/exports/daily", None).status_code == 401  # protected like every /api route
    server.reset()
    assert api(server, "/exports/daily", access_token).status_code == 404  # reset forgets exports


def test_exports_are_changed_by_loopback_clients_only(server: LocalAuthorizationServer) -> None:
    client = server.app.test_client()
    refused = client.post(
        "/_devserver/exports/daily", json={"status": "ready"}, environ_base={"REMOTE_ADDR": "192.0.2.1"}
    )
    assert refused.status_code == 403
    assert server.exports.get("daily") is None
    assert client.post("/_devserver/exports/daily", data="not json").status_code == 400
