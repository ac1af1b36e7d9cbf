"""devserver.grants: the token endpoint accepts what providers accept, and nothing else (see helpers)."""

from __future__ import annotations

import base64
import threading
import time

import jwt
import pytest
import requests

from devserver.server import JWT_BEARER_GRANT_TYPE, LocalAuthorizationServer
from tests.devserver.helpers import (
    ALGORITHMS,
    BOX_SECRET,
    ENTRA_SECRET,
    SigningKey,
    api,
    assertion,
    client_assertion,
    grant,
    refused,
)

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
