"""devserver DPoP (RFC 9449): proofs at the token endpoint (§5) and at the API (§7), nonces (§8, §9).

Proofs are made here by hand with PyJWT (not with airflow_jwt_provider), so these tests check the
server on its own. Every refusal checks the error and why; the positive tests make sure a server that
refused everything would fail too.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from typing import cast
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from devserver.dpop import jwk_thumbprint, normalize_uri
from devserver.exchange import JWT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE
from devserver.server import JWT_BEARER_GRANT_TYPE, LocalAuthorizationServer
from tests.devserver.dpop_helpers import ProofKey, challenges, rfc7638
from tests.devserver.helpers import ENTRA_SECRET, SigningKey, assertion, client_assertion, refused

# --------------------------------------------------------------------------- helpers


KEY_OF_ALG = {"ES256": "p256", "ES384": "p384", "ES512": "p521", "EdDSA": "ed25519", "PS256": "rsa", "RS256": "rsa"}


@pytest.fixture
def proof_key(keys: dict[str, SigningKey]) -> ProofKey:
    return ProofKey(keys["p256"].private_key, "ES256")


@pytest.fixture
def other_key() -> ProofKey:
    return ProofKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


@pytest.fixture
def dpop_server(server: LocalAuthorizationServer) -> Iterator[LocalAuthorizationServer]:
    """The session's server, with a DPoP-bound client registered (and reset afterwards: knobs are per test)."""
    server.register_client("dpop-bound", client_secret="bound-secret", dpop_bound=True)
    yield server
    server.reset()


def client_credentials(
    server: LocalAuthorizationServer, proof: str | None, url: str | None = None, **form: str
) -> requests.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    return requests.post(
        url or server.token_url,
        data={"grant_type": "client_credentials", **form},
        auth=("entra-app", ENTRA_SECRET) if "client_assertion" not in form else None,
        headers=headers,
        timeout=10,
    )


def dpop_token(server: LocalAuthorizationServer, key: ProofKey) -> str:
    response = client_credentials(server, key.proof("POST", server.token_url))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def call_api(
    server: LocalAuthorizationServer,
    path: str,
    token: str,
    proof: str | None,
    *,
    scheme: str = "DPoP",
    method: str = "GET",
) -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.request(method, server.api_url + path, headers=headers, timeout=10)


# --------------------------------------------------------------------------- pieces


def test_thumbprint_is_rfc7638() -> None:
    """RFC 7638 §3.1's example key and thumbprint."""
    example = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
        "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0z"
        "gdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFC"
        "ur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert rfc7638(example) == jwk_thumbprint(example)


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://AS.Example:443/token?x=1#f", "https://as.example/token"),
        ("http://127.0.0.1:80", "http://127.0.0.1/"),
        ("http://127.0.0.1:8080/a/./b/../c", "http://127.0.0.1:8080/a/c"),
        ("http://h/%7euser/%2f", "http://h/~user/%2F"),
        ("http://[::1]:8080/t/", "http://[::1]:8080/t/"),
        ("https://user:pw@h/t", "https://user:pw@h/t"),  # user info kept: it never matches a request URL
    ],
)
def test_htu_normalization(url: str, normal: str) -> None:
    assert normalize_uri(url) == normal


# --------------------------------------------------------------------------- token endpoint


@pytest.mark.parametrize("alg", list(KEY_OF_ALG))
def test_token_request_with_a_proof_gets_a_dpop_token(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], alg: str
) -> None:
    key = ProofKey(keys[KEY_OF_ALG[alg]].private_key, alg)
    response = client_credentials(server, key.proof("POST", server.token_url))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in response.headers
    info = server.token_info(body["access_token"])
    assert info is not None
    assert (info.jkt, info.x5t_s256, info.token_type) == (key.jkt, None, "DPoP")
    [record] = server.token_requests
    assert record["dpop"]["header"] == {"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk}
    assert record["dpop"]["claims"]["htu"] == server.token_url
    assert (record["dpop_verified"], record["dpop_failure"], record["dpop_nonce_challenge"]) == (True, None, False)
    assert (record["token_type"], record["cnf"]) == ("DPoP", {"jkt": key.jkt})

    whoami = call_api(
        server,
        "/whoami",
        body["access_token"],
        key.proof("GET", server.api_url + "/whoami", access_token=body["access_token"]),
    )
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["client_id"] == "entra-app"
    [api_record] = server.api_requests
    assert (api_record["auth_scheme"], api_record["dpop_verified"], api_record["dpop_failure"]) == ("DPoP", True, None)
    assert api_record["dpop"]["claims"]["htm"] == "GET"
    assert body["access_token"] not in repr(server.api_requests) + repr(server.token_requests)


def test_every_grant_binds(server: LocalAuthorizationServer, keys: dict[str, SigningKey], proof_key: ProofKey) -> None:
    token_url = server.token_url
    secret = {"client_id": "entra-app", "client_secret": ENTRA_SECRET}
    forms: dict[str, dict[str, str]] = {
        "jwt-bearer": {
            "grant_type": JWT_BEARER_GRANT_TYPE,
            "assertion": assertion(server, keys["rsa"], iss="client-rsa"),
        },
        "private_key_jwt": {"grant_type": "client_credentials", **client_assertion(server, keys["p256"], "entra-app")},
        "on-behalf-of": {
            "grant_type": JWT_BEARER_GRANT_TYPE,
            "requested_token_use": "on_behalf_of",
            "assertion": server.issue_user_token("alice@contoso.com", "entra-app"),
            **secret,
        },
        "token-exchange": {
            "grant_type": TOKEN_EXCHANGE_GRANT_TYPE,
            "subject_token": assertion(server, keys["rsa"], iss="client-rsa", sub="carol"),
            "subject_token_type": JWT_TYPE,
            **secret,
        },
    }
    for name, form in forms.items():
        response = requests.post(token_url, data=form, headers={"DPoP": proof_key.proof("POST", token_url)}, timeout=10)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["token_type"] == "DPoP", name
        info = server.token_info(response.json()["access_token"])
        assert info is not None, name
        assert info.jkt == proof_key.jkt, name
        assert server.token_requests[-1]["cnf"] == {"jkt": proof_key.jkt}, name


def test_htu_is_compared_after_normalization(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    parts = urlsplit(server.token_url)
    odd = f"HTTP://{parts.netloc}/oauth2/./token?ignored=1#fragment"
    response = client_credentials(server, proof_key.proof("POST", odd))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("wrong_htu", "htu does not match"),
        ("htu_of_the_api", "htu does not match"),
        ("htu_with_user_info", "htu does not match"),
        ("wrong_htm", "htm get does not match"),
        ("stale_iat", "too old"),
        ("future_iat", "in the future"),
        ("rs256_when_restricted", "unsupported dpop alg rs256"),
        ("hs256", "unsupported dpop alg hs256"),
        ("private_key_in_jwk", "private key"),
        ("wrong_typ", "typ"),
        ("no_jwk", "jwk"),
        ("jwk_of_another_key", "signature check failed"),
        ("missing_jti", "claim jti"),
        ("missing_iat", "claim iat"),
        ("not_a_jwt", "not a well-formed jwt"),
        ("two_proofs", "more than one"),
    ],
)
def test_bad_proofs_are_refused(
    server: LocalAuthorizationServer,
    keys: dict[str, SigningKey],
    proof_key: ProofKey,
    other_key: ProofKey,
    case: str,
    description: str,
) -> None:
    url = server.token_url
    now = int(time.time())
    rsa_key = ProofKey(keys["rsa"].private_key, "RS256")
    if case == "rs256_when_restricted":
        assert client_credentials(server, rsa_key.proof("POST", url)).status_code == 200  # allowed by default
        server.dpop_algorithms = ("ES256", "EdDSA")
    issued_before = len(server.issued_tokens())
    private_ec_key = cast(ec.EllipticCurvePrivateKey, keys["p256"].private_key)
    private_jwk = {**proof_key.jwk, "d": ECAlgorithm.to_jwk(private_ec_key, as_dict=True)["d"]}
    proof = {
        "wrong_htu": lambda: proof_key.proof("POST", url.replace("/oauth2/token", "/token")),
        "htu_of_the_api": lambda: proof_key.proof("POST", server.api_url + "/whoami"),
        "htu_with_user_info": lambda: proof_key.proof("POST", url.replace("://", "://user:pw@")),
        "wrong_htm": lambda: proof_key.proof("GET", url),
        "stale_iat": lambda: proof_key.proof("POST", url, iat=now - 121 - 5),
        "future_iat": lambda: proof_key.proof("POST", url, iat=now + 65),
        "rs256_when_restricted": lambda: rsa_key.proof("POST", url),
        "hs256": lambda: jwt.encode(
            {"jti": "x", "htm": "POST", "htu": url, "iat": now},
            "a-shared-secret-of-32-bytes-long!",
            algorithm="HS256",
            headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0"}},
        ),
        "private_key_in_jwk": lambda: proof_key.proof("POST", url, headers={"jwk": private_jwk}),
        "wrong_typ": lambda: proof_key.proof("POST", url, headers={"typ": "JWT"}),
        "no_jwk": lambda: proof_key.proof("POST", url, headers={"jwk": None}),
        "jwk_of_another_key": lambda: proof_key.proof("POST", url, headers={"jwk": other_key.jwk}),
        "missing_jti": lambda: proof_key.proof("POST", url, jti=None),
        "missing_iat": lambda: proof_key.proof("POST", url, iat=None),
        "not_a_jwt": lambda: "not-a-jwt",
        "two_proofs": lambda: proof_key.proof("POST", url) + ", " + proof_key.proof("POST", url),
    }[case]()
    response = client_credentials(server, proof)
    refused(response, "invalid_dpop_proof", description)
    record = server.token_requests[-1]
    assert record["dpop_verified"] is False
    assert description in record["dpop_failure"].lower()
    assert record["token_type"] is None
    assert len(server.issued_tokens()) == issued_before


def test_two_dpop_headers_are_refused(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    """Two header fields (not one with a comma): what werkzeug hands the app must still say "two"."""
    parts = urlsplit(server.token_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    body = "grant_type=client_credentials"
    credentials = base64.b64encode(f"entra-app:{ENTRA_SECRET}".encode()).decode()
    connection.putrequest("POST", parts.path)
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("Content-Length", str(len(body)))
    connection.putheader("Authorization", f"Basic {credentials}")
    connection.putheader("DPoP", proof_key.proof("POST", server.token_url))
    connection.putheader("DPoP", proof_key.proof("POST", server.token_url))
    connection.endheaders(body.encode())
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 400
    assert answer["error"] == "invalid_dpop_proof"
    assert "more than one" in answer["error_description"].lower()


def test_replayed_proof_is_refused(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    proof = proof_key.proof("POST", server.token_url)
    assert client_credentials(server, proof).status_code == 200
    refused(client_credentials(server, proof), "invalid_dpop_proof", "jti already used")


def test_iat_window_knob(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    server.leeway = 0
    server.dpop_iat_window = 10
    old = int(time.time()) - 30
    refused(client_credentials(server, proof_key.proof("POST", server.token_url, iat=old)), "invalid_dpop_proof", "old")
    server.dpop_iat_window = 60
    assert client_credentials(server, proof_key.proof("POST", server.token_url, iat=old)).status_code == 200


def test_dpop_bound_client_needs_a_proof(dpop_server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    server = dpop_server
    form = {"grant_type": "client_credentials"}
    without = requests.post(server.token_url, data=form, auth=("dpop-bound", "bound-secret"), timeout=10)
    refused(without, "invalid_dpop_proof", "dpop_bound_access_tokens")
    assert server.token_requests[-1]["dpop_failure"] == "missing"
    with_proof = requests.post(
        server.token_url,
        data=form,
        auth=("dpop-bound", "bound-secret"),
        headers={"DPoP": proof_key.proof("POST", server.token_url)},
        timeout=10,
    )
    assert with_proof.status_code == 200, with_proof.text
    assert with_proof.json()["token_type"] == "DPoP"
    # A client that is not DPoP-bound still gets Bearer tokens without a proof.
    plain = client_credentials(server, None)
    assert plain.json()["token_type"] == "Bearer"
    assert server.token_requests[-1]["dpop"] is None


def test_bearer_answer_knob(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    server.dpop_bearer_answer = True
    response = client_credentials(server, proof_key.proof("POST", server.token_url))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    token = response.json()["access_token"]
    info = server.token_info(token)
    assert info is not None
    assert info.jkt is None
    record = server.token_requests[-1]
    assert (record["dpop_verified"], record["token_type"], record["cnf"]) == (True, "Bearer", None)
    assert call_api(server, "/whoami", token, None, scheme="Bearer").status_code == 200
    # The proof was still checked: a bad one is refused even though nothing would be bound.
    refused(client_credentials(server, proof_key.proof("GET", server.token_url)), "invalid_dpop_proof", "htm")


# --------------------------------------------------------------------------- token endpoint nonces


def test_nonce_challenge_round_trip(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], proof_key: ProofKey
) -> None:
    server.dpop_nonce = True
    url = server.token_url
    first_auth = client_assertion(server, keys["p256"], "entra-app")
    first = client_credentials(server, proof_key.proof("POST", url), **first_auth)
    refused(first, "use_dpop_nonce", "requires a nonce")
    nonce = first.headers["DPoP-Nonce"]
    assert nonce == server.current_dpop_nonce()
    record = server.token_requests[-1]
    assert (record["dpop_nonce_challenge"], record["dpop_verified"], record["client_auth"]) == (
        True,
        False,
        "private_key_jwt",
    )

    # The client assertion was used up by the refused request (client authentication comes first, as
    # with node-oidc-provider): a retry must bring a fresh one.
    stale_auth = client_credentials(server, proof_key.proof("POST", url, nonce=nonce), **first_auth)
    refused(stale_auth, "invalid_client", "jti already used", 401)
    retry = client_credentials(
        server, proof_key.proof("POST", url, nonce=nonce), **client_assertion(server, keys["p256"], "entra-app")
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in retry.headers  # it sent the current nonce
    assert server.token_requests[-1]["dpop"]["claims"]["nonce"] == nonce

    # A nonce is accepted by the server that gave it only (§9): the API's is another.
    assert server.current_dpop_nonce(api=True) != nonce
    api_nonce = client_credentials(server, proof_key.proof("POST", url, nonce=server.current_dpop_nonce(api=True)))
    refused(api_nonce, "use_dpop_nonce", "does not accept this nonce")
    assert api_nonce.headers["DPoP-Nonce"] == nonce

    # With nonces on, a stale iat gets a nonce challenge; a proof with the nonce stands for its freshness.
    old = int(time.time()) - 600
    refused(client_credentials(server, proof_key.proof("POST", url, iat=old)), "use_dpop_nonce", "")
    assert client_credentials(server, proof_key.proof("POST", url, iat=old, nonce=nonce)).status_code == 200


def test_nonce_rotation(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    server.dpop_nonce = True
    url = server.token_url
    first = server.current_dpop_nonce()
    second = server.rotate_dpop_nonce()
    assert second != first
    # The previous nonce is still accepted, and the 200 hands out the new one (§8.2).
    ok = client_credentials(server, proof_key.proof("POST", url, nonce=first))
    assert ok.status_code == 200, ok.text
    assert ok.headers["DPoP-Nonce"] == second
    # Retired: the old nonce is refused with the current one.
    third = server.rotate_dpop_nonce(retire_previous=True)
    refused_answer = client_credentials(server, proof_key.proof("POST", url, nonce=second))
    refused(refused_answer, "use_dpop_nonce", "does not accept")
    assert refused_answer.headers["DPoP-Nonce"] == third
    assert client_credentials(server, proof_key.proof("POST", url, nonce=third)).status_code == 200


def test_jwt_bearer_assertion_survives_a_nonce_challenge(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey], proof_key: ProofKey
) -> None:
    """The grant's own assertion is used up only once the proof passed (documented in devserver.grants)."""
    server.dpop_nonce = True
    form = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion(server, keys["rsa"], iss="client-rsa")}
    first = requests.post(
        server.token_url, data=form, headers={"DPoP": proof_key.proof("POST", server.token_url)}, timeout=10
    )
    refused(first, "use_dpop_nonce", "")
    proof = proof_key.proof("POST", server.token_url, nonce=first.headers["DPoP-Nonce"])
    retry = requests.post(server.token_url, data=form, headers={"DPoP": proof}, timeout=10)
    assert retry.status_code == 200, retry.text
    first_jti = server.token_requests[-2]["dpop"]["claims"]["jti"]
    assert server.token_requests[-1]["dpop"]["claims"]["jti"] != first_jti


def test_metadata_lists_the_dpop_algorithms(server: LocalAuthorizationServer) -> None:
    metadata = requests.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["dpop_signing_alg_values_supported"] == [
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
        "PS256",
        "RS256",
    ]
    assert "mtls_endpoint_aliases" not in metadata  # plain HTTP
    server.dpop_algorithms = ("ES256", "EdDSA")
    metadata = requests.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]


# --------------------------------------------------------------------------- API


@pytest.mark.parametrize(
    ("case", "error", "description"),
    [
        ("missing_proof", "invalid_dpop_proof", "no dpop proof"),
        ("missing_ath", "invalid_dpop_proof", "missing claim ath"),
        ("wrong_ath", "invalid_dpop_proof", "ath does not match"),
        ("other_key", "invalid_token", "not the key the token is bound to"),
        ("proof_for_another_url", "invalid_dpop_proof", "htu does not match"),
        ("proof_for_another_method", "invalid_dpop_proof", "htm post does not match"),
        ("replayed_proof", "invalid_dpop_proof", "jti already used"),
        ("unknown_token", "invalid_token", "unknown access token"),
        ("bearer_token_as_dpop", "invalid_token", "not dpop-bound"),
    ],
)
def test_api_refuses_bad_dpop_requests(
    server: LocalAuthorizationServer,
    proof_key: ProofKey,
    other_key: ProofKey,
    case: str,
    error: str,
    description: str,
) -> None:
    token = dpop_token(server, proof_key)
    url = server.api_url + "/whoami"
    replayed = proof_key.proof("GET", url, access_token=token)
    if case == "replayed_proof":
        assert call_api(server, "/whoami", token, replayed).status_code == 200
    presented = token
    if case == "unknown_token":
        presented = "not-a-token-of-this-server"
    if case == "bearer_token_as_dpop":
        presented = client_credentials(server, None).json()["access_token"]
    proof = {
        "missing_proof": None,
        "missing_ath": proof_key.proof("GET", url),
        "wrong_ath": proof_key.proof("GET", url, access_token="another-token"),
        "other_key": other_key.proof("GET", url, access_token=token),
        "proof_for_another_url": proof_key.proof("GET", server.api_url + "/items", access_token=token),
        "proof_for_another_method": proof_key.proof("POST", url, access_token=token),
        "replayed_proof": replayed,
        "unknown_token": proof_key.proof("GET", url, access_token=presented),
        "bearer_token_as_dpop": proof_key.proof("GET", url, access_token=presented),
    }[case]
    response = call_api(server, "/whoami", presented, proof)
    assert response.status_code == 401, response.text
    challenge = challenges(response.headers["WWW-Authenticate"])["DPoP"]
    assert challenge["error"] == error
    assert description in challenge["error_description"].lower()
    assert challenge["algs"] == " ".join(server.dpop_algorithms)
    assert response.json()["error"] == error
    record = server.api_requests[-1]
    assert (record["auth_scheme"], record["dpop_verified"], record["subject"]) == ("DPoP", False, None)
    assert (record["dpop_failure"] is None) == (case == "unknown_token")  # that proof itself was fine


def test_dpop_token_as_bearer_is_refused(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    """RFC 9449 §7.2: a DPoP-bound token is not a bearer token, with or without a proof alongside."""
    token = dpop_token(server, proof_key)
    for proof in (None, proof_key.proof("GET", server.api_url + "/whoami", access_token=token)):
        response = call_api(server, "/whoami", token, proof, scheme="Bearer")
        assert response.status_code == 401
        found = challenges(response.headers["WWW-Authenticate"])
        assert found["Bearer"]["error"] == "invalid_token"
        assert "dpop-bound" in found["Bearer"]["error_description"].lower()
        assert found["DPoP"]["algs"]  # the scheme to use instead
        assert server.api_requests[-1]["dpop_failure"] == "DPoP-bound token presented as Bearer"


def test_api_dpop_with_query_and_post(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    token = dpop_token(server, proof_key)
    items = requests.get(
        server.api_url + "/items",
        params={"page": 2},
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": proof_key.proof("GET", server.api_url + "/items", access_token=token),  # htu without query
        },
        timeout=10,
    )
    assert items.status_code == 200, items.text
    assert items.json()["page"] == 2
    posted = requests.post(
        server.api_url + "/results",
        json={"rows": 1},
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": proof_key.proof("POST", server.api_url + "/results", access_token=token),
        },
        timeout=10,
    )
    assert posted.status_code == 201, posted.text


def test_api_nonce_round_trip(server: LocalAuthorizationServer, proof_key: ProofKey) -> None:
    token = dpop_token(server, proof_key)
    server.dpop_api_nonce = True
    url = server.api_url + "/whoami"
    first = call_api(server, "/whoami", token, proof_key.proof("GET", url, access_token=token))
    assert first.status_code == 401
    challenge = challenges(first.headers["WWW-Authenticate"])["DPoP"]
    assert challenge["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    assert nonce == server.current_dpop_nonce(api=True) != server.current_dpop_nonce()
    assert server.api_requests[-1]["nonce_challenge"] is True

    ok = call_api(server, "/whoami", token, proof_key.proof("GET", url, access_token=token, nonce=nonce))
    assert ok.status_code == 200, ok.text
    assert "DPoP-Nonce" not in ok.headers
    assert server.api_requests[-1]["nonce_challenge"] is False

    # The token endpoint's nonce is not the API's.
    other = call_api(
        server, "/whoami", token, proof_key.proof("GET", url, access_token=token, nonce=server.current_dpop_nonce())
    )
    assert challenges(other.headers["WWW-Authenticate"])["DPoP"]["error"] == "use_dpop_nonce"

    # Rotation: the old nonce still works once and the 200 carries the new one.
    new = server.rotate_dpop_nonce(api=True)
    rotated = call_api(server, "/whoami", token, proof_key.proof("GET", url, access_token=token, nonce=nonce))
    assert rotated.status_code == 200
    assert rotated.headers["DPoP-Nonce"] == new


def test_reset_restores_the_dpop_knobs(server: LocalAuthorizationServer) -> None:
    nonce = server.current_dpop_nonce()
    server.dpop_nonce = server.dpop_api_nonce = server.dpop_bearer_answer = True
    server.dpop_algorithms = ("ES256",)
    server.reset()
    assert (server.dpop_nonce, server.dpop_api_nonce, server.dpop_bearer_answer) == (False, False, False)
    assert "RS256" in server.dpop_algorithms
    assert server.current_dpop_nonce() != nonce
