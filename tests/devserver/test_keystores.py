"""devserver.keystores: the stores keytool writes are what pyjks / cryptography can read.

The keytool-made stores are built once per session, in parallel (each JVM start costs about
half a second), and every test reads them back with a *different* tool than the one that wrote
them, so a wrong store type, alias or password in :class:`Keystore` shows up as a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jks
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from devserver import keystores
from devserver.keystores import (
    CertificateValidity,
    Keystore,
    detect_store_type,
    have_keytool,
    make_google_service_account_json,
    make_keystore,
    make_keystore_with_fallback,
    make_pem_key,
)

STORE_SPECS: dict[str, dict[str, object]] = {
    # No -storetype and a file named .jks: what Java 17 writes is the question.
    "default": {"name": "legacy", "alias": "MyKey"},
    "pkcs12_multi": {
        "name": "multi",
        "store_type": "pkcs12",
        "key_algorithm": "EC",
        "extra_aliases": ("Second", "third"),
    },
    "jks_keypass": {"name": "sep", "store_type": "jks", "key_password": "keypass1", "alias": "Signing"},
    "jceks_ec384": {"name": "ec", "store_type": "jceks", "key_algorithm": "EC", "curve": "secp384r1"},
    "jks_ed25519": {"name": "ed", "store_type": "jks", "key_algorithm": "Ed25519"},
    # A key rotation: one key about to expire, one fresh (the store's 30 days), one expired.
    "rotation": {
        "name": "rotation",
        "store_type": "pkcs12",
        "alias": "Old",
        "extra_aliases": ("new", "gone"),
        "validity": {"old": CertificateValidity(10), "GONE": CertificateValidity(30, starts_in_days=-40)},
    },
}


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Keystore]:
    if not have_keytool():
        pytest.fail("keytool (Java) is required: run scripts/install-system-deps (Debian: default-jre-headless)")
    directory = tmp_path_factory.mktemp("keytool-stores")
    with ThreadPoolExecutor(max_workers=len(STORE_SPECS)) as pool:
        futures = {
            label: pool.submit(make_keystore, directory, **{"validity_days": 30, **spec})  # type: ignore[arg-type]
            for label, spec in STORE_SPECS.items()
        }
        return {label: future.result() for label, future in futures.items()}


def _public_pem(key: object) -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def _keytool_list(store: Keystore) -> dict[str, str]:
    """alias -> PEM certificate of every PrivateKeyEntry, as ``keytool -list -rfc`` prints them."""
    output = subprocess.run(
        ["keytool", "-J-Duser.language=en", "-list", "-rfc", "-keystore", str(store.path), "-storepass:env", "SP"],
        env={**os.environ, "SP": store.store_password or ""},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = {}
    for block in output.split("Alias name: ")[1:]:
        alias = block.splitlines()[0].strip()
        if "Entry type: PrivateKeyEntry" in block:
            entries[alias] = block[
                block.index("-----BEGIN CERTIFICATE-----") : block.index("-----END CERTIFICATE-----")
            ]
    return entries


def test_java17_default_store_type_is_pkcs12_even_for_a_jks_name(stores: dict[str, Keystore]) -> None:
    store = stores["default"]
    assert store.path.name == "legacy.jks"
    assert store.path.read_bytes()[:1] == b"\x30"  # DER SEQUENCE, not FEEDFEED
    assert store.store_type == "pkcs12"
    with pytest.raises(Exception):  # noqa: B017, PT011 - pyjks raises its own bad-magic error
        jks.KeyStore.load(str(store.path), "changeit")
    loaded = pkcs12.load_pkcs12(store.path.read_bytes(), b"changeit")
    assert loaded.cert is not None
    assert loaded.cert.friendly_name == b"mykey"  # keytool lower-cased "MyKey"
    assert store.alias == "MyKey"
    assert store.aliases == ("mykey",)
    assert _public_pem(loaded.key) == store.public_key_pem()
    assert loaded.cert.certificate.public_bytes(serialization.Encoding.PEM).decode() == store.certificate_pem


def test_pkcs12_with_several_key_entries(stores: dict[str, Keystore]) -> None:
    store = stores["pkcs12_multi"]
    assert store.store_type == "pkcs12"
    assert store.aliases == ("signing", "second", "third")
    listed = _keytool_list(store)
    assert sorted(listed) == sorted(store.aliases)
    assert listed["signing"] in store.certificate_pem
    # Three distinct keys, so alias selection in a client can actually be tested.
    assert len(set(listed.values())) == 3


def test_jks_with_a_separate_key_password(stores: dict[str, Keystore]) -> None:
    store = stores["jks_keypass"]
    assert store.store_type == "jks" == detect_store_type(store.path)
    assert store.path.read_bytes()[:4] == b"\xfe\xed\xfe\xed"
    keystore = jks.KeyStore.load(str(store.path), "changeit", try_decrypt_keys=False)
    assert keystore.store_type == "jks"
    assert list(keystore.private_keys) == ["signing"] == list(store.aliases)
    entry = keystore.private_keys["signing"]
    with pytest.raises(jks.DecryptionFailureException):
        entry.decrypt("changeit")  # the store password does not open the key
    entry.decrypt("keypass1")
    key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert _public_pem(key) == store.public_key_pem()
    chain_cert = x509.load_der_x509_certificate(entry.cert_chain[0][1])
    assert chain_cert.public_bytes(serialization.Encoding.PEM).decode() == store.certificate_pem


def test_jceks_with_an_ec_p384_key(stores: dict[str, Keystore]) -> None:
    store = stores["jceks_ec384"]
    assert store.store_type == "jceks"
    assert store.key_algorithm == "EC"
    keystore = jks.KeyStore.load(str(store.path), "changeit")
    assert keystore.store_type == "jceks"
    entry = keystore.private_keys["signing"]
    key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    assert _public_pem(key) == store.public_key_pem()


def test_jks_with_an_ed25519_key(stores: dict[str, Keystore]) -> None:
    store = stores["jks_ed25519"]
    keystore = jks.KeyStore.load(str(store.path), "changeit")
    entry = keystore.private_keys["signing"]
    # NOTES.md: pyjks' pkey is not PKCS#8 for EC/Ed25519; pkey_pkcs8 is.
    key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert _public_pem(key) == store.public_key_pem()


def test_pkcs12_refuses_a_separate_key_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PKCS#12"):
        make_keystore(tmp_path, "p", store_type="pkcs12", key_password="different1")
    with pytest.raises(ValueError, match="PKCS#12"):
        make_keystore(tmp_path, "p", key_password="different1")  # default type is PKCS#12 too
    assert list(tmp_path.iterdir()) == []


def test_each_alias_gets_its_own_validity(stores: dict[str, Keystore]) -> None:
    """keytool -list (not the exporting code) shows each entry's certificate with the validity asked for."""
    store = stores["rotation"]
    listed = {
        alias: x509.load_pem_x509_certificate((pem + "-----END CERTIFICATE-----\n").encode())
        for alias, pem in _keytool_list(store).items()
    }
    assert sorted(listed) == sorted(store.aliases) == ["gone", "new", "old"]
    for alias, certificate in listed.items():
        assert store.certificate_pem_of(alias.upper()) == certificate.public_bytes(serialization.Encoding.PEM).decode()
    now = datetime.datetime.now(datetime.timezone.utc)

    def days_left(alias: str) -> float:
        return (listed[alias].not_valid_after_utc - now).total_seconds() / 86400

    assert 9 < days_left("old") <= 10
    assert 29 < days_left("new") <= 30
    assert -11 < days_left("gone") <= -9  # started 40 days ago, valid for 30
    assert store.certificate_pem == store.certificate_pem_of("old")


def test_invalid_requests_are_refused_before_running_keytool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="6 characters"):
        make_keystore(tmp_path, "p", store_password="short")
    with pytest.raises(ValueError, match="distinct"):
        make_keystore(tmp_path, "p", alias="Key", extra_aliases=("key",))
    with pytest.raises(ValueError, match="store_type"):
        make_keystore(tmp_path, "p", store_type="bks")
    with pytest.raises(ValueError, match="curve"):
        make_keystore(tmp_path, "p", key_algorithm="EC", curve="secp256k1")
    with pytest.raises(ValueError, match="validity names aliases the store does not have: other"):
        make_keystore(tmp_path, "p", alias="key", validity={"other": CertificateValidity(1)})


@pytest.mark.parametrize(
    ("options", "marker", "key_type"),
    [
        ({}, "-----BEGIN PRIVATE KEY-----", rsa.RSAPrivateKey),
        ({"passphrase": "s3cret"}, "-----BEGIN ENCRYPTED PRIVATE KEY-----", rsa.RSAPrivateKey),
        ({"pkcs1": True}, "-----BEGIN RSA PRIVATE KEY-----", rsa.RSAPrivateKey),
        ({"pkcs1": True, "passphrase": "s3cret"}, "Proc-Type: 4,ENCRYPTED", rsa.RSAPrivateKey),
        ({"key_algorithm": "EC", "curve": "secp521r1"}, "-----BEGIN PRIVATE KEY-----", ec.EllipticCurvePrivateKey),
        ({"key_algorithm": "Ed25519"}, "-----BEGIN PRIVATE KEY-----", ed25519.Ed25519PrivateKey),
        ({"with_certificate": False}, "-----BEGIN PRIVATE KEY-----", rsa.RSAPrivateKey),
    ],
)
def test_pem_keys(tmp_path: Path, options: dict[str, object], marker: str, key_type: type) -> None:
    store = make_pem_key(tmp_path, "key", **options)  # type: ignore[arg-type]
    text = store.path.read_text()
    assert store.store_type == "pem"
    assert marker in text
    assert ("-----BEGIN CERTIFICATE-----" in text) is options.get("with_certificate", True)
    passphrase = options.get("passphrase")
    if passphrase:
        with pytest.raises(TypeError):  # encrypted: loading without the passphrase must fail
            serialization.load_pem_private_key(text.encode(), None)
    key = serialization.load_pem_private_key(text.encode(), passphrase.encode() if passphrase else None)  # type: ignore[union-attr]
    assert isinstance(key, key_type)
    assert _public_pem(key) == store.public_key_pem()
    assert store.path.stat().st_mode & 0o077 == 0


def test_pkcs1_is_for_rsa_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RSA"):
        make_pem_key(tmp_path, "k", key_algorithm="EC", pkcs1=True)


def test_google_service_account_json(tmp_path: Path) -> None:
    path, store = make_google_service_account_json(
        tmp_path, "sa", client_email="robot@demo-project.iam.gserviceaccount.com", token_uri="http://127.0.0.1:1/t"
    )
    document = json.loads(path.read_text())
    assert set(document) >= {
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
        "auth_uri",
        "token_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
    }
    assert document["type"] == "service_account"
    assert document["project_id"] == "demo-project"
    assert document["token_uri"] == "http://127.0.0.1:1/t"
    assert re.fullmatch(r"[0-9a-f]{40}", document["private_key_id"])
    assert document["client_x509_cert_url"].endswith("robot%40demo-project.iam.gserviceaccount.com")
    assert document["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(document["private_key"].encode(), None)
    assert _public_pem(key) == store.public_key_pem()
    assert store.store_type == "google_json"
    assert store.alias == document["private_key_id"]


def test_fallback_without_java_writes_a_pkcs12_java_can_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystores, "have_keytool", lambda: False)
    store = make_keystore_with_fallback(tmp_path, "fallback", alias="Demo", key_algorithm="EC")
    monkeypatch.undo()
    assert store.store_type == "pkcs12" == detect_store_type(store.path)
    loaded = pkcs12.load_pkcs12(store.path.read_bytes(), b"changeit")
    assert loaded.cert is not None
    assert loaded.cert.friendly_name == b"demo"
    assert _public_pem(loaded.key) == store.public_key_pem()
    if have_keytool():  # the point of the fallback: the same file keytool would have made
        assert list(_keytool_list(store)) == ["demo"]


def test_fallback_refuses_what_only_keytool_can_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystores, "have_keytool", lambda: False)
    with pytest.raises(ValueError, match="keytool"):
        make_keystore_with_fallback(tmp_path, "j", store_type="jks")
    with pytest.raises(ValueError, match="keytool"):
        make_keystore_with_fallback(tmp_path, "m", extra_aliases=("b",))


def test_have_keytool_follows_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert have_keytool() is False
    fake = tmp_path / "keytool"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert have_keytool() is True
    assert os.environ["PATH"] == str(tmp_path)


def test_detect_store_type_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "x.pem"
    other.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="not a JKS"):
        detect_store_type(other)
