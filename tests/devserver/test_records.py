"""devserver.records: the loopback-only JSON view of the records, for a server in another process."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from devserver.server import JWT_BEARER_GRANT_TYPE, LocalAuthorizationServer
from tests.devserver.helpers import (
    BOX_SECRET,
    ENTRA_SECRET,
    SigningKey,
    api,
    assertion,
    client_assertion,
    devserver_process,
    grant,
)


def view(base_url: str, name: str) -> list[dict[str, Any]]:
    response = requests.get(f"{base_url}/_devserver/{name}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def test_counting_token_requests_of_a_server_in_another_process(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(keys["rsa"].store.certificate_pem)
    with devserver_process(tmp_path, "--client-id", "other-process", "--certificate", str(cert_file)) as devserver:
        assert view(devserver.url, "token-requests") == []
        now = int(time.time())
        claims = {"iss": "other-process", "sub": "dana", "aud": devserver.token_url, "iat": now, "exp": now + 60}
        for _ in range(2):
            token = jwt.encode({**claims, "jti": str(uuid.uuid4())}, keys["rsa"].private_key, algorithm="RS256")  # type: ignore[arg-type]
            response = requests.post(
                devserver.token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token}, timeout=10
            )
            assert response.status_code == 200, response.text
        access_token = response.json()["access_token"]
        whoami = requests.get(
            devserver.url + "/api/whoami", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )
        assert whoami.status_code == 200, whoami.text

        token_requests = view(devserver.url, "token-requests")
        assert len(token_requests) == 2
        assert [(r["client_id"], r["success"], r["issued_sub"]) for r in token_requests] == [
            ("other-process", True, "dana")
        ] * 2
        [api_request] = view(devserver.url, "api-requests")
        assert (api_request["path"], api_request["subject"], api_request["status"]) == ("/api/whoami", "dana", 200)

        reset = requests.post(devserver.url + "/_devserver/reset", timeout=10)
        assert reset.status_code == 200, reset.text
        assert view(devserver.url, "token-requests") == []
        assert view(devserver.url, "api-requests") == []
        # reset() keeps tokens: the API still knows the one issued before.
        assert requests.get(
            devserver.url + "/api/whoami", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        ).ok
        assert len(view(devserver.url, "api-requests")) == 1
    assert devserver.process.returncode == 0, devserver.stderr


def test_the_view_is_what_the_server_recorded(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 200
    assert grant(server, "not-a-jwt").status_code == 400
    api(server, "/whoami", None)
    assert view(server.url, "token-requests") == json.loads(json.dumps(server.token_requests))
    assert view(server.url, "api-requests") == json.loads(json.dumps(server.api_requests))
    assert len(server.token_requests) == 2
    assert len(server.api_requests) == 1


def test_records_hold_no_secret(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    """Every credential a client sends or receives, through every grant and client authentication."""
    wrong_secret = "wrong-secret-value-789"
    not_a_jwt = "not-a-jwt-but-a-secret-looking-value-246"
    sent: list[str] = [BOX_SECRET, ENTRA_SECRET, wrong_secret, not_a_jwt]
    received: list[str] = []

    def post(form: dict[str, str], auth: tuple[str, str] | None = None) -> requests.Response:
        return requests.post(server.token_url, data=form, auth=auth, timeout=10)

    def keep(response: requests.Response) -> None:
        assert response.status_code == 200, response.text
        received.append(response.json()["access_token"])

    box = assertion(server, keys["rsa"], iss="box", box_sub_type="enterprise")
    sent.append(box)
    refused = post({"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": box}, auth=("box", wrong_secret))
    assert refused.status_code == 401
    keep(post({"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": box, "client_id": "box", "client_secret": BOX_SECRET}))

    entra = client_assertion(server, keys["p256"], "entra-app")
    sent.append(entra["client_assertion"])
    keep(post({"grant_type": "client_credentials", **entra}))
    keep(post({"grant_type": "client_credentials"}, auth=("entra-app", ENTRA_SECRET)))

    user_token = server.issue_user_token("erin@contoso.com", "entra-app")
    sent.append(user_token)
    on_behalf_of = {"grant_type": JWT_BEARER_GRANT_TYPE, "requested_token_use": "on_behalf_of", "assertion": user_token}
    keep(post({**on_behalf_of, "client_id": "entra-app", "client_secret": ENTRA_SECRET}))

    assert post({"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": not_a_jwt}).status_code == 400
    for access_token in received:
        assert api(server, "/whoami", access_token).status_code == 200
    assert api(server, "/echo-headers", received[0]).status_code == 200
    # RFC 6750 §2.3 allows the token in the query; the server does not accept it, nor record it.
    in_query = api(server, "/whoami", None, params={"access_token": received[1], "page": "2"})
    assert in_query.status_code == 401

    token_records, api_records = view(server.url, "token-requests"), view(server.url, "api-requests")
    assert len(token_records) == 6
    assert [r["client_auth"] for r in token_records if r["success"]] == [
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
        "client_secret_post",
    ]
    assert len(api_records) == len(received) + 2
    assert api_records[-1]["query"] == {"access_token": "<redacted>", "page": "2"}
    text = json.dumps([token_records, api_records])
    signatures = [jwt_value.rsplit(".", 1)[1] for jwt_value in sent if jwt_value.count(".") == 2]
    assert len(signatures) == 3
    for secret in (*sent, *received, *signatures):
        assert secret not in text
    assert text == json.dumps([server.token_requests, server.api_requests])  # the lists themselves too


@pytest.mark.parametrize("remote_addr", ["192.0.2.10", "10.0.0.5", "2001:db8::1", "::ffff:192.0.2.10"])
def test_the_view_answers_loopback_clients_only(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], remote_addr: str
) -> None:
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 200
    client = server.app.test_client()
    for method, path in (("GET", "token-requests"), ("GET", "api-requests"), ("POST", "reset")):
        refused = client.open(f"/_devserver/{path}", method=method, environ_base={"REMOTE_ADDR": remote_addr})
        assert refused.status_code == 403
        assert refused.get_json()["error"] == "forbidden"
        assert "loopback" in refused.get_json()["error_description"]
    assert len(server.token_requests) == 1  # the refused reset did nothing
    for loopback in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        answered = client.get("/_devserver/token-requests", environ_base={"REMOTE_ADDR": loopback})
        assert answered.status_code == 200, loopback
        assert len(answered.get_json()) == 1


def test_the_view_is_not_subject_to_injected_failures(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    server.fail_next("/", 503)
    assert view(server.url, "token-requests") == []
    assert view(server.url, "api-requests") == []
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 503  # still due
    [record] = view(server.url, "token-requests")
    assert record["error"] == "injected_503"
