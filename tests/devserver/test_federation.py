"""devserver.federation: JWTs of a trusted workload platform, and RFC 7523 §3's ``sub`` rule.

Tested over HTTP with ``requests`` against the devserver (``auth_server``) and the fake platform
(``platform``, an OIDC issuer on loopback): the jwt-bearer grant with a platform's JWT (RFC 7523 §2.1),
key discovery and rotation, and Entra-style federated client assertions (RFC 7523 §2.2 with a JWT
another issuer signed). Every refusal is checked for its error code and for a description that names
the problem; every acceptance for what the issued token says.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devserver import federation
from devserver.platform import LocalPlatform
from devserver.server import CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE, LocalAuthorizationServer
from tests.devserver.helpers import SigningKey, api, assertion, grant, refused

SUBJECTS = "system:serviceaccount:ns:*"
SUBJECT = "system:serviceaccount:ns:etl"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"
FEDERATED_CLIENT = "fed-etl"
FEDERATED_SECRET = "fed-secret-value-789"


def _k8s(platform: LocalPlatform, audience: str, namespace: str = "ns", **kw: Any) -> str:
    """A projected service account token of ``system:serviceaccount:<namespace>:etl``."""
    return platform.mint_kubernetes(audience, namespace=namespace, service_account="etl", **kw)


def _foreign_jwt(platform: LocalPlatform, audience: str, kid: str) -> str:
    """Claims the platform would sign, signed by a key it does not hold, under ``kid``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": platform.url, "sub": SUBJECT, "aud": [audience], "iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _altered(token: str, **claims: Any) -> str:
    """``token`` with claims changed in its payload, header and signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    return ".".join([header, _b64(json.dumps(decoded).encode("utf-8")), signature])


def _entra(server: LocalAuthorizationServer, token: str, client_id: str | None) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": token,
    }
    if client_id is not None:
        form["client_id"] = client_id
    return requests.post(server.token_url, data=form, timeout=10)


@pytest.fixture
def federated_client(auth_server: LocalAuthorizationServer) -> str:
    """A client with no key nor secret of its own, only federated credentials."""
    auth_server.register_client(FEDERATED_CLIENT, federated=True)
    return FEDERATED_CLIENT


@pytest.fixture
def trusted(auth_server: LocalAuthorizationServer, platform: LocalPlatform, federated_client: str) -> LocalPlatform:
    """The platform trusted for ``system:serviceaccount:ns:*`` acting as :data:`FEDERATED_CLIENT`."""
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id=federated_client)
    return platform


@pytest.fixture
def own_platform() -> Iterator[LocalPlatform]:
    """A platform of its own, for the tests that rotate its keys (the session's keeps its keys)."""
    with LocalPlatform() as local:
        yield local


# --------------------------------------------------------------------------- RFC 7523 §3: sub


def test_grant_assertion_without_sub_is_refused(
    auth_server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client("fed-sub-required", certificate_pem=keys["rsa"].store.certificate_pem)
    response = grant(auth_server, assertion(auth_server, keys["rsa"], iss="fed-sub-required", sub=None))
    refused(response, "invalid_grant", "Missing claim: 'sub'")
    record = auth_server.token_requests[-1]
    assert "sub" not in record["assertion_claims"]
    assert record["assertion_verified"] is False
    # The same client with a sub is accepted: the refusal was about sub alone.
    ok = grant(auth_server, assertion(auth_server, keys["rsa"], iss="fed-sub-required", sub="alice"))
    assert ok.status_code == 200, ok.text


def test_subject_optional_client_may_leave_sub_out(
    auth_server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client(
        "fed-sub-optional", certificate_pem=keys["rsa"].store.certificate_pem, subject_optional=True
    )
    response = grant(auth_server, assertion(auth_server, keys["rsa"], iss="fed-sub-optional", sub=None))
    assert response.status_code == 200, response.text
    info = auth_server.token_info(response.json()["access_token"])
    assert info is not None
    assert info.sub == "fed-sub-optional"  # no user: the token is the client's own
    assert info.client_id == "fed-sub-optional"
    assert auth_server.token_requests[-1]["assertion_verified"] is True


# --------------------------------------------------------------------------- jwt-bearer grant with a platform JWT


@pytest.mark.parametrize("audience", ["token_url", "issuer"])
def test_platform_jwt_gets_a_token_for_the_rule_client(
    auth_server: LocalAuthorizationServer, trusted: LocalPlatform, audience: str
) -> None:
    token = _k8s(trusted, getattr(auth_server, audience))
    response = grant(auth_server, token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    info = auth_server.token_info(body["access_token"])
    assert info is not None
    assert info.sub == SUBJECT
    assert info.client_id == FEDERATED_CLIENT
    assert info.grant_type == JWT_BEARER_GRANT_TYPE
    whoami = api(auth_server, "/whoami", body["access_token"])
    assert whoami.status_code == 200
    assert whoami.json()["sub"] == SUBJECT
    record = auth_server.token_requests[-1]
    assert record["success"] is True
    assert record["federated"] is True
    assert record["client_id"] == FEDERATED_CLIENT
    assert record["assertion_verified"] is True
    assert record["assertion_claims"]["iss"] == trusted.url


def test_platform_jwt_is_accepted_again_until_it_expires(
    auth_server: LocalAuthorizationServer, trusted: LocalPlatform
) -> None:
    token = _k8s(trusted, auth_server.token_url)
    first, second = grant(auth_server, token), grant(auth_server, token)
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text  # no single use of a platform JWT's jti
    assert first.json()["access_token"] != second.json()["access_token"]


def test_platform_jwt_for_a_client_with_a_secret(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform
) -> None:
    auth_server.register_client("fed-box", client_secret=FEDERATED_SECRET)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-box")
    token = _k8s(platform, auth_server.token_url)
    refused(grant(auth_server, token), "invalid_client", "cannot authenticate", 401)
    refused(grant(auth_server, token, client_id="fed-box", client_secret="wrong"), "invalid_client", "secret", 401)
    ok = grant(auth_server, token, client_id="fed-box", client_secret=FEDERATED_SECRET)
    assert ok.status_code == 200, ok.text
    info = auth_server.token_info(ok.json()["access_token"])
    assert info is not None
    assert (info.sub, info.client_id) == (SUBJECT, "fed-box")
    assert auth_server.token_requests[-1]["client_auth"] == "client_secret_post"


def test_rule_audience_is_accepted_besides_the_servers_own(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, federated_client: str
) -> None:
    auth_server.trust_issuer(
        platform.url, subject=SUBJECTS, client_id=federated_client, audiences=("https://sts.example.com",)
    )
    ok = grant(auth_server, _k8s(platform, "https://sts.example.com"))
    assert ok.status_code == 200, ok.text
    refused(grant(auth_server, _k8s(platform, "https://other.example.com")), "invalid_grant", "aud")


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("subject_not_matching", "No federated credential of this server admits sub 'system:serviceaccount:other:etl'"),
        ("wrong_aud", "Invalid claim: 'aud'"),
        ("entra_aud_without_rule_audience", "Invalid claim: 'aud'"),
        ("expired", "expired"),
        ("foreign_key_with_platform_kid", "Signature check failed"),
        ("altered_payload", "Signature check failed"),
        ("lifetime_over_rule_maximum", "lives longer than 7200 s"),
    ],
)
def test_bad_platform_jwts_are_refused(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, federated_client: str, case: str, description: str
) -> None:
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id=federated_client, max_lifetime=7200)
    url = auth_server.token_url
    makers: dict[str, Callable[[], str]] = {
        "subject_not_matching": lambda: _k8s(platform, url, namespace="other"),
        "wrong_aud": lambda: _k8s(platform, "https://elsewhere.example.com/oauth2/token"),
        "entra_aud_without_rule_audience": lambda: _k8s(platform, ENTRA_AUDIENCE),
        "expired": lambda: _k8s(platform, url, issued_at=time.time() - 4000, lifetime=3600),
        "foreign_key_with_platform_kid": lambda: _foreign_jwt(platform, url, platform.signing_kid()),
        "altered_payload": lambda: _altered(_k8s(platform, url), sub="system:serviceaccount:ns:admin"),
        "lifetime_over_rule_maximum": lambda: _k8s(platform, url, lifetime=7201),
    }
    issued = len(auth_server.issued_tokens())
    response = grant(auth_server, makers[case]())
    refused(response, "invalid_grant", description)
    record = auth_server.token_requests[-1]
    assert record["success"] is False
    assert record["assertion_verified"] is False
    assert len(auth_server.issued_tokens()) == issued


def test_untrusted_issuer_is_refused_without_fetching_its_keys(
    auth_server: LocalAuthorizationServer, trusted: LocalPlatform, own_platform: LocalPlatform
) -> None:
    response = grant(auth_server, _k8s(own_platform, auth_server.token_url))
    # Its iss is neither a client of this server nor a trusted issuer.
    refused(response, "invalid_grant", "does not exist")
    assert auth_server.federation.jwks_fetches(own_platform.url) == 0
    assert own_platform.jwks_fetches == 0
    assert own_platform.records == []  # not even its discovery document was asked for


# --------------------------------------------------------------------------- key discovery


def test_jwks_is_fetched_once_for_many_requests(auth_server: LocalAuthorizationServer, trusted: LocalPlatform) -> None:
    assert auth_server.federation.jwks_fetches(trusted.url) == 0
    for _ in range(5):
        response = grant(auth_server, _k8s(trusted, auth_server.token_url))
        assert response.status_code == 200, response.text
    assert auth_server.federation.jwks_fetches(trusted.url) == 1
    assert trusted.jwks_fetches == 1
    assert [r["path"] for r in trusted.records] == ["/.well-known/openid-configuration", "/openid/v1/jwks"]


def test_rotated_key_is_fetched_when_its_kid_arrives(
    auth_server: LocalAuthorizationServer,
    own_platform: LocalPlatform,
    federated_client: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(federation, "REFETCH_INTERVAL", 0.2)
    auth_server.trust_issuer(own_platform.url, subject=SUBJECTS, client_id=federated_client)
    old_token = _k8s(own_platform, auth_server.token_url)
    assert grant(auth_server, old_token).status_code == 200
    assert auth_server.federation.jwks_fetches(own_platform.url) == 1

    new_kid = own_platform.rotate_signing_key()
    time.sleep(0.3)
    new_token = _k8s(own_platform, auth_server.token_url)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    old_again = grant(auth_server, old_token)  # its kid is known: no fetch
    assert old_again.status_code == 200, old_again.text
    assert auth_server.federation.jwks_fetches(own_platform.url) == 1
    response = grant(auth_server, new_token)
    assert response.status_code == 200, response.text
    assert auth_server.federation.jwks_fetches(own_platform.url) == 2
    assert own_platform.jwks_fetches == 2
    time.sleep(0.3)
    assert grant(auth_server, _k8s(own_platform, auth_server.token_url)).status_code == 200
    assert auth_server.federation.jwks_fetches(own_platform.url) == 2  # the new kid is known now


def test_unknown_kids_refetch_at_most_once_per_interval(
    auth_server: LocalAuthorizationServer, trusted: LocalPlatform
) -> None:
    assert grant(auth_server, _k8s(trusted, auth_server.token_url)).status_code == 200
    assert auth_server.federation.jwks_fetches(trusted.url) == 1
    time.sleep(federation.REFETCH_INTERVAL + 0.05)
    for _ in range(10):  # a flood of unknown kids, well within one interval
        bad = _foreign_jwt(trusted, auth_server.token_url, kid=f"unknown-{uuid.uuid4()}")
        refused(grant(auth_server, bad), "invalid_grant", "No key for kid")
    assert auth_server.federation.jwks_fetches(trusted.url) == 2
    assert trusted.jwks_fetches == 2
    time.sleep(federation.REFETCH_INTERVAL + 0.05)
    refused(grant(auth_server, _foreign_jwt(trusted, auth_server.token_url, "unknown-again")), "invalid_grant", "kid")
    assert auth_server.federation.jwks_fetches(trusted.url) == 3


# --------------------------------------------------------------------------- Entra federated client assertion


def test_entra_federated_client_assertion_for_a_federated_only_client(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, federated_client: str
) -> None:
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id=federated_client, audiences=(ENTRA_AUDIENCE,))
    response = _entra(auth_server, _k8s(platform, ENTRA_AUDIENCE), federated_client)
    assert response.status_code == 200, response.text
    info = auth_server.token_info(response.json()["access_token"])
    assert info is not None
    assert (info.sub, info.client_id) == (federated_client, federated_client)


def test_entra_federated_client_assertion(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, keys: dict[str, SigningKey]
) -> None:
    # An Entra app may have a certificate and federated credentials at once; here it signs nothing itself.
    auth_server.register_client("fed-entra-app", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-entra-app", audiences=(ENTRA_AUDIENCE,))
    token = _k8s(platform, ENTRA_AUDIENCE)
    response = _entra(auth_server, token, "fed-entra-app")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    info = auth_server.token_info(body["access_token"])
    assert info is not None
    assert (info.sub, info.client_id, info.grant_type) == ("fed-entra-app", "fed-entra-app", "client_credentials")
    assert api(auth_server, "/whoami", body["access_token"]).json()["client_id"] == "fed-entra-app"
    record = auth_server.token_requests[-1]
    assert record["success"] is True
    assert record["federated"] is True
    assert record["client_assertion_verified"] is True
    assert record["client_auth"] == "private_key_jwt"
    assert record["client_assertion_claims"]["sub"] == SUBJECT
    assert token not in repr(auth_server.token_requests)
    again = _entra(auth_server, token, "fed-entra-app")  # presented until it expires, like the grant's
    assert again.status_code == 200, again.text


def test_entra_federated_client_assertion_needs_client_id(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client("fed-entra-app", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-entra-app", audiences=(ENTRA_AUDIENCE,))
    response = _entra(auth_server, _k8s(platform, ENTRA_AUDIENCE), None)
    refused(response, "invalid_client", "client_id is required", 401)
    assert auth_server.token_requests[-1].get("federated") is None


def test_entra_federated_client_assertion_of_another_clients_rule(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client("fed-entra-app", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.register_client("fed-entra-other", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-entra-other", audiences=(ENTRA_AUDIENCE,))
    issued = len(auth_server.issued_tokens())
    response = _entra(auth_server, _k8s(platform, ENTRA_AUDIENCE), "fed-entra-app")
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert auth_server.token_requests[-1]["client_assertion_verified"] is False
    assert len(auth_server.issued_tokens()) == issued
    # The other client, whose rule it is, gets a token with the same JWT.
    ok = _entra(auth_server, _k8s(platform, ENTRA_AUDIENCE), "fed-entra-other")
    assert ok.status_code == 200, ok.text


def test_entra_refusal_of_another_clients_rule_names_the_federated_credential(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client("fed-entra-app", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-entra-other", audiences=(ENTRA_AUDIENCE,))
    response = _entra(auth_server, _k8s(platform, ENTRA_AUDIENCE), "fed-entra-app")
    refused(response, "invalid_client", "No federated credential", 401)


def test_entra_federated_client_assertion_subject_must_match(
    auth_server: LocalAuthorizationServer, platform: LocalPlatform, keys: dict[str, SigningKey]
) -> None:
    auth_server.register_client("fed-entra-app", certificate_pem=keys["p256"].store.certificate_pem)
    auth_server.trust_issuer(platform.url, subject=SUBJECTS, client_id="fed-entra-app", audiences=(ENTRA_AUDIENCE,))
    response = _entra(auth_server, _k8s(platform, auth_server.token_url, namespace="other"), "fed-entra-app")
    refused(response, "invalid_client", "No federated credential of this server admits sub", 401)
