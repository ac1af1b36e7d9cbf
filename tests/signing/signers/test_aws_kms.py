"""AwsKmsSigner against moto's KMS server, reached through an Airflow ``aws`` connection."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.signing.signers.aws_kms.signer import INSTALL_HINT, AwsKmsSigner
from airflow_jwt_provider.signing.signers.base import Signer
from devserver.certificates import TestCa
from devserver.kms import ACCESS_KEY_ID, SECRET_ACCESS_KEY, KmsEmulator, create_signing_key
from tests.signing.signers.jws_checks import assert_signs_valid_jws, sign_compact, verify_with_pyjwt

SECRET_CANARY = "kms-secret-canary-Zq8x"


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), str(exc.__cause__ or ""), str(exc.__context__ or "")):
        for secret in (SECRET_ACCESS_KEY, SECRET_CANARY, *secrets):
            assert secret not in text, f"{secret!r} leaked into {text!r}"


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        ("rsa", "RS256"),
        ("rsa", "RS384"),
        ("rsa", "RS512"),
        ("rsa", "PS256"),
        ("rsa", "PS384"),
        ("rsa", "PS512"),
        ("ec", "ES256"),
        ("ec384", "ES384"),
    ],
)
def test_signatures_verify_as_jws(
    kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, key: str, algorithm: str
) -> None:
    signer = AwsKmsSigner(kms_keys[key]["key_id"], aws_conn_id=aws_conn_id, algorithm=algorithm)
    assert isinstance(signer, Signer)
    assert signer.algorithm == algorithm
    assert (
        signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        == kms_keys[key]["public_key_pem"]
    )
    assert_signs_valid_jws(signer, kms_keys[key]["public_key_pem"])


@pytest.mark.parametrize(
    ("key", "expected", "kms_algorithm"),
    [
        ("rsa", "RS256", "RSASSA_PKCS1_V1_5_SHA_256"),
        ("ec", "ES256", "ECDSA_SHA_256"),
        ("ec384", "ES384", "ECDSA_SHA_384"),
    ],
)
def test_default_algorithm_follows_the_key(
    kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, key: str, expected: str, kms_algorithm: str
) -> None:
    signer = AwsKmsSigner(kms_keys[key]["key_id"], aws_conn_id=aws_conn_id)
    assert signer.algorithm == expected
    assert signer.kms_algorithm == kms_algorithm
    assert signer.key_id is None
    assert signer.certificate is None  # KMS holds no certificates


@pytest.mark.parametrize("form", ["key_id", "arn", "alias", "alias_arn"])
def test_key_by_id_arn_or_alias(kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, form: str) -> None:
    key = kms_keys["ec"]
    reference = {
        "key_id": key["key_id"],
        "arn": key["arn"],
        "alias": key["alias"],
        "alias_arn": key["arn"].split(":key/")[0] + ":" + key["alias"],
    }[form]
    signer = AwsKmsSigner(reference, aws_conn_id=aws_conn_id)
    assert key["key_id"] in signer.key_arn  # pinned to the key the alias named when the signer was built
    assert_signs_valid_jws(signer, key["public_key_pem"])


def test_only_the_digest_reaches_kms(
    kms_emulator: KmsEmulator, kms_keys: dict[str, dict[str, Any]], aws_conn_id: str
) -> None:
    """Sign requests carry a DIGEST: no claim reaches AWS, and no 4096-byte RAW limit (think of x5c headers)."""
    signer = AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id=aws_conn_id, algorithm="PS384")
    claims = {"sub": "claim-canary-7f3", "aud": "https://as.example/token", "iat": 1, "exp": 4102444800}
    claims["pad"] = "x" * 10_000
    with kms_emulator.recording() as requests:
        token, data, _ = sign_compact(signer, claims)
    assert len(data) > 10_000
    verify_with_pyjwt(token, kms_keys["rsa"]["public_key_pem"], "PS384")
    signs = [r for r in requests if r["headers"].get("X-Amz-Target") == "TrentService.Sign"]
    assert len(signs) == 1
    body = signs[0]["body"]
    assert body["MessageType"] == "DIGEST"
    assert body["SigningAlgorithm"] == "RSASSA_PSS_SHA_384"
    assert base64.b64decode(body["Message"]) == hashlib.sha384(data).digest()
    assert "claim-canary-7f3" not in json.dumps(requests)


def test_signing_from_many_threads(kms_keys: dict[str, dict[str, Any]], aws_conn_id: str) -> None:
    signers = [
        AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id=aws_conn_id, algorithm="PS256"),
        AwsKmsSigner(kms_keys["ec"]["key_id"], aws_conn_id=aws_conn_id),
    ]
    public_keys = {signers[0].algorithm: kms_keys["rsa"]["public_key_pem"], "ES256": kms_keys["ec"]["public_key_pem"]}
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(signer: AwsKmsSigner) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(5):
                results.append((signer.algorithm, sign_compact(signer)[0]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(signers[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 30
    for algorithm, token in results:
        verify_with_pyjwt(token, public_keys[algorithm], algorithm)


def test_certificate_from_a_file(kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, tmp_path: Path) -> None:
    ca = TestCa.create()
    ec_public = serialization.load_pem_public_key(kms_keys["ec"]["public_key_pem"].encode())
    certificate = ca.issue(ec_public, "kms key ec")
    path = tmp_path / "kms-ec.pem"
    # A chain file (leaf after the CA) is fine: the signer picks the certificate of its key.
    path.write_bytes(
        ca.certificate.public_bytes(serialization.Encoding.PEM) + certificate.public_bytes(serialization.Encoding.PEM)
    )
    signer = AwsKmsSigner(kms_keys["ec"]["key_id"], aws_conn_id=aws_conn_id, certificate_file=path)
    assert signer.certificate == certificate

    with pytest.raises(KeystoreError) as excinfo:
        AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id=aws_conn_id, certificate_file=path)
    assert excinfo.value.field == "certificate_file"
    assert "holds no certificate for the signing key" in str(excinfo.value)


def test_unknown_key_and_alias(aws_conn_id: str) -> None:
    for reference in (str(uuid.uuid4()), "alias/no-such-alias"):
        with pytest.raises(KeystoreError) as excinfo:
            AwsKmsSigner(reference, aws_conn_id=aws_conn_id)
        assert excinfo.value.field == "kms_key_id"
        assert "no such KMS key in region us-east-1" in str(excinfo.value)
        assert "NotFoundException" in str(excinfo.value)
        assert_secret_free(excinfo.value, ACCESS_KEY_ID)


def test_disabled_key(kms_emulator: KmsEmulator, aws_conn_id: str) -> None:
    client = kms_emulator.client()
    key = create_signing_key(client, "ECC_NIST_P256")
    signer = AwsKmsSigner(key["key_id"], aws_conn_id=aws_conn_id)
    client.disable_key(KeyId=key["key_id"])

    with pytest.raises(KeystoreError) as excinfo:
        signer.sign(b"header.payload")  # disabled after the signer was built
    assert excinfo.value.field == "kms_key_id"
    assert "is disabled" in str(excinfo.value)
    assert "enable-key" in str(excinfo.value)
    assert_secret_free(excinfo.value, ACCESS_KEY_ID)

    with pytest.raises(KeystoreError, match="is disabled"):
        AwsKmsSigner(key["key_id"], aws_conn_id=aws_conn_id)

    client.enable_key(KeyId=key["key_id"])
    assert_signs_valid_jws(signer, key["public_key_pem"])


def test_key_pending_deletion(kms_emulator: KmsEmulator, aws_conn_id: str) -> None:
    client = kms_emulator.client()
    key = create_signing_key(client, "RSA_2048")
    client.schedule_key_deletion(KeyId=key["key_id"], PendingWindowInDays=7)
    with pytest.raises(KeystoreError) as excinfo:
        AwsKmsSigner(key["key_id"], aws_conn_id=aws_conn_id)
    assert "cannot be used in its current state" in str(excinfo.value)
    assert "KMSInvalidStateException" in str(excinfo.value)


def test_key_that_is_not_for_signing(kms_emulator: KmsEmulator, aws_conn_id: str) -> None:
    client = kms_emulator.client()
    encrypt_key = client.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    with pytest.raises(KeystoreError) as excinfo:
        AwsKmsSigner(encrypt_key, aws_conn_id=aws_conn_id)
    assert excinfo.value.field == "kms_key_id"
    assert "KeyUsage ENCRYPT_DECRYPT" in str(excinfo.value)
    assert "SIGN_VERIFY" in str(excinfo.value)


def test_curve_jws_cannot_use(kms_emulator: KmsEmulator, aws_conn_id: str) -> None:
    key = create_signing_key(kms_emulator.client(), "ECC_SECG_P256K1")
    with pytest.raises(JwtBearerConfigError) as excinfo:
        AwsKmsSigner(key["key_id"], aws_conn_id=aws_conn_id)
    assert excinfo.value.field == "kms_key_id"
    assert "EC-secp256k1" in str(excinfo.value)


@pytest.mark.parametrize(
    ("key", "algorithm", "allowed"),
    [("rsa", "ES256", "RS256, RS384, RS512, PS256, PS384, PS512"), ("ec", "PS256", "ES256"), ("ec", "ES384", "ES256")],
)
def test_algorithm_must_fit_the_key(
    kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, key: str, algorithm: str, allowed: str
) -> None:
    with pytest.raises(JwtBearerConfigError) as excinfo:
        AwsKmsSigner(kms_keys[key]["key_id"], aws_conn_id=aws_conn_id, algorithm=algorithm)
    assert excinfo.value.field == "algorithm"
    assert f"algorithm {algorithm} does not fit KMS key" in str(excinfo.value)
    assert allowed in str(excinfo.value)


def test_access_denied_and_refused_credentials(
    kms_emulator: KmsEmulator, kms_keys: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With IAM enforced by the emulator: a user allowed kms:GetPublicKey but not kms:Sign, and unknown keys."""
    iam = kms_emulator.boto3_client("iam")
    user = f"jwt-signer-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="public-key-only",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:GetPublicKey", "Resource": "*"}]}
        ),
    )
    access_key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_KMS_LIMITED",
        kms_emulator.connection(login=access_key["AccessKeyId"], password=access_key["SecretAccessKey"]),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_KMS_BOGUS", kms_emulator.connection(login="AKIABOGUS0000000", password=SECRET_CANARY)
    )
    kms_emulator.enforce_iam(True)
    try:
        signer = AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id="kms_limited")
        with pytest.raises(KeystoreError) as excinfo:
            signer.sign(b"header.payload")
        assert excinfo.value.field == "aws_conn_id"
        assert "may not call kms:Sign" in str(excinfo.value)
        assert "'kms_limited'" in str(excinfo.value)
        assert_secret_free(excinfo.value, access_key["SecretAccessKey"])
        assert access_key["SecretAccessKey"] not in repr(signer)

        with pytest.raises(KeystoreError) as excinfo:
            AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id="kms_bogus")
        assert excinfo.value.field == "aws_conn_id"
        assert "refused the credentials of Airflow connection 'kms_bogus'" in str(excinfo.value)
        assert_secret_free(excinfo.value, "AKIABOGUS0000000")
    finally:
        kms_emulator.enforce_iam(False)


def test_secrets_stay_out_of_repr(
    kms_emulator: KmsEmulator, kms_keys: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_KMS_CANARY", kms_emulator.connection(login="AKIACANARY000000", password=SECRET_CANARY)
    )
    signer = AwsKmsSigner(kms_keys["ec"]["alias"], aws_conn_id="kms_canary")
    text = repr(signer)
    assert SECRET_CANARY not in text
    assert "AKIACANARY000000" not in text
    assert "alias/jwt-signing-ec" in text
    assert "'kms_canary'" in text
    assert "ES256" in text


def test_connection_settings_reach_the_client(
    kms_emulator: KmsEmulator, kms_keys: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """endpoint_url and botocore settings come from the connection's extra, as for any amazon hook."""
    dead_port = kms_emulator.connection(
        endpoint_url="http://127.0.0.1:9",
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 2},
    )
    monkeypatch.setenv("AIRFLOW_CONN_KMS_DEAD", dead_port)
    with pytest.raises(KeystoreError) as excinfo:
        AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id="kms_dead")
    assert excinfo.value.field == "aws_conn_id"
    assert "cannot reach KMS at http://127.0.0.1:9" in str(excinfo.value)

    monkeypatch.setenv("AIRFLOW_CONN_KMS_OTHER_REGION", kms_emulator.connection(region_name="eu-west-3"))
    with pytest.raises(KeystoreError, match="no such KMS key in region eu-west-3"):
        AwsKmsSigner(kms_keys["rsa"]["key_id"], aws_conn_id="kms_other_region")


def test_empty_and_malformed_key_ids(aws_conn_id: str) -> None:
    with pytest.raises(JwtBearerConfigError) as excinfo:
        AwsKmsSigner("  ", aws_conn_id=aws_conn_id)
    assert excinfo.value.field == "kms_key_id"
    with pytest.raises((JwtBearerConfigError, KeystoreError)) as excinfo:
        AwsKmsSigner("x" * 3000, aws_conn_id=aws_conn_id)
    assert excinfo.value.field == "kms_key_id"


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.base_aws", None)
    with pytest.raises(KeystoreError) as excinfo:
        AwsKmsSigner("alias/anything", aws_conn_id="aws_default")
    assert INSTALL_HINT in str(excinfo.value)
    assert excinfo.value.field == "kms_key_id"
