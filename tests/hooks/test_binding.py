"""Tokens a thief cannot use, through the hook: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).

The local server verifies every proof and every client certificate with its own code (joserfc, the TLS
handshake): the token endpoint binds the token to the proof's key or to the certificate, the API
checks the binding on each call. The stolen-token tests replay a bound token the way a thief would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk import Connection

from airflow_jwt_provider.cli.diagnosis import Status, diagnose
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.exceptions import JwtBearerConfigError, TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.signing.dpop import DPoPKey
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from airflow_jwt_provider.tokens.dpop import NONCES
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, connection_extra, register

WHOAMI = {"sub": "alice", "client_id": CLIENT_ID, "scope": None}


@pytest.fixture(autouse=True)
def fresh_nonces() -> Iterator[None]:
    NONCES.clear()
    yield
    NONCES.clear()


def hook_for(
    server: LocalAuthorizationServer, store: ks.Keystore, *, login: str = CLIENT_ID, **extra: Any
) -> JwtBearerHook:
    conn = Connection(
        conn_id="bound",
        conn_type="jwt_bearer",
        login=login,
        host=server.api_url,
        extra=json.dumps(connection_extra(store, server, **extra)),
    )
    hook = JwtBearerHook.from_connection(conn)
    hook.__dict__["credentials"] = JwtBearerCredentials.from_settings(hook.settings, cache=TokenCache())
    return hook


def granted(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


# --------------------------------------------------------------------------- DPoP


def test_a_dpop_token_is_bound_to_the_generated_key_and_every_call_proves_it(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    hook = hook_for(auth_server, store, dpop=True)
    token = hook.get_token()
    assert token.token_type == "DPoP"
    assert token.dpop_key is not None
    issued = auth_server.token_info(token.access_token)
    assert issued is not None
    assert issued.jkt == token.dpop_key.jkt  # the server bound it to the proof's key
    assert granted(auth_server)[-1]["dpop"]["header"]["alg"] == "ES256"
    for _ in range(3):
        assert hook.run("whoami").json() == WHOAMI
    calls = auth_server.api_requests
    assert [c["auth_scheme"] for c in calls] == ["DPoP"] * 3
    assert all(c["dpop_verified"] for c in calls)
    assert len({c["dpop"]["claims"]["jti"] for c in calls}) == 3  # a new proof per call


def test_server_nonces_are_fetched_once_per_server_and_each_retry_is_a_new_request(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    """Token endpoint and API each ask for their own nonce (§8, §9): one retry each, a fresh client assertion."""
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_nonce = True
    auth_server.dpop_api_nonce = True
    hook = hook_for(auth_server, store, dpop=True, client_auth="private_key_jwt")
    assert hook.run("whoami").json() == WHOAMI
    assert hook.run("whoami").json() == WHOAMI  # the nonces are known now: no more challenges
    tokens = auth_server.token_requests
    assert [r["dpop_nonce_challenge"] for r in tokens] == [True, False]
    assert tokens[0]["client_assertion_claims"]["jti"] != tokens[1]["client_assertion_claims"]["jti"]
    api = auth_server.api_requests
    assert [(c["status"], c["nonce_challenge"]) for c in api] == [(401, True), (200, False), (200, False)]
    assert api[1]["dpop"]["claims"]["nonce"] == auth_server.current_dpop_nonce(api=True)
    assert tokens[1]["dpop"]["claims"]["nonce"] == auth_server.current_dpop_nonce()
    assert auth_server.current_dpop_nonce() != auth_server.current_dpop_nonce(api=True)


def test_a_nonce_rotated_on_a_200_is_used_next(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_api_nonce = True
    hook = hook_for(auth_server, store, dpop=True)
    hook.run("whoami")
    new = auth_server.rotate_dpop_nonce(api=True)  # the next 200 carries it
    hook.run("whoami")
    hook.run("whoami")
    assert auth_server.api_requests[-1]["dpop"]["claims"]["nonce"] == new
    assert [c["status"] for c in auth_server.api_requests] == [401, 200, 200, 200]


def test_a_bearer_answer_to_a_dpop_request_is_refused_unless_allowed(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], caplog: pytest.LogCaptureFixture
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_bearer_answer = True
    with pytest.raises(TokenEndpointError, match="answered the DPoP request with a Bearer token") as info:
        hook_for(auth_server, store, dpop=True).get_token()
    assert "dpop_allow_bearer" in str(info.value)
    allowed = hook_for(auth_server, store, dpop=True, dpop_allow_bearer=True)
    assert allowed.get_token().token_type == "Bearer"
    assert "not bound to the key" in caplog.text
    assert allowed.run("whoami").json() == WHOAMI


def test_a_stolen_dpop_token_is_useless(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    """Replayed without a proof, with another key's proof, or with a proof of the owner for another URL: refused."""
    store = keystores["default"]
    register(auth_server, store)
    hook = hook_for(auth_server, store, dpop=True)
    token = hook.get_token()
    assert token.dpop_key is not None
    url = f"{auth_server.api_url}/whoami"
    as_bearer = requests.get(url, headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
    no_proof = requests.get(url, headers={"Authorization": f"DPoP {token.access_token}"}, timeout=10)
    thief = DPoPKey.generate()
    other_key = requests.get(
        url,
        headers={
            "Authorization": f"DPoP {token.access_token}",
            "DPoP": thief.proof("GET", url, access_token=token.access_token),
        },
        timeout=10,
    )
    elsewhere = token.dpop_key.proof("GET", f"{auth_server.api_url}/items", access_token=token.access_token)
    other_url = requests.get(
        url, headers={"Authorization": f"DPoP {token.access_token}", "DPoP": elsewhere}, timeout=10
    )
    assert [r.status_code for r in (as_bearer, no_proof, other_key, other_url)] == [401, 401, 401, 401]
    assert all(r["dpop_verified"] is False for r in auth_server.api_requests[-3:])


def test_the_signers_key_can_prove_and_a_shared_cache_needs_no_key_then(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], tmp_path: Path
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    extra = {"dpop": True, "dpop_key": "signer", "token_cache": "file", "token_cache_dir": str(tmp_path)}
    first = hook_for(auth_server, store, **extra)
    token = first.get_token()
    assert token.dpop_key is not None
    assert granted(auth_server)[-1]["dpop"]["header"]["alg"] == "RS256"
    second = hook_for(auth_server, store, **extra)  # another process's view: from the shared store
    assert second.run("whoami").json() == WHOAMI
    assert len(granted(auth_server)) == 1


def test_a_generated_key_travels_sealed_with_its_token_to_other_processes(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], tmp_path: Path
) -> None:
    from airflow_jwt_provider.tokens import dpop as dpop_module

    store = keystores["default"]
    register(auth_server, store)
    extra = {"dpop": True, "token_cache": "file", "token_cache_dir": str(tmp_path)}
    first = hook_for(auth_server, store, **extra)
    token = first.get_token()
    assert token.dpop_key is not None
    dpop_module._GENERATED.clear()  # another process: it would generate another key of its own
    second = hook_for(auth_server, store, **extra)
    shared = second.get_token()
    assert shared.access_token == token.access_token
    assert shared.dpop_key is not None
    assert shared.dpop_key.jkt == token.dpop_key.jkt  # the key came with the token
    assert second.run("whoami").json() == WHOAMI
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert token.access_token.encode() not in stored  # sealed, key and all


def test_dpop_settings_are_checked(keystores: dict[str, ks.Keystore], auth_server: LocalAuthorizationServer) -> None:
    store = keystores["default"]

    def parse(**extra: Any) -> Any:
        return parse_connection(
            Connection(
                conn_id="c",
                conn_type="jwt_bearer",
                login=CLIENT_ID,
                extra=json.dumps(connection_extra(store, auth_server, **extra)),
            )
        )

    with pytest.raises(JwtBearerConfigError, match="dpop_key is set but dpop is not") as info:
        parse(dpop_key="signer")
    assert info.value.field == "dpop_key"
    with pytest.raises(JwtBearerConfigError, match="both bind the token") as info:
        parse(dpop=True, mtls=True)
    assert info.value.field == "mtls"
    with pytest.raises(JwtBearerConfigError, match="applies to a generated DPoP key"):
        parse(dpop=True, dpop_key="signer", dpop_algorithm="ES256")
    assert parse(dpop=True, dpop_algorithm="EdDSA").dpop.algorithm == "EdDSA"


def test_check_shows_the_binding_and_the_nonce_round_trip(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_nonce = True
    conn = Connection(
        conn_id="bound_check",
        conn_type="jwt_bearer",
        login=CLIENT_ID,
        extra=json.dumps(connection_extra(store, auth_server, dpop=True)),
    )
    steps = {step.name: step for step in diagnose(conn)}
    assert steps["binding"].status is Status.OK
    text = "\n".join(steps["binding"].lines)
    assert "DPoP-bound (token_type DPoP) to the generated key ES256" in text
    assert "the token endpoint gave one (the round trip worked)" in text


# --------------------------------------------------------------------------- mTLS


@pytest.fixture(scope="module")
def tls_server() -> Iterator[LocalAuthorizationServer]:
    server = LocalAuthorizationServer(tls=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls(tls_server: LocalAuthorizationServer) -> Iterator[LocalAuthorizationServer]:
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE
    from airflow_jwt_provider.tokens.metadata import forget_metadata

    tls_server.reset()
    TOKEN_CACHE.invalidate()
    forget_metadata()
    yield tls_server
    tls_server.reset()


def pem_key_file(tmp_path: Path, certificate_pem: str, key_pem: str) -> str:
    path = tmp_path / "client.pem"
    path.write_text(key_pem + certificate_pem)
    return str(path)


def mtls_hook(server: LocalAuthorizationServer, login: str, key_file: str, **extra: Any) -> JwtBearerHook:
    values = {"auth_url": server.token_url, "key_file": key_file, "verify": str(server.ca_file), "subject": "alice"}
    values.update(extra)
    conn = Connection(
        conn_id="mtls",
        conn_type="jwt_bearer",
        login=login,
        host=server.api_url,
        extra=json.dumps({k: v for k, v in values.items() if v is not None}),
    )
    hook = JwtBearerHook.from_connection(conn)
    hook.__dict__["credentials"] = JwtBearerCredentials.from_settings(hook.settings, cache=TokenCache())
    return hook


def test_tls_client_auth_and_a_certificate_bound_token(tls: LocalAuthorizationServer, tmp_path: Path) -> None:
    """RFC 8705 §2.1 and §3: the CA-issued certificate authenticates the client and binds the token."""
    certificate, key = tls.issue_client_certificate("airflow-mtls")
    tls.register_client(
        "mtls-client", tls_client_auth_subject_dn="CN=airflow-mtls", tls_client_certificate_bound_access_tokens=True
    )
    hook = mtls_hook(
        tls,
        "mtls-client",
        pem_key_file(tmp_path, certificate, key),
        client_auth="tls_client_auth",
        grant="client_credentials",
    )
    assert hook.run("whoami").json()["client_id"] == "mtls-client"
    record = granted(tls)[-1]
    assert record["client_auth"] == "tls_client_auth"
    assert record["client_certificate"]["subject"] == "CN=airflow-mtls"
    issued = tls.token_info(hook.get_token().access_token)
    assert issued is not None
    assert issued.x5t_s256 == record["client_certificate"]["x5t#S256"]
    assert tls.api_requests[-1]["client_certificate"]["x5t#S256"] == issued.x5t_s256


def test_self_signed_tls_client_auth_with_the_keystores_own_certificate(
    tls: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]
) -> None:
    store = keystores["default"]
    tls.register_client(
        CLIENT_ID, self_signed_certificate_pem=store.certificate_pem, tls_client_certificate_bound_access_tokens=True
    )
    hook = mtls_hook(
        tls,
        CLIENT_ID,
        str(store.path),
        keystore_password=store.store_password,
        client_auth="self_signed_tls_client_auth",
        grant="client_credentials",
    )
    assert hook.run("whoami").json()["client_id"] == CLIENT_ID
    assert granted(tls)[-1]["client_auth"] == "self_signed_tls_client_auth"


def test_a_stolen_certificate_bound_token_is_useless_without_the_certificate(
    tls: LocalAuthorizationServer, tmp_path: Path
) -> None:
    certificate, key = tls.issue_client_certificate("owner")
    tls.register_client("owner", tls_client_auth_subject_dn="CN=owner", tls_client_certificate_bound_access_tokens=True)
    hook = mtls_hook(
        tls,
        "owner",
        pem_key_file(tmp_path, certificate, key),
        client_auth="tls_client_auth",
        grant="client_credentials",
    )
    token = hook.get_token()
    url = f"{tls.api_url}/whoami"
    plain = requests.get(
        url, headers={"Authorization": f"Bearer {token.access_token}"}, verify=str(tls.ca_file), timeout=10
    )
    thief_certificate, thief_key = tls.issue_client_certificate("thief")
    thief_file = tmp_path / "thief.pem"
    thief_file.write_text(thief_key + thief_certificate)
    other = requests.get(
        url,
        headers={"Authorization": f"Bearer {token.access_token}"},
        verify=str(tls.ca_file),
        cert=str(thief_file),
        timeout=10,
    )
    assert (plain.status_code, other.status_code) == (401, 401)


def test_the_mtls_alias_of_the_metadata_is_the_token_endpoint(tls: LocalAuthorizationServer, tmp_path: Path) -> None:
    """RFC 8705 §5: with auth_issuer and no auth_url, a client using mTLS takes mtls_endpoint_aliases.token_endpoint."""
    certificate, key = tls.issue_client_certificate("alias-user")
    tls.register_client("alias-user", tls_client_auth_subject_dn="CN=alias-user")
    hook = mtls_hook(
        tls,
        "alias-user",
        pem_key_file(tmp_path, certificate, key),
        auth_url=None,
        auth_issuer=tls.issuer,
        client_auth="tls_client_auth",
        grant="client_credentials",
    )
    assert hook.credentials.token_url == tls.mtls_token_url
    hook.get_token()
    assert granted(tls)[-1]["path"] == "/mtls/oauth2/token"


def test_a_device_key_cannot_do_mtls(
    keystores: dict[str, ks.Keystore], softhsm: Any, auth_server: LocalAuthorizationServer
) -> None:
    from tests.conftest import pkcs11_extra

    extra = pkcs11_extra(softhsm, auth_server, mtls=True)
    conn = Connection(conn_id="hsm_mtls", conn_type="jwt_bearer", login=CLIENT_ID, extra=json.dumps(extra))
    with pytest.raises(JwtBearerConfigError, match="a key in an HSM or KMS cannot be used") as info:
        JwtBearerCredentials.from_settings(parse_connection(conn), cache=TokenCache())
    assert info.value.field == "mtls"


def test_no_proof_key_or_certificate_reaches_the_logs(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.e2e.conftest import JWT_PATTERN

    store = keystores["default"]
    register(auth_server, store)
    auth_server.dpop_api_nonce = True
    caplog.set_level(logging.DEBUG)
    hook = hook_for(auth_server, store, dpop=True)
    hook.run("whoami")
    token = hook.get_token()
    assert token.dpop_key is not None
    assert JWT_PATTERN.search(caplog.text) is None
    assert token.access_token not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert "dpop_key" not in repr(token)
