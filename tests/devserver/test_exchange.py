"""devserver.exchange: RFC 8693 token exchange of JWTs, and Google's generateAccessToken after it.

Tested over HTTP with ``requests`` against the devserver (``auth_server``) and the fake platform
(``platform``, an OIDC issuer on loopback). What is right is taken from RFC 8693: §2.1 (the request's
parameters), §2.2.1 (``issued_token_type`` REQUIRED, ``token_type`` ``N_A`` for a token that is not an
access token), §2.2.2 (``invalid_request`` for a subject or actor token that is missing, of an
unsupported type or not acceptable; ``invalid_target`` for an audience the server will not issue for)
and §4.1 (``act``); and from Google's IAM Credentials API for ``generateAccessToken``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
import requests

from devserver.exchange import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE
from devserver.platform import LocalPlatform
from devserver.server import LocalAuthorizationServer
from tests.devserver.helpers import SigningKey, api, assertion, refused

PROVIDER = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"
SUBJECT = "system:serviceaccount:ns:etl"
CLIENT = "xchg-client"
CLIENT_SECRET = "xchg-secret-value-321"
ACTOR_CLIENT = "xchg-actor"
SERVICE_ACCOUNT = "etl@p.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def exchange(server: LocalAuthorizationServer, subject_token: str | None, **form: str) -> requests.Response:
    """A token exchange request; ``subject_token_type`` is ``…:jwt`` unless given."""
    data = {"grant_type": TOKEN_EXCHANGE_GRANT_TYPE, "subject_token_type": JWT_TYPE, **form}
    if subject_token is not None:
        data["subject_token"] = subject_token
    return requests.post(server.token_url, data=data, timeout=10)


def with_client(**form: str) -> dict[str, str]:
    """``form`` with :data:`CLIENT`'s client_secret_post credentials."""
    return {"client_id": CLIENT, "client_secret": CLIENT_SECRET, **form}


def k8s(platform: LocalPlatform, audience: str, namespace: str = "ns", **kw: Any) -> str:
    return platform.mint_kubernetes(audience, namespace=namespace, service_account="etl", **kw)


@pytest.fixture
def google(auth_server: LocalAuthorizationServer, platform: LocalPlatform) -> LocalPlatform:
    """Google's STS: the platform trusted without a client, the pool provider named by ``audience``."""
    auth_server.trust_issuer(platform.url, subject="system:serviceaccount:*", exchange_audience=PROVIDER)
    return platform


@pytest.fixture
def client_rule(auth_server: LocalAuthorizationServer, platform: LocalPlatform) -> LocalPlatform:
    """:data:`CLIENT` (a client secret) may exchange the platform's ``system:serviceaccount:ns:*`` JWTs."""
    auth_server.register_client(CLIENT, client_secret=CLIENT_SECRET)
    auth_server.trust_issuer(platform.url, subject="system:serviceaccount:ns:*", client_id=CLIENT)
    return platform


@pytest.fixture
def actor_client(auth_server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> SigningKey:
    """:data:`ACTOR_CLIENT`, registered with the RSA key, which signs actor and subject tokens."""
    auth_server.register_client(ACTOR_CLIENT, certificate_pem=keys["rsa"].store.certificate_pem)
    return keys["rsa"]


# --------------------------------------------------------------------------- anonymous (Google's STS)


def test_anonymous_exchange_for_the_pool_provider(auth_server: LocalAuthorizationServer, google: LocalPlatform) -> None:
    response = exchange(auth_server, k8s(google, auth_server.token_url), audience=PROVIDER, scope=CLOUD_PLATFORM)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE  # RFC 8693 §2.2.1: REQUIRED
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == auth_server.token_lifetime
    assert body["scope"] == CLOUD_PLATFORM
    assert response.headers["Cache-Control"] == "no-store"
    info = auth_server.token_info(body["access_token"])
    assert info is not None
    assert info.sub == SUBJECT
    assert info.grant_type == TOKEN_EXCHANGE_GRANT_TYPE
    assert info.audiences == (PROVIDER,)
    assert info.act is None
    assert api(auth_server, "/whoami", body["access_token"]).json()["sub"] == SUBJECT
    record = auth_server.token_requests[-1]
    assert record["success"] is True
    assert record["client_id"] is None  # no client authentication
    assert record["assertion_verified"] is True
    assert record["exchange_audiences"] == [PROVIDER]
    assert record["issued_token_type"] == ACCESS_TOKEN_TYPE


def test_another_audience_gets_no_token(auth_server: LocalAuthorizationServer, google: LocalPlatform) -> None:
    issued = len(auth_server.issued_tokens())
    response = exchange(auth_server, k8s(google, auth_server.token_url), audience=PROVIDER + "-other")
    assert response.status_code == 400, response.text
    assert "access_token" not in response.json()
    assert len(auth_server.issued_tokens()) == issued


def test_another_audience_is_invalid_target(auth_server: LocalAuthorizationServer, google: LocalPlatform) -> None:
    response = exchange(auth_server, k8s(google, auth_server.token_url), audience=PROVIDER + "-other")
    refused(response, "invalid_target", PROVIDER + "-other")


def test_anonymous_exchange_where_the_rule_names_a_client(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform
) -> None:
    issued = len(auth_server.issued_tokens())
    response = exchange(auth_server, k8s(client_rule, auth_server.token_url))
    assert response.json()["error"] == "invalid_client", response.text
    assert "client authentication is required" in response.json()["error_description"].lower()
    assert len(auth_server.issued_tokens()) == issued
    # With the rule's client authenticated, the same kind of JWT is exchanged.
    ok = exchange(auth_server, k8s(client_rule, auth_server.token_url), **with_client())
    assert ok.status_code == 200, ok.text


def test_anonymous_exchange_where_the_rule_names_a_client_is_401(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform
) -> None:
    response = exchange(auth_server, k8s(client_rule, auth_server.token_url))
    refused(response, "invalid_client", "client authentication is required", 401)


# --------------------------------------------------------------------------- with a client and an actor


def test_actor_signed_by_a_registered_client(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform, actor_client: SigningKey
) -> None:
    actor = assertion(auth_server, actor_client, iss=ACTOR_CLIENT, sub="robot@example.com")
    response = exchange(
        auth_server,
        k8s(client_rule, auth_server.token_url),
        **with_client(actor_token=actor, actor_token_type=JWT_TYPE),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["issued_token_type"], body["token_type"]) == (ACCESS_TOKEN_TYPE, "Bearer")
    info = auth_server.token_info(body["access_token"])
    assert info is not None
    assert (info.sub, info.client_id) == (SUBJECT, CLIENT)
    assert info.act == {"sub": "robot@example.com", "iss": ACTOR_CLIENT}  # RFC 8693 §4.1
    whoami = api(auth_server, "/whoami", body["access_token"]).json()
    assert whoami["act"] == {"sub": "robot@example.com", "iss": ACTOR_CLIENT}
    record = auth_server.token_requests[-1]
    assert record["client_auth"] == "client_secret_post"
    assert record["actor_verified"] is True
    assert record["act"] == info.act
    # An actor token signed by a client is single-use, like its assertions.
    again = exchange(
        auth_server,
        k8s(client_rule, auth_server.token_url),
        **with_client(actor_token=actor, actor_token_type=JWT_TYPE),
    )
    refused(again, "invalid_request", "jti already used")


def test_actor_is_a_second_platform_jwt(auth_server: LocalAuthorizationServer, client_rule: LocalPlatform) -> None:
    actor = client_rule.mint_github_actions(auth_server.token_url)
    response = exchange(
        auth_server,
        k8s(client_rule, auth_server.token_url),
        **with_client(actor_token=actor, actor_token_type=ID_TOKEN_TYPE),
    )
    assert response.status_code == 200, response.text
    info = auth_server.token_info(response.json()["access_token"])
    assert info is not None
    assert info.sub == SUBJECT
    assert info.act == {"sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "iss": client_rule.url}


def test_subject_tokens_act_is_nested(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform, actor_client: SigningKey
) -> None:
    earlier = {"sub": "upstream-service"}
    subject = client_rule.mint(SUBJECT, auth_server.token_url, claims={"act": earlier})
    actor = assertion(auth_server, actor_client, iss=ACTOR_CLIENT, sub="robot@example.com")
    response = exchange(auth_server, subject, **with_client(actor_token=actor, actor_token_type=JWT_TYPE))
    assert response.status_code == 200, response.text
    info = auth_server.token_info(response.json()["access_token"])
    assert info is not None
    assert info.act == {"sub": "robot@example.com", "iss": ACTOR_CLIENT, "act": earlier}


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("actor_token_without_type", "actor_token_type is required"),
        ("actor_token_type_without_token", "actor_token_type is sent without actor_token"),
        ("unsupported_subject_token_type", "Unsupported subject_token_type"),
        ("unsupported_actor_token_type", "Unsupported actor_token_type"),
        ("unsupported_requested_token_type", "Unsupported requested_token_type"),
        ("missing_subject_token", "subject_token and subject_token_type are required"),
        ("subject_not_a_jwt", "subject_token: Invalid JWT"),
        ("subject_of_an_untrusted_issuer", "is not trusted"),
        ("subject_expired", "subject_token: The token is expired"),
        ("subject_wrong_aud", "subject_token: Invalid claim: 'aud'"),
        ("subject_not_matching_the_rule", "No federated credential"),
        ("actor_of_an_untrusted_issuer", "actor_token: the issuer 'https://untrusted.example.com'"),
        ("actor_expired", "actor_token: The token is expired"),
    ],
)
def test_invalid_exchange_requests(
    auth_server: LocalAuthorizationServer,
    client_rule: LocalPlatform,
    actor_client: SigningKey,
    case: str,
    description: str,
) -> None:
    platform, url = client_rule, auth_server.token_url
    subject, actor = k8s(platform, url), assertion(auth_server, actor_client, iss=ACTOR_CLIENT)
    saml = "urn:ietf:params:oauth:token-type:saml2"
    old = time.time() - 4000
    forms: dict[str, dict[str, Any]] = {
        "actor_token_without_type": {"subject_token": subject, "actor_token": actor},
        "actor_token_type_without_token": {"subject_token": subject, "actor_token_type": JWT_TYPE},
        "unsupported_subject_token_type": {"subject_token": subject, "subject_token_type": saml},
        "unsupported_actor_token_type": {"subject_token": subject, "actor_token": actor, "actor_token_type": saml},
        "unsupported_requested_token_type": {"subject_token": subject, "requested_token_type": saml},
        "missing_subject_token": {"subject_token": None},
        "subject_not_a_jwt": {"subject_token": "not-a-jwt"},
        "subject_of_an_untrusted_issuer": {"subject_token": platform.mint(SUBJECT, url, claims={"iss": "https://x"})},
        "subject_expired": {"subject_token": k8s(platform, url, issued_at=old)},
        "subject_wrong_aud": {"subject_token": k8s(platform, "https://elsewhere.example.com")},
        "subject_not_matching_the_rule": {"subject_token": k8s(platform, url, namespace="other")},
        "actor_of_an_untrusted_issuer": {
            "subject_token": subject,
            "actor_token": platform.mint("robot", url, claims={"iss": "https://untrusted.example.com"}),
            "actor_token_type": JWT_TYPE,
        },
        "actor_expired": {
            "subject_token": subject,
            "actor_token": platform.mint("robot", url, issued_at=old),
            "actor_token_type": JWT_TYPE,
        },
    }
    form = dict(forms[case])
    issued = len(auth_server.issued_tokens())
    response = exchange(auth_server, form.pop("subject_token"), **with_client(**form))
    refused(response, "invalid_request", description)
    assert auth_server.token_requests[-1]["success"] is False
    assert len(auth_server.issued_tokens()) == issued


# --------------------------------------------------------------------------- requested_token_type id_token


def test_id_token_is_answered_as_n_a_and_refused_by_the_api(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform
) -> None:
    issued = len(auth_server.issued_tokens())
    response = exchange(
        auth_server,
        k8s(client_rule, auth_server.token_url),
        **with_client(requested_token_type=ID_TOKEN_TYPE, audience="https://api.example.com"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ID_TOKEN_TYPE
    assert body["token_type"] == "N_A"  # RFC 8693 §2.2.1: not an access token
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == auth_server.issuer
    assert claims["sub"] == SUBJECT
    assert claims["aud"] == ["https://api.example.com"]
    assert len(auth_server.issued_tokens()) == issued  # not an access token of this server
    refusal = api(auth_server, "/whoami", body["access_token"])
    assert refusal.status_code == 401
    assert refusal.json()["error"] == "invalid_token"
    assert auth_server.token_requests[-1]["issued_token_type"] == ID_TOKEN_TYPE


# --------------------------------------------------------------------------- subject token signed by a client


def test_client_signed_subject_token_is_single_use(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform, actor_client: SigningKey
) -> None:
    subject = assertion(auth_server, actor_client, iss=ACTOR_CLIENT, sub="alice@example.com")
    first = exchange(auth_server, subject, **with_client())
    assert first.status_code == 200, first.text
    info = auth_server.token_info(first.json()["access_token"])
    assert info is not None
    assert (info.sub, info.client_id) == ("alice@example.com", CLIENT)
    assert auth_server.token_requests[-1]["assertion_claims"]["iss"] == ACTOR_CLIENT
    refused(exchange(auth_server, subject, **with_client()), "invalid_request", "jti already used")


def test_client_signed_subject_token_needs_client_authentication(
    auth_server: LocalAuthorizationServer, client_rule: LocalPlatform, actor_client: SigningKey
) -> None:
    subject = assertion(auth_server, actor_client, iss=ACTOR_CLIENT, sub="alice@example.com")
    response = exchange(auth_server, subject)
    assert response.json()["error"] == "invalid_client", response.text


# --------------------------------------------------------------------------- Google's generateAccessToken


def generate(
    server: LocalAuthorizationServer,
    bearer: str | None,
    body: Any = None,
    *,
    account: str = SERVICE_ACCOUNT,
    project: str = "-",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    url = f"{server.url}/v1/projects/{project}/serviceAccounts/{account}:generateAccessToken"
    sent = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    sent.update(headers or {})
    payload = {"scope": [CLOUD_PLATFORM], "lifetime": "600s"} if body is None else body
    return requests.post(url, json=payload, headers=sent, timeout=10)


def google_error(response: requests.Response, code: int, status: str, message: str) -> None:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "status"}, body
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert message.lower() in body["error"]["message"].lower(), body


@pytest.fixture
def exchanged(auth_server: LocalAuthorizationServer, google: LocalPlatform) -> str:
    """An access token of Google's STS for ``system:serviceaccount:ns:etl``."""
    response = exchange(auth_server, k8s(google, auth_server.token_url), audience=PROVIDER, scope=CLOUD_PLATFORM)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_generate_access_token(auth_server: LocalAuthorizationServer, exchanged: str) -> None:
    auth_server.allow_impersonation(SERVICE_ACCOUNT, "system:serviceaccount:*")
    before = time.time()
    response = generate(auth_server, exchanged)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"accessToken", "expireTime"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", body["expireTime"]), body
    expire = datetime.strptime(body["expireTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    assert before + 600 - 2 <= expire.timestamp() <= time.time() + 600 + 1
    whoami = api(auth_server, "/whoami", body["accessToken"])
    assert whoami.status_code == 200
    assert whoami.json()["sub"] == SERVICE_ACCOUNT
    info = auth_server.token_info(body["accessToken"])
    assert info is not None
    assert (info.sub, info.grant_type, info.scope) == (SERVICE_ACCOUNT, "generateAccessToken", CLOUD_PLATFORM)
    assert info.act == {"sub": SUBJECT}
    assert 598 <= info.expires_at - time.time() <= 601


@pytest.mark.parametrize("project", ["my-project", "1234"])
def test_generate_access_token_needs_the_project_wildcard(
    auth_server: LocalAuthorizationServer, exchanged: str, project: str
) -> None:
    auth_server.allow_impersonation(SERVICE_ACCOUNT, "system:serviceaccount:*")
    google_error(generate(auth_server, exchanged, project=project), 400, "INVALID_ARGUMENT", "wildcard")


@pytest.mark.parametrize("case", ["account_not_allowed", "subject_not_matching", "nothing_allowed"])
def test_generate_access_token_without_permission(
    auth_server: LocalAuthorizationServer, exchanged: str, case: str
) -> None:
    if case == "account_not_allowed":
        auth_server.allow_impersonation("other@p.iam.gserviceaccount.com", "system:serviceaccount:*")
    elif case == "subject_not_matching":
        auth_server.allow_impersonation(SERVICE_ACCOUNT, "system:serviceaccount:prod:*")
    issued = len(auth_server.issued_tokens())
    response = generate(auth_server, exchanged)
    google_error(response, 403, "PERMISSION_DENIED", "'iam.serviceAccounts.getAccessToken' denied on resource")
    assert SERVICE_ACCOUNT in response.json()["error"]["message"]
    assert len(auth_server.issued_tokens()) == issued


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lifetime": "600s"}, "scope"),
        ({"scope": [], "lifetime": "600s"}, "scope"),
        ({"scope": CLOUD_PLATFORM}, "scope"),
        ({"scope": [CLOUD_PLATFORM], "lifetime": "3601s"}, "lifetime"),
        ({"scope": [CLOUD_PLATFORM], "lifetime": "10m"}, "lifetime"),
    ],
)
def test_generate_access_token_bad_body(
    auth_server: LocalAuthorizationServer, exchanged: str, body: dict[str, Any], message: str
) -> None:
    auth_server.allow_impersonation(SERVICE_ACCOUNT, "system:serviceaccount:*")
    google_error(generate(auth_server, exchanged, body), 400, "INVALID_ARGUMENT", message)


@pytest.mark.parametrize("case", ["missing", "unknown", "basic_scheme", "revoked", "expired"])
def test_generate_access_token_bad_bearer(auth_server: LocalAuthorizationServer, exchanged: str, case: str) -> None:
    auth_server.allow_impersonation(SERVICE_ACCOUNT, "system:serviceaccount:*")
    bearer: str | None = exchanged
    headers: dict[str, str] = {}
    if case == "missing":
        bearer = None
    elif case == "unknown":
        bearer = "not-a-token-of-this-server"
    elif case == "basic_scheme":
        bearer, headers = None, {"Authorization": f"Basic {exchanged}"}
    elif case == "revoked":
        auth_server.revoke_all_tokens()
    else:
        auth_server.clock_offset = auth_server.token_lifetime + 1
    google_error(generate(auth_server, bearer, headers=headers), 401, "UNAUTHENTICATED", "invalid authentication")
