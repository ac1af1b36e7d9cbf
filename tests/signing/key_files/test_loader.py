"""Key loading from keytool-made keystores, PEM and Google JSON keys, and its error messages."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.signing.certificates import certificate_warning, check_certificate
from airflow_jwt_provider.signing.key_files.loader import KEY_CACHE, load_signing_key
from airflow_jwt_provider.signing.key_files.source import KeyRequest, KeySource, detect_keystore_type
from airflow_jwt_provider.signing.signers.local.signer import LocalKeySigner
from devserver import keystores as ks
from tests.conftest import KEY_PASSWORD, STORE_PASSWORD


def request_for(store: ks.Keystore, **overrides: object) -> KeyRequest:
    values: dict[str, object] = {
        "source": KeySource(path=str(store.path)),
        "keystore_password": store.store_password,
        "key_password": store.key_password,
    }
    values.update(overrides)
    return KeyRequest(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def empty_key_cache() -> None:
    KEY_CACHE.clear()


def test_default_keytool_store_is_pkcs12_whatever_the_name(keystores: dict[str, ks.Keystore]) -> None:
    store = keystores["default"]
    assert detect_keystore_type(store.path.read_bytes()) == "pkcs12"
    key = load_signing_key(request_for(store))
    assert key.store_type == "pkcs12"
    assert isinstance(key.private_key, rsa.RSAPrivateKey)
    assert LocalKeySigner(key).algorithm == "RS256"


@pytest.mark.parametrize(
    ("name", "store_type", "key_class", "algorithm"),
    [
        ("jks", "jks", rsa.RSAPrivateKey, "RS256"),
        ("jceks", "jceks", ec.EllipticCurvePrivateKey, "ES384"),
        ("ec256", "pkcs12", ec.EllipticCurvePrivateKey, "ES256"),
        ("ec521", "pkcs12", ec.EllipticCurvePrivateKey, "ES512"),
        ("ed25519", "pkcs12", ed25519.Ed25519PrivateKey, "EdDSA"),
        ("pem_pkcs8", "pem", rsa.RSAPrivateKey, "RS256"),
        ("pem_pkcs1_encrypted", "pem", rsa.RSAPrivateKey, "RS256"),
        ("pem_ec_encrypted", "pem", ec.EllipticCurvePrivateKey, "ES256"),
    ],
)
def test_each_format_loads_with_its_certificate(
    keystores: dict[str, ks.Keystore], name: str, store_type: str, key_class: type, algorithm: str
) -> None:
    store = keystores[name]
    key = load_signing_key(request_for(store))
    assert key.store_type == store_type
    assert isinstance(key.private_key, key_class)
    assert LocalKeySigner(key).algorithm == algorithm
    assert key.certificate is not None
    assert key.certificate == store.certificate()


def test_key_password_differs_from_store_password(keystores: dict[str, ks.Keystore]) -> None:
    store = keystores["jks"]
    assert store.key_password == KEY_PASSWORD != STORE_PASSWORD
    with pytest.raises(KeystoreError, match="set key_password") as info:
        load_signing_key(request_for(store, key_password=None))
    assert info.value.field == "key_password"


@pytest.mark.parametrize("alias", ["secondary", "SECONDARY", "Primary", "primary"])
def test_alias_selects_entry_case_insensitively(keystores: dict[str, ks.Keystore], alias: str) -> None:
    store = keystores["pkcs12_multi"]
    key = load_signing_key(request_for(store, key_alias=alias))
    assert key.alias == alias.lower()
    assert key.certificate is not None
    assert key.certificate.public_key().public_numbers() == key.private_key.public_key().public_numbers()


def test_multi_entry_pkcs12_entries_have_distinct_keys(keystores: dict[str, ks.Keystore]) -> None:
    store = keystores["pkcs12_multi"]
    first = load_signing_key(request_for(store, key_alias="primary"))
    second = load_signing_key(request_for(store, key_alias="secondary"))
    assert first.fingerprint != second.fingerprint
    # each entry's certificate is the one of its own key
    assert first.certificate != second.certificate


def test_several_entries_without_alias_lists_them(keystores: dict[str, ks.Keystore]) -> None:
    with pytest.raises(KeystoreError, match=r"several private-key entries \(primary, secondary\)") as info:
        load_signing_key(request_for(keystores["pkcs12_multi"]))
    assert info.value.field == "key_alias"


@pytest.mark.parametrize("name", ["default", "jks", "jceks"])
def test_unknown_alias_names_the_entries(keystores: dict[str, ks.Keystore], name: str) -> None:
    store = keystores[name]
    with pytest.raises(KeystoreError, match="has no private-key entry 'nope'; its entries are: ") as info:
        load_signing_key(request_for(store, key_alias="nope"))
    assert info.value.field == "key_alias"
    assert store.aliases[0] in str(info.value)


@pytest.mark.parametrize("name", ["default", "jks", "jceks", "pem_pkcs1_encrypted", "pem_ec_encrypted"])
def test_wrong_store_password(keystores: dict[str, ks.Keystore], name: str) -> None:
    with pytest.raises(KeystoreError, match="keystore_password") as info:
        load_signing_key(request_for(keystores[name], keystore_password="wrong-password"))
    assert info.value.field == "keystore_password"
    assert "wrong-password" not in str(info.value)


def test_encrypted_pem_without_passphrase(keystores: dict[str, ks.Keystore]) -> None:
    with pytest.raises(KeystoreError, match="encrypted; set keystore_password"):
        load_signing_key(request_for(keystores["pem_ec_encrypted"], keystore_password=None))


@pytest.mark.parametrize("name", ["default", "jks", "jceks"])
def test_truncated_keystore(keystores: dict[str, ks.Keystore], name: str, tmp_path: Path) -> None:
    data = keystores[name].path.read_bytes()
    broken = tmp_path / "broken"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(KeystoreError) as info:
        load_signing_key(request_for(keystores[name], source=KeySource(path=str(broken))))
    message = str(info.value)
    assert str(broken) in message
    assert "damaged" in message or "truncated" in message


def test_not_a_keystore(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a key\n")
    with pytest.raises(KeystoreError, match=r"is not a keystore .* PEM private key .* JSON key") as info:
        load_signing_key(KeyRequest(source=KeySource(path=str(path))))
    assert info.value.field == "key_file"


def test_missing_file_names_the_path() -> None:
    with pytest.raises(KeystoreError, match=r"key_file '/nonexistent/k\.p12' does not exist"):
        load_signing_key(KeyRequest(source=KeySource(path="/nonexistent/k.p12")))


def test_declared_type_contradicting_content(keystores: dict[str, ks.Keystore]) -> None:
    with pytest.raises(KeystoreError, match="keystore_type says 'jks' but the content is 'pkcs12'") as info:
        load_signing_key(request_for(keystores["default"], keystore_type="jks"))
    assert info.value.field == "keystore_type"


def test_inline_material_pem_and_base64_keystore(keystores: dict[str, ks.Keystore]) -> None:
    pem = keystores["pem_pkcs8"]
    from_text = load_signing_key(KeyRequest(source=KeySource(inline=pem.path.read_text())))
    assert from_text.fingerprint == load_signing_key(request_for(pem)).fingerprint
    store = keystores["default"]
    encoded = base64.b64encode(store.path.read_bytes()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    inline = load_signing_key(KeyRequest(source=KeySource(inline=wrapped), keystore_password=store.store_password))
    assert inline.store_type == "pkcs12"


def test_inline_garbage_is_explained() -> None:
    with pytest.raises(KeystoreError, match="private_key is neither PEM text") as info:
        load_signing_key(KeyRequest(source=KeySource(inline="not base64 at all!!")))
    assert info.value.field == "private_key"


def test_google_service_account_json_supplies_issuer_kid_and_token_uri(tmp_path: Path) -> None:
    path, store = ks.make_google_service_account_json(tmp_path, "sa", token_uri="https://oauth2.example/token")
    key = load_signing_key(KeyRequest(source=KeySource(path=str(path))))
    assert key.store_type == "google_json"
    assert key.issuer == "svc@project.iam.gserviceaccount.com"
    assert key.key_id == store.alias
    assert key.token_uri == "https://oauth2.example/token"


def test_second_load_costs_no_decryption(keystores: dict[str, ks.Keystore]) -> None:
    store = keystores["jceks"]
    before = KEY_CACHE.loads
    first = load_signing_key(request_for(store))
    second = load_signing_key(request_for(store))
    assert second is first
    assert KEY_CACHE.loads == before + 1
    # a different password is a different cache entry, and is checked for real
    with pytest.raises(KeystoreError):
        load_signing_key(request_for(store, keystore_password="other"))


def test_short_rsa_key_is_refused(tmp_path: Path) -> None:
    store = ks.make_pem_key(tmp_path, "short", key_size=1024)
    with pytest.raises(KeystoreError, match="1024 bits; RFC 7518 requires at least 2048"):
        load_signing_key(request_for(store))


def test_key_type_without_a_jws_algorithm_is_refused(tmp_path: Path) -> None:
    """An Ed448 key loads (PEM, keytool's PKCS#12) but no JWS algorithm here signs with it: the error says what can."""
    pem = ed448.Ed448PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    refused = "the key type Ed448PrivateKey cannot sign a JWT here; use RSA, EC or Ed25519"
    with pytest.raises(KeystoreError, match=refused) as info:
        load_signing_key(KeyRequest(source=KeySource(inline=pem.decode())))
    assert info.value.field == "private_key"

    store = tmp_path / "ed448.p12"
    keytool = shutil.which("keytool")
    assert keytool is not None, "keytool is required by the tests: install a JRE (Debian: default-jre-headless)"
    generate = ["-genkeypair", "-keystore", str(store), "-storetype", "PKCS12", "-storepass", STORE_PASSWORD]
    generate += ["-alias", "ed448", "-keyalg", "Ed448", "-dname", "CN=ed448"]
    subprocess.run([keytool, "-noprompt", *generate], stdin=subprocess.DEVNULL, capture_output=True, check=True)
    with pytest.raises(KeystoreError, match=refused) as info:
        load_signing_key(KeyRequest(source=KeySource(path=str(store)), keystore_password=STORE_PASSWORD))
    assert info.value.field == "key_file"


def test_algorithm_must_fit_the_key(keystores: dict[str, ks.Keystore]) -> None:
    key = load_signing_key(request_for(keystores["ec256"]))
    assert LocalKeySigner(key).algorithm == "ES256"
    with pytest.raises(
        JwtBearerConfigError, match=r"algorithm RS256 does not fit the signing key \(EC-secp256r1\); use one of ES256"
    ) as info:
        LocalKeySigner(key, "RS256")
    assert info.value.field == "algorithm"
    rsa_key = load_signing_key(request_for(keystores["default"]))
    assert LocalKeySigner(rsa_key, "PS384").algorithm == "PS384"


def test_certificate_expiry(tmp_path: Path) -> None:
    store = ks.make_keystore(tmp_path, "soon", store_type="pkcs12", validity_days=10)
    key = load_signing_key(request_for(store))
    assert key.not_after is not None
    warning = certificate_warning(key.certificate, key.alias)
    assert warning is not None
    assert "expires on" in warning
    assert "in 9 day(s)" in warning or "in 10 day(s)" in warning
    check_certificate(key.certificate, key.alias)  # not expired yet: no error
    expired = key.not_after + timedelta(seconds=1)
    with pytest.raises(KeystoreError, match="expired on") as info:
        check_certificate(key.certificate, key.alias, now=expired)
    assert info.value.field == "key_file"
    assert certificate_warning(key.certificate, key.alias, now=expired) is None  # an error, not a warning
    assert certificate_warning(key.certificate, key.alias, now=key.not_after - timedelta(days=31)) is None


def test_jks_without_the_extra_explains_and_gives_the_conversion(
    keystores: dict[str, ks.Keystore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jks", None)  # what an install without [jks] looks like
    store = keystores["jks"]
    with pytest.raises(KeystoreError) as info:
        load_signing_key(request_for(store))
    message = str(info.value)
    assert "pip install 'airflow-jwt-provider[jks]'" in message
    assert f"keytool -importkeystore -srckeystore {store.path} -srcstoretype JKS" in message
    assert "-deststoretype PKCS12" in message


def test_repr_shows_no_secret(keystores: dict[str, ks.Keystore]) -> None:
    store = keystores["default"]
    request = request_for(store)
    assert STORE_PASSWORD not in repr(request)
    key = load_signing_key(request)
    assert "RSA-2048" in repr(key)
    inline = KeySource(inline="-----BEGIN PRIVATE KEY-----\nMIIsecret\n-----END PRIVATE KEY-----")
    assert "MIIsecret" not in repr(inline)
