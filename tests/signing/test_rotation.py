"""Key rotation: key_alias lists several keys of a keytool keystore whose certificates expire at different times.

The local server is registered with the certificate of the key that should sign (and only
that one), so a token proves which key signed; the server also records the assertion's kid.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.signing.key_files.loader import KEY_CACHE
from devserver import keystores as ks
from devserver.keystores import CertificateValidity
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, STORE_PASSWORD, connection_extra


@pytest.fixture(scope="session")
def rotation_store(tmp_path_factory: pytest.TempPathFactory) -> ks.Keystore:
    """Four keys: 'new' (a year), 'soon' (20 days) and 'old' (10 days) in the warning window, 'gone' expired."""
    return ks.make_keystore(
        tmp_path_factory.mktemp("rotation"),
        "rotation",
        store_password=STORE_PASSWORD,
        alias="old",
        extra_aliases=("new", "gone", "soon"),
        validity={
            "old": CertificateValidity(10),
            "new": CertificateValidity(365),
            "gone": CertificateValidity(30, starts_in_days=-40),
            "soon": CertificateValidity(20),
        },
    )


@pytest.fixture
def rotating(rotation_store: ks.Keystore, auth_server: LocalAuthorizationServer, set_connection: Any) -> Any:
    """``rotating(key_alias, expected_signer, **extra)``: a connection over the store; the server knows one key."""

    def define(key_alias: str, signs: str, conn_id: str = "jwt_rotating", **extra: Any) -> JwtBearerHook:
        auth_server.register_client(CLIENT_ID, certificate_pem=rotation_store.certificate_pem_of(signs))
        set_connection(
            conn_id,
            login=CLIENT_ID,
            host=auth_server.api_url,
            extra=connection_extra(rotation_store, auth_server, key_alias=key_alias, **extra),
        )
        return JwtBearerHook(conn_id)

    return define


def granted(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


def test_a_valid_first_key_signs_and_the_others_are_not_opened(rotating: Any, auth_server: Any) -> None:
    KEY_CACHE.clear()
    loads = KEY_CACHE.loads
    hook = rotating("new,old", signs="new")
    hook.get_token()
    assert KEY_CACHE.loads == loads + 1
    assert [r["assertion_verified"] for r in granted(auth_server)] == [True]
    assert hook.credentials.choice is not None
    assert hook.credentials.choice.passed_over == ()


def test_a_first_key_in_the_warning_window_gives_way_to_the_next(
    rotating: Any, auth_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_jwt_provider")
    hook = rotating("old, new", signs="new", key_id='["kid-old", "kid-new"]')
    hook.get_token()
    [record] = granted(auth_server)
    assert record["assertion_header"]["kid"] == "kid-new"
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_jwt_provider.tokens.credentials"]
    [signing] = [line for line in lines if "signing with" in line]
    assert signing.startswith("Connection 'jwt_rotating': signing with key 'new' (kid 'kid-new', RSA-2048, RS256")
    assert "passed over 'old': certificate valid until" in signing
    assert "(9 day(s) left)" in signing or "(10 day(s) left)" in signing
    assert not [r for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("airflow_jwt")]


def test_an_expired_first_key_gives_way_to_the_next(rotating: Any, auth_server: Any) -> None:
    hook = rotating("gone,new", signs="new")
    hook.get_token()
    assert len(granted(auth_server)) == 1
    choice = hook.credentials.choice
    assert choice is not None
    assert [c.name for c in choice.passed_over] == ["gone"]
    assert choice.passed_over[0].describe().startswith("'gone': certificate expired on ")


def test_when_every_key_is_near_expiry_the_first_valid_one_signs_with_a_warning(
    rotating: Any, auth_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hook = rotating("gone,old,soon", signs="old")
    ok, message = hook.test_connection()
    assert ok, message
    assert len(granted(auth_server)) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    [warning] = [w for w in warnings if "the certificate of key" in w]
    assert warning.startswith("Connection 'jwt_rotating': the certificate of key 'old' (CN=old,")
    assert "in 9 day(s)" in warning or "in 10 day(s)" in warning
    assert "No other key in key_alias is valid beyond the warning window" in warning
    # The Test button says which key signed, what was passed over, and the warning.
    assert " with key 'old' (no kid, RSA-2048, RS256" in message
    assert "Passed over 'gone': certificate expired on" in message
    assert "'soon': certificate valid until" in message
    assert f"Warning: {warning}" in message


def test_no_usable_key_lists_each_and_why(rotating: Any, auth_server: Any) -> None:
    hook = rotating("gone, missing", signs="new")
    with pytest.raises(KeystoreError) as info:
        hook.get_token()
    message = str(info.value)
    assert message.startswith("Connection 'jwt_rotating': no key in key_alias can sign: 'gone': certificate expired on")
    assert "'missing': key_file" in message
    assert "has no private-key entry 'missing'; its entries are: gone, new, old, soon" in message
    assert info.value.field == "key_alias"
    assert STORE_PASSWORD not in message
    assert auth_server.token_requests == []


def test_a_single_expired_key_is_refused_by_name(rotating: Any, auth_server: Any) -> None:
    with pytest.raises(KeystoreError, match=r"^Connection 'jwt_rotating': the certificate of key 'gone' .* expired on"):
        rotating("gone", signs="new").get_token()
    assert auth_server.token_requests == []


def test_tokens_from_the_old_key_stay_in_use_until_they_expire(
    rotating: Any, auth_server: Any, rotation_store: ks.Keystore
) -> None:
    """Rotating mid-flight: a hook built before keeps its token; hooks built after sign with the new key.

    The token cache key holds the key's fingerprint, so the two tokens never replace each other.
    """
    before = rotating("soon", signs="soon")
    old_token = before.get_token()
    with before.get_conn() as session:
        assert session.get("whoami").status_code == 200

    after = rotating("new,soon", signs="new")  # the connection now lists the new key first
    new_token = after.get_token()
    assert new_token.access_token != old_token.access_token
    assert before.credentials.token_cache_key() != after.credentials.token_cache_key()
    assert before.credentials.key_fingerprint != after.credentials.key_fingerprint
    assert len(granted(auth_server)) == 2

    assert before.get_token() is old_token  # from the cache: no request
    with before.get_conn() as session:
        assert session.get("whoami").status_code == 200  # the server still honours it
    assert len(granted(auth_server)) == 2


def test_a_pem_key_cannot_rotate(tmp_path: Path, auth_server: Any, set_connection: Any) -> None:
    pem = ks.make_pem_key(tmp_path, "single")
    set_connection("jwt_pem", login=CLIENT_ID, extra=connection_extra(pem, auth_server, key_alias="a,b"))
    with pytest.raises(KeystoreError, match=r"key_alias lists 2 keys, but the pem key material holds one key"):
        JwtBearerHook("jwt_pem").get_token()
