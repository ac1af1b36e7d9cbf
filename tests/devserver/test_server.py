"""devserver.server: a real authorization server that accepts what it should and nothing else.

Assertions are signed here with PyJWT directly (not with airflow_jwt_provider), so these tests
check the server on its own; the provider's tests then rely on it. Every refusal test also
checks the error code, so a server that refused everything would fail the positive tests and
one that accepted everything would fail the negative ones.
"""

from __future__ import annotations

import base64
import email.utils
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from devserver.keystores import Keystore, have_keytool, make_keystore, make_pem_key
from devserver.server import (
    CLIENT_ASSERTION_TYPE,
    JWT_BEARER_GRANT_TYPE,
    LocalAuthorizationServer,
    load_client_key_material,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BOX_SECRET = "box-secret-value-123"
ENTRA_SECRET = "entra-secret-value-456"
KEY_SPECS: dict[str, dict[str, Any]] = {
    "rsa": {"key_algorithm": "RSA"},
    "other_rsa": {"key_algorithm": "RSA"},
    "p256": {"key_algorithm": "EC", "curve": "secp256r1"},
    "p384": {"key_algorithm": "EC", "curve": "secp384r1"},
    "p521": {"key_algorithm": "EC", "curve": "secp521r1"},
    "ed25519": {"key_algorithm": "Ed25519"},
}
#: algorithm -> key it signs with (the client of that name is registered with that key).
ALGORITHMS = {
    "RS256": "rsa",
    "RS384": "rsa",
    "RS512": "rsa",
    "PS256": "rsa",
    "PS384": "rsa",
    "PS512": "rsa",
    "ES256": "p256",
    "ES384": "p384",
    "ES512": "p521",
    "EdDSA": "ed25519",
}


class SigningKey:
    def __init__(self, store: Keystore) -> None:
        self.store = store
        self.private_key = serialization.load_pem_private_key(store.path.read_bytes(), None)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigningKey]:
    directory = tmp_path_factory.mktemp("server-keys")
    return {name: SigningKey(make_pem_key(directory, name, **spec)) for name, spec in KEY_SPECS.items()}


@pytest.fixture(scope="session")
def server(keys: dict[str, SigningKey]) -> Iterator[LocalAuthorizationServer]:
    srv = LocalAuthorizationServer()
    for name, key in keys.items():
        srv.register_client(f"client-{name}", certificate_pem=key.store.certificate_pem)
    srv.register_client("client-pubkey", public_key_pem=keys["rsa"].store.public_key_pem())
    srv.register_client(
        "box",
        certificate_pem=keys["rsa"].store.certificate_pem,
        client_secret=BOX_SECRET,
        required_claims={"box_sub_type": ("enterprise", "user")},
    )
    srv.register_client("entra-app", certificate_pem=keys["p256"].store.certificate_pem, client_secret=ENTRA_SECRET)
    srv.register_client(
        "salesforce", certificate_pem=keys["rsa"].store.certificate_pem, extra_audiences=("https://login.example.com",)
    )
    with srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: LocalAuthorizationServer) -> None:
    server.reset()


# --------------------------------------------------------------------------- helpers


def assertion(
    server: LocalAuthorizationServer,
    key: SigningKey,
    *,
    iss: str,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
    now: float | None = None,
    **claims: Any,
) -> str:
    """A JWT-bearer assertion with sane defaults; a claim given as None is left out."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": iss,
        "sub": "alice",
        "aud": server.token_url,
        "iat": issued,
        "exp": issued + 60,
        "jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key.private_key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def grant(server: LocalAuthorizationServer, token: str, **form: str) -> requests.Response:
    return requests.post(
        server.token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token, **form}, timeout=10
    )


def api(server: LocalAuthorizationServer, path: str, access_token: str | None, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    headers.update(kw.pop("headers", {}))
    return requests.request(kw.pop("method", "GET"), server.api_url + path, headers=headers, timeout=10, **kw)


def refused(response: requests.Response, error: str, description: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert description.lower() in body["error_description"].lower(), body


def token_for(server: LocalAuthorizationServer, keys: dict[str, SigningKey], **claims: Any) -> str:
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa", **claims))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


# --------------------------------------------------------------------------- JWT-bearer grant


def test_good_assertion_gets_a_token_that_works(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa", sub="alice@example.com"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    whoami = api(server, "/whoami", body["access_token"])
    assert whoami.status_code == 200
    assert whoami.json() == {"sub": "alice@example.com", "client_id": "client-rsa", "scope": None}

    [record] = server.token_requests
    assert record["success"] is True
    assert record["grant_type"] == JWT_BEARER_GRANT_TYPE
    assert record["client_id"] == "client-rsa"
    assert record["assertion_verified"] is True
    assert record["assertion_header"]["alg"] == "RS256"
    assert record["assertion_claims"]["sub"] == "alice@example.com"
    assert record["form_fields"] == ["assertion", "grant_type"]
    assert record["client_secret_sent"] is False
    [api_record] = server.api_requests
    assert api_record["subject"] == "alice@example.com"
    assert api_record["auth_scheme"] == "Bearer"
    assert body["access_token"] not in repr(server.api_requests)


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_every_client_algorithm_is_accepted(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], alg: str
) -> None:
    key_name = ALGORITHMS[alg]
    response = grant(server, assertion(server, keys[key_name], iss=f"client-{key_name}", alg=alg))
    assert response.status_code == 200, response.text
    assert server.token_requests[-1]["assertion_header"]["alg"] == alg


def test_public_key_registration_works_like_a_certificate(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    response = grant(server, assertion(server, keys["rsa"], iss="client-pubkey", alg="PS256"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("wrong_key", "signature"),
        ("wrong_aud", "aud"),
        ("aud_of_another_server", "aud"),
        ("expired", "expired"),
        ("lifetime_too_long", "lifetime"),
        ("exp_too_far_ahead", "future"),
        ("issued_in_the_future", "future"),
        ("missing_iat", "iat"),
        ("missing_jti", "jti"),
        ("missing_exp", "exp"),
        ("unknown_issuer", "does not exist"),
        ("hmac_with_public_key", "not allowed"),
        ("not_a_jwt", "invalid jwt"),
        ("x5t_s256_mismatch", "x5t#S256"),
    ],
)
def test_bad_assertions_are_refused(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], case: str, description: str
) -> None:
    now = time.time()
    rsa = keys["rsa"]
    make = {
        "wrong_key": lambda: assertion(server, keys["other_rsa"], iss="client-rsa"),
        "wrong_aud": lambda: assertion(server, rsa, iss="client-rsa", aud="https://login.example.com/oauth2/token"),
        "aud_of_another_server": lambda: assertion(
            server, rsa, iss="client-rsa", aud=server.token_url.replace("/oauth2/token", "/token")
        ),
        "expired": lambda: assertion(server, rsa, iss="client-rsa", iat=int(now) - 250, exp=int(now) - 100),
        "lifetime_too_long": lambda: assertion(server, rsa, iss="client-rsa", exp=int(now) + 301),
        "exp_too_far_ahead": lambda: assertion(server, rsa, iss="client-rsa", iat=int(now) + 400, exp=int(now) + 450),
        "issued_in_the_future": lambda: assertion(server, rsa, iss="client-rsa", now=now + 120),
        "missing_iat": lambda: assertion(server, rsa, iss="client-rsa", iat=None),
        "missing_jti": lambda: assertion(server, rsa, iss="client-rsa", jti=None),
        "missing_exp": lambda: assertion(server, rsa, iss="client-rsa", exp=None),
        "unknown_issuer": lambda: assertion(server, rsa, iss="nobody"),
        "hmac_with_public_key": lambda: jwt.encode(
            {"iss": "client-rsa", "aud": server.token_url, "iat": int(now), "exp": int(now) + 60, "jti": "x"},
            "a-shared-secret-of-32-bytes-long!",
            algorithm="HS256",
        ),
        "not_a_jwt": lambda: "not-a-jwt",
        "x5t_s256_mismatch": lambda: assertion(
            server, rsa, iss="client-rsa", headers={"x5t#S256": keys["other_rsa"].store.certificate_thumbprint()}
        ),
    }[case]
    response = grant(server, make())
    refused(response, "invalid_grant", description)
    [record] = server.token_requests
    assert record["success"] is False
    assert record["error"] == "invalid_grant"
    assert record["assertion_verified"] is False


def test_matching_thumbprints_are_accepted(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    store = keys["rsa"].store
    headers = {"x5t#S256": store.certificate_thumbprint(), "x5t": store.certificate_thumbprint("sha1"), "kid": "k1"}
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa", headers=headers))
    assert response.status_code == 200, response.text
    assert server.token_requests[0]["assertion_header"]["x5t#S256"] == store.certificate_thumbprint()


def test_extra_audience(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    ok = grant(server, assertion(server, keys["rsa"], iss="salesforce", aud="https://login.example.com"))
    assert ok.status_code == 200, ok.text
    # The extra audience is per client, not global.
    other = grant(server, assertion(server, keys["rsa"], iss="client-rsa", aud="https://login.example.com"))
    refused(other, "invalid_grant", "aud")


def test_replayed_jti_is_refused(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    token = assertion(server, keys["rsa"], iss="client-rsa")
    assert grant(server, token).status_code == 200
    refused(grant(server, token), "invalid_grant", "jti already used")


def test_concurrent_replay_gets_exactly_one_token(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    token = assertion(server, keys["rsa"], iss="client-rsa")
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(grant(server, token).status_code)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400, 400, 400]


def test_required_claims_and_client_secret(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    secret = {"client_id": "box", "client_secret": BOX_SECRET}
    missing = grant(server, assertion(server, keys["rsa"], iss="box"), **secret)
    refused(missing, "invalid_grant", "box_sub_type")
    wrong = grant(server, assertion(server, keys["rsa"], iss="box", box_sub_type="group"), **secret)
    refused(wrong, "invalid_grant", "box_sub_type")
    ok = grant(server, assertion(server, keys["rsa"], iss="box", box_sub_type="enterprise"), **secret)
    assert ok.status_code == 200, ok.text
    record = server.token_requests[-1]
    assert record["client_secret_sent"] is True
    assert record["client_secret_via"] == "post"
    assert record["client_auth"] == "client_secret_post"
    assert BOX_SECRET not in repr(server.token_requests)


def test_wrong_or_missing_client_secret_is_refused(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    token = assertion(server, keys["rsa"], iss="box", box_sub_type="user")
    refused(grant(server, token, client_id="box", client_secret="wrong"), "invalid_client", "client secret", 401)
    basic = requests.post(
        server.token_url,
        data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token},
        auth=("box", "wrong"),
        timeout=10,
    )
    refused(basic, "invalid_client", "client secret", 401)
    assert server.token_requests[-1]["client_secret_via"] == "basic"
    refused(grant(server, token), "invalid_client", "cannot authenticate", 401)
    # None of those consumed the jti: the same assertion still works with the right secret.
    ok = requests.post(
        server.token_url,
        data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token},
        auth=("box", BOX_SECRET),
        timeout=10,
    )
    assert ok.status_code == 200, ok.text
    assert server.token_requests[-1]["client_auth"] == "client_secret_basic"
    assert "wrong" not in repr(server.token_requests)


def test_scope_from_form_or_from_the_assertion(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    form_scope = grant(server, assertion(server, keys["rsa"], iss="client-rsa"), scope="read write")
    assert form_scope.json()["scope"] == "read write"
    claim_scope = grant(server, assertion(server, keys["rsa"], iss="client-rsa", scope="https://example/auth/x"))
    assert claim_scope.json()["scope"] == "https://example/auth/x"
    assert server.token_requests[0]["scope"] == "read write"
    assert server.token_requests[1]["scope"] is None
    assert server.token_requests[1]["assertion_scope"] == "https://example/auth/x"
    whoami = api(server, "/whoami", claim_scope.json()["access_token"])
    assert whoami.json()["scope"] == "https://example/auth/x"


# --------------------------------------------------------------------------- Entra flows


def client_assertion(
    server: LocalAuthorizationServer, key: SigningKey, client_id: str, alg: str = "ES256", **claims: Any
) -> dict[str, str]:
    """private_key_jwt client authentication fields (iss = sub = client_id, Entra's x5t#S256)."""
    headers = {"x5t#S256": key.store.certificate_thumbprint()}
    token = assertion(server, key, alg=alg, headers=headers, **{"iss": client_id, "sub": client_id, **claims})
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": token}


def test_client_credentials_with_private_key_jwt(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    form = {"grant_type": "client_credentials", "scope": "https://graph/.default"}
    auth = client_assertion(server, keys["p256"], "entra-app")
    response = requests.post(server.token_url, data={**form, **auth}, timeout=10)
    assert response.status_code == 200, response.text
    record = server.token_requests[-1]
    assert record["client_auth"] == "private_key_jwt"
    assert record["client_assertion_verified"] is True
    assert record["client_assertion_header"]["x5t#S256"] == keys["p256"].store.certificate_thumbprint()
    assert record["issued_sub"] == "entra-app"
    assert api(server, "/whoami", response.json()["access_token"]).json()["sub"] == "entra-app"

    replay = requests.post(server.token_url, data={**form, **auth}, timeout=10)
    refused(replay, "invalid_client", "jti already used", 401)
    wrong_sub = client_assertion(server, keys["p256"], "entra-app", sub="someone-else")
    refused(requests.post(server.token_url, data={**form, **wrong_sub}, timeout=10), "invalid_client", "", 401)
    wrong_aud = client_assertion(server, keys["p256"], "entra-app", aud="https://login.example.com/token")
    refused(requests.post(server.token_url, data={**form, **wrong_aud}, timeout=10), "invalid_client", "aud", 401)
    wrong_key = client_assertion(server, keys["p384"], "entra-app", alg="ES384")  # signed with another key
    refused(requests.post(server.token_url, data={**form, **wrong_key}, timeout=10), "invalid_client", "", 401)


def test_client_credentials_with_a_secret(server: LocalAuthorizationServer) -> None:
    ok = requests.post(
        server.token_url, data={"grant_type": "client_credentials"}, auth=("entra-app", ENTRA_SECRET), timeout=10
    )
    assert ok.status_code == 200, ok.text
    none = requests.post(
        server.token_url, data={"grant_type": "client_credentials", "client_id": "entra-app"}, timeout=10
    )
    refused(none, "invalid_client", "", 401)


def test_on_behalf_of(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    user_token = server.issue_user_token("alice@contoso.com", "entra-app")
    form = {
        "grant_type": JWT_BEARER_GRANT_TYPE,
        "requested_token_use": "on_behalf_of",
        "assertion": user_token,
        "scope": "https://downstream/.default",
    }
    with_secret = requests.post(
        server.token_url, data={**form, "client_id": "entra-app", "client_secret": ENTRA_SECRET}, timeout=10
    )
    assert with_secret.status_code == 200, with_secret.text
    whoami = api(server, "/whoami", with_secret.json()["access_token"]).json()
    assert whoami == {"sub": "alice@contoso.com", "client_id": "entra-app", "scope": "https://downstream/.default"}

    with_key = requests.post(
        server.token_url, data={**form, **client_assertion(server, keys["p256"], "entra-app")}, timeout=10
    )
    assert with_key.status_code == 200, with_key.text
    assert server.token_requests[-1]["client_auth"] == "private_key_jwt"

    other_audience = server.issue_user_token("alice@contoso.com", "another-app")
    refused(
        requests.post(
            server.token_url,
            data={**form, "assertion": other_audience, "client_id": "entra-app", "client_secret": ENTRA_SECRET},
            timeout=10,
        ),
        "invalid_grant",
        "aud",
    )
    forged = assertion(server, keys["p256"], iss=server.issuer, aud="entra-app", alg="ES256")
    refused(
        requests.post(
            server.token_url,
            data={**form, "assertion": forged, "client_id": "entra-app", "client_secret": ENTRA_SECRET},
            timeout=10,
        ),
        "invalid_grant",
        "not a user token",
    )
    refused(requests.post(server.token_url, data=form, timeout=10), "invalid_client", "", 401)


# --------------------------------------------------------------------------- knobs


def test_clock_offset_shifts_date_and_validation(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.clock_offset = -3600
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa"))
    refused(response, "invalid_grant", "future")
    server_date = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
    assert abs(server_date - (time.time() - 3600)) < 5
    ok = grant(server, assertion(server, keys["rsa"], iss="client-rsa", now=server_date))
    assert ok.status_code == 200, ok.text


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


@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", "Basic dXNlcjpwYXNz"])
def test_api_needs_a_token_it_issued(server: LocalAuthorizationServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(server.api_url + "/whoami", headers=headers, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert server.api_requests[-1]["auth_scheme"] == (authorization.split()[0] if authorization else None)


def test_omit_expires_in_answers_like_salesforce(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.omit_expires_in = True
    body = grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json()
    assert "expires_in" not in body
    assert body["instance_url"] == server.url
    server.token_lifetime = 120
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json().get("expires_in") is None
    server.omit_expires_in = False
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json()["expires_in"] == 120


def test_html_error_next(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.html_error_next = True
    proxy = grant(server, assertion(server, keys["rsa"], iss="client-rsa"))
    assert proxy.status_code == 502
    assert proxy.headers["Content-Type"].startswith("text/html")
    assert "<html>" in proxy.text
    assert "Date" in proxy.headers
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 200
    assert [r["status"] for r in server.token_requests] == [502, 200]


def test_fail_next(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    server.fail_next("items", 429, retry_after=2)
    limited = api(server, "/items", access_token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert api(server, "/whoami", access_token).status_code == 200  # other paths unaffected
    assert api(server, "/items", access_token).status_code == 200
    server.fail_next("/api/", 503, count=2)
    assert [api(server, "/whoami", access_token).status_code for _ in range(3)] == [503, 503, 200]


# --------------------------------------------------------------------------- API


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


def test_errors_are_rfc6749_json_with_a_date(server: LocalAuthorizationServer) -> None:
    response = requests.post(server.token_url, data={"grant_type": "password"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["Content-Type"] == "application/json"
    for resp in (response, requests.get(server.url + "/nowhere", timeout=10)):
        date = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
        assert abs(date - time.time()) < 5
        assert resp.raw.headers.getlist("Date") == [resp.headers["Date"]]  # exactly one Date


def test_reset_keeps_clients_and_clears_the_rest(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    server.revoke_all_tokens()
    server.clock_offset = 50
    server.omit_expires_in = True
    server.fail_next("whoami", 500)
    server.reset()
    assert server.token_requests == []
    assert server.api_requests == []
    assert (server.clock_offset, server.omit_expires_in, server.token_lifetime) == (0, False, 3600)
    assert api(server, "/whoami", access_token).status_code == 200  # revocation and failure forgotten
    assert "client-rsa" in server.clients


def test_register_client_needs_some_credential() -> None:
    with pytest.raises(ValueError, match="certificate"):
        LocalAuthorizationServer().register_client("nothing")


# --------------------------------------------------------------------------- keytool store + CLI


@pytest.fixture(scope="session")
def p12_store(tmp_path_factory: pytest.TempPathFactory) -> Keystore:
    if not have_keytool():
        pytest.fail("keytool (Java) is required: run scripts/install-system-deps (Debian: default-jre-headless)")
    return make_keystore(tmp_path_factory.mktemp("server-p12"), "client", store_type="pkcs12", alias="Client")


def test_key_from_a_keytool_keystore(server: LocalAuthorizationServer, p12_store: Keystore) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    private_key, _cert, _ = pkcs12.load_key_and_certificates(p12_store.path.read_bytes(), b"changeit")
    server.register_client(
        "from-p12", **load_client_key_material(keystore=str(p12_store.path), keystore_password="changeit")
    )
    now = int(time.time())
    claims = {"iss": "from-p12", "aud": server.token_url, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    token = jwt.encode(claims, private_key, algorithm="RS256")  # type: ignore[arg-type]
    assert grant(server, token).status_code == 200


def test_load_client_key_material(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    store = keys["p256"].store
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(store.certificate_pem)
    key_file = tmp_path / "pub.pem"
    key_file.write_text(store.public_key_pem())
    assert load_client_key_material(certificate=str(store.path)) == {"certificate_pem": store.certificate_pem}
    assert load_client_key_material(certificate=str(cert_file)) == {"certificate_pem": store.certificate_pem}
    assert load_client_key_material(certificate=str(key_file)) == {"public_key_pem": store.public_key_pem()}


def test_cli_serves_until_sigterm(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(keys["rsa"].store.certificate_pem)
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devserver",
            "--port",
            "0",
            "--client-id",
            "cli-client",
            "--certificate",
            str(cert_file),
            "--require-claim",
            "box_sub_type=enterprise,user",
            "--url-file",
            str(url_file),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not url_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "devserver did not start"
            time.sleep(0.05)
        base_url = url_file.read_text().strip()
        token_url = base_url + "/oauth2/token"
        now = int(time.time())
        claims = {"iss": "cli-client", "aud": token_url, "iat": now, "exp": now + 60}

        def post(extra: dict[str, Any]) -> requests.Response:
            token = jwt.encode(
                {**claims, "jti": str(uuid.uuid4()), **extra}, keys["rsa"].private_key, algorithm="RS256"
            )  # type: ignore[arg-type]
            return requests.post(token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token}, timeout=10)

        refused(post({}), "invalid_grant", "box_sub_type")
        assert post({"box_sub_type": "user"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "listening on http://127.0.0.1:" in stdout


def test_basic_auth_credentials_are_form_urlencoded(server: LocalAuthorizationServer) -> None:
    """RFC 6749 §2.3.1: client_id and secret are form-urlencoded before base64."""
    server.register_client("odd:id", client_secret="p@ss:w/rd")
    credentials = base64.b64encode(b"odd%3Aid:p%40ss%3Aw%2Frd").decode()
    response = requests.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
