"""JwtBearerCredentials on its own (no hook), against the real local authorization server."""

from __future__ import annotations

import threading
import time

import jwt
import pytest

from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.credentials import MAX_CLIENT_ASSERTION_LIFETIME
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, OTHER_AUDIENCE, CredentialsFactory


def token_requests(server: LocalAuthorizationServer) -> int:
    return len(server.token_requests)


def subject_of(server: LocalAuthorizationServer, token: AccessToken) -> str | None:
    info = server.token_info(token.access_token)
    assert info is not None, "the server did not issue this token"
    return info.sub


# --------------------------------------------------------------------------- the cache key


def test_the_same_parameters_reuse_one_token(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    first = credentials.get_token()
    assert credentials.get_token() is first
    assert credentials.get_token(TokenParameters(subject="alice")) is first  # the connection's subject, spelled out
    assert credentials.get_token(TokenParameters(subject="  ")) is first  # blank means the connection's
    assert credentials_for(register_key=False).get_token() is first  # another object, the same connection
    assert token_requests(auth_server) == 1
    assert subject_of(auth_server, first) == "alice"


def test_subject_selects_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    alice = credentials.get_token()
    bob = credentials.get_token(TokenParameters(subject="bob"))
    assert bob.access_token != alice.access_token
    assert subject_of(auth_server, bob) == "bob"
    assert credentials.get_token(TokenParameters(subject="bob")) is bob
    assert token_requests(auth_server) == 2


def test_scope_selects_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for(scope="read")
    default = credentials.get_token()
    write = credentials.get_token(TokenParameters(scope="write"))
    spelled_out = credentials.get_token(TokenParameters(scope="read"))
    assert default.scope == "read"
    assert write.scope == "write"
    assert write.access_token != default.access_token
    assert spelled_out is default
    assert credentials.get_token(TokenParameters(scope=["write"])) is write  # type: ignore[arg-type]
    assert [r["scope"] for r in auth_server.token_requests] == ["read", "write"]


def test_claims_select_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for(claims={"tenant": "t1"})
    t1 = credentials.get_token()
    t2 = credentials.get_token(TokenParameters(claims={"tenant": "t2"}))
    roles = credentials.get_token(TokenParameters(claims={"roles": ["a", "b"], "ctx": {"x": 1, "y": 2}}))
    assert len({t1.access_token, t2.access_token, roles.access_token}) == 3
    assert credentials.get_token(TokenParameters(claims={"tenant": "t1"})) is t1  # the connection's value
    assert credentials.get_token(TokenParameters(claims={"ctx": {"y": 2, "x": 1}, "roles": ["a", "b"]})) is roles
    sent = [r["assertion_claims"] for r in auth_server.token_requests]
    assert [c["tenant"] for c in sent] == ["t1", "t2", "t1"]  # per-call claims add to the connection's
    assert sent[2]["roles"] == ["a", "b"]


def test_audience_selects_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    default = credentials_for()
    other = credentials_for(register_key=False, audience=OTHER_AUDIENCE)
    assert default.token_cache_key() != other.token_cache_key()

    first = default.get_token()
    second = other.get_token()
    assert second.access_token != first.access_token
    assert [r["assertion_claims"]["aud"] for r in auth_server.token_requests] == [auth_server.token_url, OTHER_AUDIENCE]
    assert other.get_token() is second
    assert default.get_token() is first


def test_the_key_selects_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    """The client's key is rotated: the same settings with another key never reuse the old key's token."""
    old = credentials_for("default")
    old_token = old.get_token()
    new = credentials_for("ec256")  # registers the new key's certificate for the same client
    assert new.token_cache_key() != old.token_cache_key()

    new_token = new.get_token()
    assert new_token.access_token != old_token.access_token
    records = auth_server.token_requests
    assert [(r["assertion_header"]["alg"], r["assertion_verified"]) for r in records] == [
        ("RS256", True),
        ("ES256", True),
    ]


def test_a_handed_in_assertion_selects_the_token(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    erin_assertion = credentials.mint_assertion(TokenParameters(subject="erin"))
    frank_assertion = credentials.mint_assertion(TokenParameters(subject="frank"))

    erin = credentials.get_token(TokenParameters(assertion=erin_assertion))
    assert credentials.get_token(TokenParameters(assertion=erin_assertion)) is erin  # not sent twice
    frank = credentials.get_token(TokenParameters(assertion=frank_assertion))
    own = credentials.get_token()

    assert (subject_of(auth_server, erin), subject_of(auth_server, frank), subject_of(auth_server, own)) == (
        "erin",
        "frank",
        "alice",
    )
    assert token_requests(auth_server) == 3
    assert all(r["success"] for r in auth_server.token_requests)  # no jti was replayed


# --------------------------------------------------------------------------- a token the API refused


def test_refresh_rejected_replaces_the_rejected_token_once(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    rejected = credentials.get_token()

    fresh = credentials.refresh_rejected(DEFAULT_TOKEN, rejected)
    assert fresh.access_token != rejected.access_token
    assert credentials.get_token() is fresh
    # a late 401 on the old token (another request that was in flight) keeps the fresh one
    assert credentials.refresh_rejected(DEFAULT_TOKEN, rejected) is fresh
    assert token_requests(auth_server) == 2


def test_threads_that_saw_the_same_401_make_one_token_request(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    rejected = credentials.get_token()
    callers = 8
    barrier = threading.Barrier(callers)
    results: list[AccessToken] = []
    errors: list[BaseException] = []

    def caller(delay: float) -> None:
        barrier.wait()
        time.sleep(delay)  # the 401s arrive spread over the refresh, some after it
        try:
            results.append(credentials.refresh_rejected(DEFAULT_TOKEN, rejected))
        except BaseException as exc:  # reported below rather than lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i * 0.005,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert len(results) == callers
    assert len({id(token) for token in results}) == 1
    assert results[0].access_token != rejected.access_token
    assert token_requests(auth_server) == 2  # the first token, then exactly one refresh


def test_refresh_rejected_for_one_subject_leaves_the_others(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    alice = credentials.get_token()
    bob_params = TokenParameters(subject="bob")
    bob = credentials.get_token(bob_params)
    credentials.refresh_rejected(bob_params, bob)
    assert credentials.get_token() is alice
    assert credentials.get_token(bob_params) is not bob


# --------------------------------------------------------------------------- invalidate


def test_invalidate(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    bob_params = TokenParameters(subject="bob")
    first = credentials.get_token()
    bob = credentials.get_token(bob_params)

    credentials.invalidate()
    second = credentials.get_token()
    assert second.access_token != first.access_token
    assert credentials.get_token(bob_params) is bob  # only the named parameters' token is forgotten

    credentials.invalidate(DEFAULT_TOKEN, token=first)  # no longer the cached one: kept
    assert credentials.get_token() is second
    credentials.invalidate(DEFAULT_TOKEN, token=second)
    assert credentials.get_token() is not second
    assert token_requests(auth_server) == 4


# --------------------------------------------------------------------------- the API base URL


def test_api_base_url_is_the_host_without_a_token_request(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for()
    assert credentials.api_base_url() == auth_server.api_url
    assert credentials.api_base_url(TokenParameters(subject="bob")) == auth_server.api_url
    assert token_requests(auth_server) == 0


def test_api_base_url_is_the_instance_url_without_a_host(credentials_for: CredentialsFactory, auth_server) -> None:
    auth_server.omit_expires_in = True  # answers like Salesforce: instance_url, no expires_in
    credentials = credentials_for(host=None)
    assert credentials.api_base_url() == auth_server.url
    token = credentials.get_token()
    assert token.extra["instance_url"] == auth_server.url
    assert token_requests(auth_server) == 1  # the token fetched for the URL is the one then used


def test_api_base_url_is_none_without_host_or_instance_url(credentials_for: CredentialsFactory, auth_server) -> None:
    assert credentials_for(host=None).api_base_url() is None


# --------------------------------------------------------------------------- client assertions


@pytest.mark.parametrize(("lifetime", "expected"), [(60, 60), (600, MAX_CLIENT_ASSERTION_LIFETIME)])
def test_client_assertion_claims(
    credentials_for: CredentialsFactory, keystores: dict[str, ks.Keystore], auth_server, lifetime: int, expected: int
) -> None:
    credentials = credentials_for(lifetime=lifetime, subject="alice", claims={"tenant": "t1"})
    assertion = credentials.mint_client_assertion()

    claims = jwt.decode(
        assertion,
        keystores["default"].certificate().public_key(),
        algorithms=["RS256"],
        audience=auth_server.token_url,
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == auth_server.token_url
    assert claims["exp"] - claims["iat"] == expected <= MAX_CLIENT_ASSERTION_LIFETIME
    assert "tenant" not in claims  # the grant's claims are not the client's
    assert credentials.mint_client_assertion() != assertion


def test_private_key_jwt_client_assertion_is_accepted(credentials_for: CredentialsFactory, auth_server) -> None:
    credentials = credentials_for(client_auth="private_key_jwt")
    token = credentials.get_token()
    assert subject_of(auth_server, token) == "alice"
    (record,) = auth_server.token_requests
    assert record["client_auth"] == "private_key_jwt"
    assert record["client_assertion_verified"] is True
    assert record["client_assertion_claims"]["sub"] == CLIENT_ID
    assert record["client_assertion_claims"]["jti"] != record["assertion_claims"]["jti"]
