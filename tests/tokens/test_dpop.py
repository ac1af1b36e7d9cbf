"""DPoP proofs and keys (RFC 9449), checked with PyJWT's verification, not with the code that made them."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest

from airflow_jwt_provider.connection.kinds import DPoPKeySource
from airflow_jwt_provider.connection.settings import DPoPSettings
from airflow_jwt_provider.signing.dpop import DPoPKey, access_token_hash, jwk_thumbprint
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.dpop import (
    DPoPBinding,
    NonceStore,
    challenges,
    htu_of,
    nonce_challenge,
    request_headers,
)


def verify(proof: str) -> tuple[dict[str, object], dict[str, object]]:
    """What a resource server does first (RFC 9449 §4.3): the signature with the header's own public key."""
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt"
    key = jwt.PyJWK(header["jwk"], algorithm=header["alg"]).key
    claims = jwt.decode(proof, key, algorithms=[header["alg"]], options={"require": ["jti", "htm", "htu", "iat"]})
    return header, claims


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "ES512", "EdDSA", "PS256", "RS256"])
def test_a_generated_key_signs_proofs_any_verifier_accepts(algorithm: str) -> None:
    key = DPoPKey.generate(algorithm)
    header, claims = verify(key.proof("get", "https://api.example.com/items", access_token="tok-123", nonce="n-1"))
    assert header["alg"] == algorithm
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://api.example.com/items"
    assert claims["nonce"] == "n-1"
    assert claims["ath"] == base64.urlsafe_b64encode(hashlib.sha256(b"tok-123").digest()).rstrip(b"=").decode()
    assert abs(int(str(claims["iat"])) - time.time()) < 5


def test_the_header_jwk_holds_the_thumbprint_members_only_never_a_private_one() -> None:
    for algorithm, members in {
        "ES256": {"crv", "kty", "x", "y"},
        "RS256": {"e", "kty", "n"},
        "EdDSA": {"crv", "kty", "x"},
    }.items():
        key = DPoPKey.generate(algorithm)
        header, _ = verify(key.proof("POST", "https://as.example/token"))
        assert set(header["jwk"]) == members  # type: ignore[arg-type]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(header["jwk"])  # type: ignore[arg-type]


def test_the_thumbprint_is_rfc_7638s() -> None:
    """RFC 7638 §3.1's example key and thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
        "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
        "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_every_proof_is_new_and_a_key_binds_to_its_thumbprint() -> None:
    key = DPoPKey.generate()
    first, second = (verify(key.proof("POST", "https://as.example/token"))[1] for _ in range(2))
    assert first["jti"] != second["jti"]
    assert key.jkt == jwk_thumbprint(key.public_jwk)
    assert repr(key) == f"DPoPKey(alg='ES256', jkt={key.jkt!r})"  # never the private key


def test_a_generated_key_travels_with_its_token_and_back() -> None:
    key = DPoPKey.generate("ES384")
    again = DPoPKey.from_private_der(key.private_der(), "ES384")
    assert again.jkt == key.jkt
    assert again.travels_with_token


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("HTTPS://User:pw@AS.Example:443/token?x=1#f", "https://as.example/token"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("https://api.example.com:8443/a/b/?q", "https://api.example.com:8443/a/b/"),
        ("http://[::1]:80/x", "http://[::1]/x"),
    ],
)
def test_htu_is_the_normalized_target_without_query_fragment_or_user_info(url: str, htu: str) -> None:
    assert htu_of(url) == htu


def test_nonces_are_kept_per_server_and_bounded() -> None:
    store = NonceStore(max_servers=2)
    store.remember("https://as.example/token", {"DPoP-Nonce": "as-1"})
    store.remember("https://api.example/items", {"DPoP-Nonce": "rs-1"})
    assert store.get("https://as.example:443/other") == "as-1"  # the same origin
    assert store.get("https://api.example/x") == "rs-1"
    store.remember("https://as.example/token", {"DPoP-Nonce": "as-2"})  # a 200 may rotate it
    assert store.get("https://as.example/token") == "as-2"
    store.remember("https://third.example/", {"DPoP-Nonce": "t"})
    assert store.get("https://api.example/x") is None  # the least recently used went
    assert store.remember("https://as.example/token", {}) is None


def test_a_nonce_challenge_is_told_from_other_refusals() -> None:
    nonce = {"DPoP-Nonce": "n"}
    assert nonce_challenge(400, nonce, {"error": "use_dpop_nonce"})
    assert not nonce_challenge(400, {}, {"error": "use_dpop_nonce"})  # no nonce to retry with
    assert not nonce_challenge(400, nonce, {"error": "invalid_dpop_proof"})
    rs = {**nonce, "WWW-Authenticate": 'Bearer error="invalid_token", DPoP error="use_dpop_nonce", algs="ES256"'}
    assert nonce_challenge(401, rs)
    assert not nonce_challenge(401, {**nonce, "WWW-Authenticate": 'DPoP error="invalid_token"'})
    assert challenges('DPoP algs="ES256 PS256"') == {"dpop": {"algs": "ES256 PS256"}}


def test_a_dpop_token_goes_with_a_proof_carrying_its_hash_and_the_servers_nonce() -> None:
    from airflow_jwt_provider.tokens.dpop import NONCES

    key = DPoPKey.generate()
    token = AccessToken("the-access-token", token_type="DPoP", dpop_key=key)
    NONCES.remember("https://api.example/items", {"DPoP-Nonce": "rs-nonce"})
    headers = request_headers(token, "get", "https://api.example/items?page=2")
    assert headers["Authorization"] == "DPoP the-access-token"
    _, claims = verify(headers["DPoP"])
    assert (claims["htm"], claims["htu"], claims["nonce"]) == ("GET", "https://api.example/items", "rs-nonce")
    assert claims["ath"] == access_token_hash("the-access-token")
    assert request_headers(AccessToken("bearer-token"), "GET", "https://api.example/") == {
        "Authorization": "Bearer bearer-token"
    }
    NONCES.clear()


def test_a_dpop_token_without_its_key_is_never_sent() -> None:
    with pytest.raises(ValueError, match="never alone"):
        AccessToken("t", token_type="DPoP").authorization_header  # noqa: B018
    assert "the-access-token" not in repr(
        AccessToken("the-access-token", token_type="DPoP", dpop_key=DPoPKey.generate())
    )


def test_a_generated_key_is_one_per_connection_and_process() -> None:
    binding = DPoPBinding(DPoPSettings(), "conn_a", None)
    assert binding.key() is binding.key()
    assert DPoPBinding(DPoPSettings(), "conn_a", None).key() is binding.key()  # another hook, the same key
    assert DPoPBinding(DPoPSettings(), "conn_b", None).key().jkt != binding.key().jkt
    assert binding.cache_tag() == "dpop:generated:ES256"


def test_the_signer_key_binds_tokens_a_cache_holds_without_it() -> None:
    signer_key = DPoPKey.generate("RS256")
    binding = DPoPBinding(DPoPSettings(key=DPoPKeySource.SIGNER), "conn_s", signer_key.signer)
    assert binding.key().jkt == signer_key.jkt
    assert binding.cache_tag() == f"dpop:signer:{signer_key.jkt}"
    from_cache = AccessToken("t", token_type="DPoP")  # a shared store keeps no signer key
    assert binding.bind(from_cache).dpop_key is not None
    assert json.dumps(binding.bind(from_cache).dpop_key.public_jwk)  # type: ignore[union-attr]
