"""The key-holder secret that seals shared tokens, from every kind of signer, on real devices.

Local keys give a digest of the private key; a remote key (SoftHSM2 through PKCS#11, AWS KMS
through moto) gives a deterministic RS256 signature over a fixed context; ECDSA and PSS devices
sign with randomness and give none: the shared cache then needs the client secret or refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.key_files.loader import load_signing_key
from airflow_jwt_provider.signing.key_files.source import KeyRequest, KeySource
from airflow_jwt_provider.signing.signers.aws_kms.signer import AwsKmsSigner
from airflow_jwt_provider.signing.signers.base import Signer, key_holder_secret
from airflow_jwt_provider.signing.signers.local.signer import LocalKeySigner
from airflow_jwt_provider.signing.signers.pkcs11.signer import Pkcs11Signer
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from devserver.hsm import SoftHsm
from devserver.keystores import Keystore
from tests.conftest import STORE_PASSWORD


def pkcs11(softhsm: SoftHsm, label: str, algorithm: str | None = None) -> Pkcs11Signer:
    return Pkcs11Signer(
        softhsm.module_path, softhsm.token_label, softhsm.user_pin, key_label=label, algorithm=algorithm
    )


def local(store: Keystore, algorithm: str | None = None) -> LocalKeySigner:
    key = load_signing_key(KeyRequest(KeySource(path=str(store.path)), keystore_password=STORE_PASSWORD))
    return LocalKeySigner(key, algorithm)


def remote_credentials(signer: Signer, **extra: Any) -> JwtBearerCredentials:
    password = extra.pop("password", None)
    conn = Connection(
        conn_id="jwt_remote",
        conn_type="jwt_bearer",
        login="client",
        password=password,
        extra=json.dumps({"auth_url": "https://login.example.com/token", "key_file": "/unused", **extra}),
    )
    return JwtBearerCredentials(parse_connection(conn), signer)


def test_local_keys_of_every_type_give_a_stable_secret(keystores: dict[str, Keystore]) -> None:
    secrets = {}
    for name in ("default", "ec256", "ed25519"):
        first, second = key_holder_secret(local(keystores[name])), key_holder_secret(local(keystores[name]))
        assert first is not None
        assert first == second
        assert len(first) == 32
        secrets[name] = first
    assert len(set(secrets.values())) == 3
    assert key_holder_secret(local(keystores["default"], "PS256")) == secrets["default"]  # the key, not the algorithm


def test_an_rsa_key_in_an_hsm_signs_a_stable_secret(softhsm: SoftHsm) -> None:
    first = key_holder_secret(pkcs11(softhsm, "rsa-signing"))
    assert first is not None
    assert first == key_holder_secret(pkcs11(softhsm, "rsa-signing"))  # another signer object, the same key
    assert len(first) == 32
    assert key_holder_secret(pkcs11(softhsm, "rsa-signing", "PS256")) is None  # PSS signatures are randomised


def test_an_ec_key_in_an_hsm_gives_no_secret(softhsm: SoftHsm) -> None:
    assert key_holder_secret(pkcs11(softhsm, "ec-signing")) is None


def test_kms_keys(kms_keys: dict[str, dict[str, Any]], aws_conn_id: str) -> None:
    rsa = AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id=aws_conn_id)
    secret = key_holder_secret(rsa)
    assert secret is not None
    assert secret == key_holder_secret(AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id=aws_conn_id))
    assert key_holder_secret(AwsKmsSigner(kms_keys["ec"]["key_id"], aws_conn_id=aws_conn_id)) is None


def test_a_shared_cache_with_an_ecdsa_device_needs_the_client_secret(softhsm: SoftHsm) -> None:
    signer = pkcs11(softhsm, "ec-signing")
    refused = remote_credentials(signer, token_cache="redis")
    with pytest.raises(JwtBearerConfigError, match="token_cache 'redis' encrypts") as info:
        refused.token_cache_secret()
    assert info.value.field == "token_cache"
    assert "Set a client secret (Password) or [jwt_bearer] token_cache_secret, or sign with RS256 or EdDSA" in str(
        info.value
    )
    with_secret = remote_credentials(signer, token_cache="redis", password="client-secret-value")
    assert len(with_secret.token_cache_secret()) == 32
    other_secret = remote_credentials(signer, token_cache="redis", password="another-client-secret")
    assert other_secret.token_cache_secret() != with_secret.token_cache_secret()


def test_the_sealing_secret_depends_on_the_key_and_the_client_secret(softhsm: SoftHsm) -> None:
    rsa = pkcs11(softhsm, "rsa-signing")
    plain = remote_credentials(rsa, token_cache="redis").token_cache_secret()
    assert plain == remote_credentials(pkcs11(softhsm, "rsa-signing"), token_cache="redis").token_cache_secret()
    with_secret = remote_credentials(rsa, token_cache="redis", password="client-secret-value").token_cache_secret()
    assert with_secret != plain


def test_a_signer_may_bring_its_own_secret(keystores: dict[str, Keystore]) -> None:
    class Short(LocalKeySigner):
        def key_holder_secret(self) -> bytes:
            return b"too short"

    key = load_signing_key(KeyRequest(KeySource(path=str(keystores["default"].path)), keystore_password=STORE_PASSWORD))
    with pytest.raises(TypeError, match="at least 16 bytes"):
        key_holder_secret(Short(key))
