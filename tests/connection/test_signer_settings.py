"""The signer settings of a connection: which signer, what it needs, key lists, and settings that do not fit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_jwt_provider.connection.fields import ALL_FIELDS
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import SIGNERS
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.get_provider_info import conn_fields
from airflow_jwt_provider.signing.signers.aws_kms import AwsKmsSignerSettings
from airflow_jwt_provider.signing.signers.local import LocalSignerSettings
from airflow_jwt_provider.signing.signers.pkcs11 import Pkcs11SignerSettings

AUTH_URL = "https://login.example.com/oauth2/token"
PKCS11 = {
    "auth_url": AUTH_URL,
    "signer": "pkcs11",
    "pkcs11_module": "/usr/lib/softhsm/libsofthsm2.so",
    "pkcs11_token_label": "jwt-signing",
    "keystore_password": "1234-pin",
    "key_alias": "rsa-signing",
}
KMS = {"auth_url": AUTH_URL, "signer": "aws_kms", "key_alias": "alias/jwt-signing"}


def parse(extra: dict[str, Any], **fields: Any) -> JwtBearerSettings:
    fields.setdefault("login", "client-1")
    conn = Connection(conn_id="my_conn", conn_type="jwt_bearer", extra=json.dumps(extra), **fields)
    return parse_connection(conn)


def error_of(extra: dict[str, Any], **fields: Any) -> JwtBearerConfigError:
    with pytest.raises(JwtBearerConfigError) as info:
        parse(extra, **fields)
    assert str(info.value).startswith("Connection 'my_conn': ")
    return info.value


def test_local_is_the_default_signer() -> None:
    settings = parse({"auth_url": AUTH_URL, "key_file": "/keys/k.p12", "key_alias": "Signing"})
    assert settings.signer.signer == "local"
    assert isinstance(settings.signer, LocalSignerSettings)
    assert settings.signer.source.path == "/keys/k.p12"
    assert settings.key_aliases == ("Signing",)


def test_pkcs11_settings() -> None:
    settings = parse({**PKCS11, "signer": "PKCS11", "pkcs11_key_id": "0a", "certificate_file": "/keys/hsm.pem"})
    device = settings.signer
    assert device.signer == "pkcs11"
    assert isinstance(device, Pkcs11SignerSettings)
    assert (device.module, device.token_label, device.key_object_id) == (
        "/usr/lib/softhsm/libsofthsm2.so",
        "jwt-signing",
        "0a",
    )
    assert device.pin == "1234-pin"  # read from keystore_password: masked by Airflow by its name
    assert settings.key_aliases == ("rsa-signing",)
    assert device.certificate_file == "/keys/hsm.pem"
    assert "1234-pin" not in repr(settings)


def test_pkcs11_key_id_alone_selects_the_key() -> None:
    extra = {k: v for k, v in PKCS11.items() if k != "key_alias"}
    settings = parse({**extra, "pkcs11_key_id": "01"})
    assert settings.key_aliases == ()
    assert isinstance(settings.signer, Pkcs11SignerSettings)
    assert settings.signer.key_object_id == "01"


def test_aws_kms_settings_default_to_aws_default() -> None:
    settings = parse(KMS)
    assert isinstance(settings.signer, AwsKmsSignerSettings)
    assert (settings.signer.signer, settings.key_aliases, settings.signer.aws_conn_id) == (
        "aws_kms",
        ("alias/jwt-signing",),
        "aws_default",
    )
    assert parse({**KMS, "aws_conn_id": "kms_prod"}).signer == AwsKmsSignerSettings("kms_prod")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("new, old", ("new", "old")),
        ("new,old,", ("new", "old")),
        ('["new", "old"]', ("new", "old")),
        (["new", " old "], ("new", "old")),
        ("only", ("only",)),
    ],
)
def test_key_alias_may_list_keys(value: Any, expected: tuple[str, ...]) -> None:
    assert parse({**KMS, "key_alias": value}).key_aliases == expected


def test_key_id_may_give_one_kid_per_key() -> None:
    settings = parse({**KMS, "key_alias": "new,old", "key_id": '["kid-new", "kid-old"]'})
    assert settings.key_ids == ("kid-new", "kid-old")
    assert settings.key_id == "kid-new"  # what presets check (ServiceNow wants a kid)
    single = parse({**KMS, "key_alias": "new,old", "key_id": "shared-kid"})
    assert (single.key_id, single.key_ids) == ("shared-kid", ())


def test_a_preset_default_of_another_signer_is_not_a_misfit() -> None:
    """The Google preset fills keystore_type google_json; with a KMS key that means nothing, and is no error."""
    settings = parse({**KMS, "preset": "google", "scope": "https://www.googleapis.com/auth/cloud-platform"})
    assert isinstance(settings.signer, AwsKmsSignerSettings)
    assert not settings.key_names_endpoint


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        (
            {**PKCS11, "key_file": "/keys/k.p12"},
            "key_file",
            "key_file does not apply to signer 'pkcs11' (only signer 'local' reads it); "
            "remove key_file or set signer to 'local'",
        ),
        ({**KMS, "keystore_password": "x"}, "keystore_password", "set signer to 'local' or 'pkcs11'"),
        ({**KMS, "pkcs11_module": "/m.so"}, "pkcs11_module", "does not apply to signer 'aws_kms'"),
        (
            {"auth_url": AUTH_URL, "key_file": "/k.p12", "aws_conn_id": "aws_default"},
            "aws_conn_id",
            "does not apply to signer 'local'",
        ),
        (
            {"auth_url": AUTH_URL, "key_file": "/k.p12", "certificate_file": "/c.pem"},
            "certificate_file",
            "set signer to 'pkcs11' or 'aws_kms'",
        ),
        ({**KMS, "signer": "gcp_kms"}, "signer", "use one of: local, pkcs11, aws_kms"),
        ({**KMS, "key_alias": None}, "key_alias", "(the KMS key) is required with signer 'aws_kms'"),
        ({**PKCS11, "pkcs11_module": ""}, "pkcs11_module", "is required with signer 'pkcs11'"),
        ({**PKCS11, "pkcs11_token_label": None}, "pkcs11_token_label", "is required with signer 'pkcs11'"),
        ({**PKCS11, "keystore_password": None}, "keystore_password", "(the user PIN of the PKCS#11 token"),
        ({**PKCS11, "key_alias": None}, "key_alias", "set the label of the private key"),
        ({**PKCS11, "key_alias": "a,b", "pkcs11_key_id": "01"}, "pkcs11_key_id", "selects one key"),
        ({**KMS, "key_alias": "a,a"}, "key_alias", "lists a key twice"),
        ({**KMS, "key_alias": "[1, 2]"}, "key_alias", "comma-separated, or a JSON list"),
        ({**KMS, "key_alias": "a,b", "key_id": '["k1"]'}, "key_id", "lists 1 kid(s) but key_alias lists 2 key(s)"),
        ({**KMS, "key_alias": "a", "key_id": '["", "k"]'}, "key_id", "non-empty strings"),
    ],
)
def test_signer_errors_name_the_setting(extra: dict[str, Any], field: str, message: str) -> None:
    error = error_of(extra)
    assert error.field == field
    assert f"Connection 'my_conn': {field} " in str(error)
    assert message in str(error)


def test_the_pin_is_not_in_error_messages() -> None:
    error = error_of({**PKCS11, "keystore_password": "9876-secret-pin", "key_file": "/k.p12"})
    assert "9876-secret-pin" not in str(error)


def test_every_signer_setting_is_a_form_field() -> None:
    form = conn_fields()
    signer_settings = [name for name, field in ALL_FIELDS.items() if field.signer_scoped]
    assert set(signer_settings) >= {"key_file", "private_key", "pkcs11_module", "aws_conn_id", "certificate_file"}
    for registration in SIGNERS.load_all():  # what every installed signer reads is declared and in the form
        for key in [*(f.name for f in registration.fields), *registration.reads]:
            assert key in signer_settings, (registration.name, key)
            assert key in form, (registration.name, key)
    assert form["signer"]["schema"]["enum"] == [None, "local", "pkcs11", "aws_kms"]
    assert form["keystore_password"]["schema"]["format"] == "password"  # the PIN field is a secret box
