"""Connections with signer pkcs11 and aws_kms: settings → signer → token, verified by the local server.

The server is registered with the public key read out of the device by test set-up code (not
by the provider), so a token proves that the device signed with the key the connection names.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.signing.rotation import choose_key
from airflow_jwt_provider.signing.signers._device_cache import SIGNER_CACHE
from airflow_jwt_provider.signing.signers.aws_kms.signer import AwsKmsSigner
from airflow_jwt_provider.signing.signers.pkcs11.signer import Pkcs11Signer
from devserver.certificates import TestCa
from devserver.hsm import SoftHsm
from devserver.kms import KmsEmulator
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, kms_extra, pkcs11_extra


@pytest.fixture(autouse=True)
def empty_signer_cache() -> None:
    SIGNER_CACHE.clear()


def successful(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r.get("success")]


def test_pkcs11_connection_gets_a_token(
    softhsm: SoftHsm, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    auth_server.register_client(CLIENT_ID, public_key_pem=softhsm.key("ec-signing").public_key_pem)
    set_connection("hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, auth_server, "ec-signing", key_id="hsm-kid"))
    hook = JwtBearerHook("hsm")
    token = hook.get_token()
    assert token.access_token
    assert isinstance(hook.signer, Pkcs11Signer)
    [record] = successful(auth_server)
    assert record["assertion_verified"] is True
    assert record["assertion_header"] == {"alg": "ES256", "typ": "JWT", "kid": "hsm-kid"}
    assert record["issued_sub"] == "alice"


def test_pkcs11_key_by_id_and_certificate_on_the_token(
    softhsm: SoftHsm, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    """rsa-signing has a certificate object on the token: the server checks the x5t headers against it."""
    key = softhsm.key("rsa-signing")
    auth_server.register_client(CLIENT_ID, certificate_pem=key.certificate_pem)
    extra = pkcs11_extra(softhsm, auth_server, key_alias=None, pkcs11_key_id="01", x5t=True)
    set_connection("hsm", login=CLIENT_ID, extra=extra)
    JwtBearerHook("hsm").get_token()
    [record] = successful(auth_server)
    assert record["assertion_header"]["alg"] == "RS256"
    assert "x5t#S256" in record["assertion_header"]


def test_pkcs11_errors_name_the_connection_settings(softhsm: SoftHsm, set_connection: Any) -> None:
    wrong_pin = "0000-wrong-pin"
    set_connection("hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, _NoServer(), keystore_password=wrong_pin))
    with pytest.raises(KeystoreError) as info:
        JwtBearerHook("hsm").get_token()
    message = str(info.value)
    assert message.startswith("Connection 'hsm': keystore_password is not the user PIN of token 'jwt-signing'")
    assert info.value.field == "keystore_password"
    assert wrong_pin not in message
    assert softhsm.user_pin not in message

    set_connection("hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, _NoServer(), "no-such-key"))
    with pytest.raises(
        KeystoreError, match="no private key on token 'jwt-signing' matches label 'no-such-key'"
    ) as info:
        JwtBearerHook("hsm").get_token()
    assert info.value.field == "key_alias"

    set_connection("hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, _NoServer(), pkcs11_token_label="nope"))
    with pytest.raises(KeystoreError, match=r"^Connection 'hsm': pkcs11_token_label 'nope' matches no token") as info:
        JwtBearerHook("hsm").get_token()
    assert info.value.field == "pkcs11_token_label"


def test_pkcs11_signers_are_built_once_per_process_and_pin(
    softhsm: SoftHsm, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    set_connection("hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, auth_server))
    builds = SIGNER_CACHE.loads
    first = JwtBearerHook("hsm").signer
    second = JwtBearerHook("hsm").signer
    assert first is second
    assert SIGNER_CACHE.loads == builds + 1
    # The cache key never holds the PIN, in clear or as a plain hash.
    pin = softhsm.user_pin
    for digest in SIGNER_CACHE._entries:
        assert pin not in digest
        assert hashlib.sha256(pin.encode()).hexdigest() != digest
    # Another PIN is another entry: a wrong PIN is refused by the device even though a signer is cached.
    set_connection("hsm2", login=CLIENT_ID, extra=pkcs11_extra(softhsm, auth_server, keystore_password="1111-bad"))
    with pytest.raises(KeystoreError, match="is not the user PIN"):
        JwtBearerHook("hsm2").signer  # noqa: B018 - building it is the test
    assert JwtBearerHook("hsm").signer is first  # and the right one still signs
    auth_server.register_client(CLIENT_ID, public_key_pem=softhsm.key("rsa-signing").public_key_pem)
    assert JwtBearerHook("hsm").get_token().access_token


def test_kms_connection_gets_a_token(
    kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    key = kms_keys["ec"]
    auth_server.register_client(CLIENT_ID, public_key_pem=key["public_key_pem"])
    set_connection("kms", login=CLIENT_ID, extra=kms_extra(key["alias"], aws_conn_id, auth_server))
    hook = JwtBearerHook("kms")
    assert hook.get_token().access_token
    assert isinstance(hook.signer, AwsKmsSigner)
    [record] = successful(auth_server)
    assert record["assertion_verified"] is True
    assert record["assertion_header"] == {"alg": "ES256", "typ": "JWT"}


def test_kms_signers_are_cached_one_get_public_key_per_process(
    kms_emulator: KmsEmulator, kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, set_connection: Any
) -> None:
    """What the cache saves, measured: the KMS calls of a build and the time of a second build."""
    set_connection("kms", login=CLIENT_ID, extra=kms_extra(kms_keys["rsa"]["key_id"], aws_conn_id, _NoServer()))
    with kms_emulator.recording() as requests:
        started = time.perf_counter()
        first = JwtBearerHook("kms").credentials.signer
        first_build = time.perf_counter() - started
        started = time.perf_counter()
        second = JwtBearerHook("kms").credentials.signer
        second_build = time.perf_counter() - started
    calls = [r["headers"].get("X-Amz-Target", "") for r in requests]
    assert [c for c in calls if c.endswith("GetPublicKey")] == ["TrentService.GetPublicKey"]
    assert first is second
    print(f"\nKMS signer: first credentials build {first_build * 1000:.1f} ms, cached {second_build * 1000:.1f} ms")
    assert second_build < first_build


def test_kms_with_a_certificate_file_sends_x5t(
    kms_keys: dict[str, dict[str, Any]],
    aws_conn_id: str,
    auth_server: LocalAuthorizationServer,
    set_connection: Any,
    tmp_path: Path,
) -> None:
    key = kms_keys["rsa"]
    public_key = serialization.load_pem_public_key(key["public_key_pem"].encode())
    certificate = TestCa.create().issue(public_key, "kms key")
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    path = tmp_path / "kms.pem"
    path.write_text(pem)
    auth_server.register_client(CLIENT_ID, certificate_pem=pem)
    extra = kms_extra(key["key_id"], aws_conn_id, auth_server, certificate_file=str(path), x5t=True)
    set_connection("kms", login=CLIENT_ID, extra=extra)
    JwtBearerHook("kms").get_token()
    [record] = successful(auth_server)
    assert {"x5t", "x5t#S256"} <= set(record["assertion_header"])


def test_kms_errors_name_the_connection_settings(aws_conn_id: str, set_connection: Any) -> None:
    set_connection("kms", login=CLIENT_ID, extra=kms_extra("alias/does-not-exist", aws_conn_id, _NoServer()))
    with pytest.raises(KeystoreError, match=r"^Connection 'kms': key_alias 'alias/does-not-exist': no such KMS key"):
        JwtBearerHook("kms").get_token()

    extra = kms_extra("alias/jwt-signing-ec", aws_conn_id, _NoServer(), algorithm="RS256")
    set_connection("kms", login=CLIENT_ID, extra=extra)
    with pytest.raises(JwtBearerConfigError, match=r"^Connection 'kms': algorithm RS256 does not fit KMS key") as info:
        choose_key(JwtBearerHook("kms").settings)
    assert info.value.field == "algorithm"


class _NoServer:
    """Stands for the server where a test fails before any token request."""

    token_url = "http://127.0.0.1:9/oauth2/token"
