"""``airflow jwt-bearer inspect|export|check|mint|token`` run as real ``airflow`` commands.

Expected values come from elsewhere than the provider: keytool's own certificates
(:class:`devserver.keystores.Keystore`), the public keys the test set-up read out of the
SoftHSM2 token and out of KMS, the local server's records and its signature checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devserver import keystores as ks
from devserver.hsm import SoftHsm
from devserver.keystores import CertificateValidity
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, KEY_PASSWORD, STORE_PASSWORD, connection_extra, kms_extra, pkcs11_extra
from tests.e2e.conftest import JWT_PATTERN

pytestmark = pytest.mark.slow

PASSWORD_ENV = {"TEST_KEYSTORE_PASSWORD": STORE_PASSWORD}


@pytest.fixture(scope="module")
def rotation_store(tmp_path_factory: pytest.TempPathFactory) -> ks.Keystore:
    return ks.make_keystore(
        tmp_path_factory.mktemp("cli-rotation"),
        "rotation",
        store_password=STORE_PASSWORD,
        alias="old",
        extra_aliases=("new", "gone"),
        validity={"old": CertificateValidity(10), "gone": CertificateValidity(30, starts_in_days=-40)},
    )


def thumbprint(certificate_pem: str, algorithm: str = "sha256") -> str:
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.new(algorithm, der).digest()).rstrip(b"=").decode()


def public_pem(certificate_pem: str) -> str:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return (
        certificate.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def entries(stdout: str) -> dict[str, str]:
    """``inspect`` output split by entry: alias → its lines."""
    blocks = re.split(r"^alias '([^']+)'$", stdout, flags=re.MULTILINE)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:4]}…) was printed"
    found = JWT_PATTERN.search(text)
    assert found is None, f"a JWT was printed: {found.group(0)[:12]}…"


# --- inspect ---------------------------------------------------------------------------------------


def test_inspect_a_keystore_with_several_keys(jwt_bearer_cli: Any, rotation_store: ks.Keystore) -> None:
    result = jwt_bearer_cli(
        "inspect", str(rotation_store.path), "--password-env", "TEST_KEYSTORE_PASSWORD", env=PASSWORD_ENV
    )
    assert result.returncode == 0, result.output
    assert result.stdout.startswith(f"{rotation_store.path}: PKCS#12 keystore, 3 private key(s)\n")
    found = entries(result.stdout)
    assert sorted(found) == ["gone", "new", "old"]
    for alias, text in found.items():
        pem = rotation_store.certificate_pem_of(alias)
        assert "key: RSA-2048 (can sign RS256, RS384, RS512, PS256, PS384, PS512)" in text
        assert f"certificate subject: CN={alias},O=airflow-jwt-provider tests" in text
        assert f"x5t#S256: {thumbprint(pem)}\n" in text
        assert f"x5t: {thumbprint(pem, 'sha1')}\n" in text
        spki = serialization.load_pem_public_key(public_pem(pem).encode()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert f"public key SHA-256: {hashlib.sha256(spki).hexdigest()}" in text
    assert "(expires soon: 9 day(s) left)" in found["old"] or "(expires soon: 10 day(s) left)" in found["old"]
    assert "WARNING: The certificate of key 'old'" in found["old"]
    assert "(EXPIRED)" in found["gone"]
    assert "EXPIRED: create a new key pair" in found["gone"]
    assert "WARNING" not in found["new"]
    assert "EXPIRED" not in found["new"]
    no_secret(result.output, STORE_PASSWORD)


@pytest.mark.parametrize(
    ("name", "kind", "key"),
    [
        ("jks", "JKS keystore", "RSA-2048"),
        ("jceks", "JCEKS keystore", "EC-secp384r1"),
        ("pem_pkcs1_encrypted", "PEM private key", "RSA-2048"),
    ],
)
def test_inspect_other_formats(
    jwt_bearer_cli: Any, keystores: dict[str, ks.Keystore], name: str, kind: str, key: str
) -> None:
    store = keystores[name]
    env = {**PASSWORD_ENV, "TEST_KEY_PASSWORD": KEY_PASSWORD}
    args = ["inspect", str(store.path), "--password-env", "TEST_KEYSTORE_PASSWORD"]
    if store.key_password:
        args += ["--key-password-env", "TEST_KEY_PASSWORD"]
    result = jwt_bearer_cli(*args, env=env)
    assert result.returncode == 0, result.output
    assert result.stdout.startswith(f"{store.path}: {kind}, 1 private key(s)")
    assert f"key: {key}" in result.stdout
    assert f"x5t#S256: {thumbprint(store.certificate_pem)}" in result.stdout
    no_secret(result.output, STORE_PASSWORD, KEY_PASSWORD)


def test_inspect_a_google_key_needs_no_password(jwt_bearer_cli: Any, tmp_path: Path) -> None:
    path, store = ks.make_google_service_account_json(tmp_path, "sa", token_uri="https://oauth2.example/token")
    result = jwt_bearer_cli("inspect", str(path))
    assert result.returncode == 0, result.output
    assert "Google service-account JSON key, 1 private key(s)" in result.stdout
    assert "client_email (iss): svc@project.iam.gserviceaccount.com" in result.stdout
    assert f"private_key_id (kid): {store.alias}" in result.stdout
    assert "certificate: none" in result.stdout
    private_key = json.loads(path.read_text())["private_key"]
    no_secret(result.output, *[line for line in private_key.splitlines() if len(line) > 20])


def test_inspect_without_a_password_or_with_a_wrong_one(jwt_bearer_cli: Any, rotation_store: ks.Keystore) -> None:
    missing = jwt_bearer_cli("inspect", str(rotation_store.path))
    assert missing.returncode == 1
    assert "needs a password: give the name of an environment variable holding it with --password-env VAR" in (
        missing.stderr
    )
    wrong = jwt_bearer_cli(
        "inspect",
        str(rotation_store.path),
        "--password-env",
        "TEST_KEYSTORE_PASSWORD",
        env={"TEST_KEYSTORE_PASSWORD": "wrong-pass-9"},
    )
    assert wrong.returncode == 1
    assert "the keystore_password is wrong or the file is damaged" in wrong.stderr
    assert "Traceback" not in wrong.output
    no_secret(wrong.output, "wrong-pass-9")
    unset = jwt_bearer_cli("inspect", str(rotation_store.path), "--password-env", "NOT_SET_ANYWHERE")
    assert unset.returncode == 1
    assert "the environment variable NOT_SET_ANYWHERE is not set or empty" in unset.stderr


# --- export ----------------------------------------------------------------------------------------


def test_export_a_local_key_in_each_format(
    jwt_bearer_cli: Any, rotation_store: ks.Keystore, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    extra = connection_extra(rotation_store, auth_server, key_alias="old,new", key_id='["kid-old", "kid-new"]')
    set_connection("cli_local", login=CLIENT_ID, extra=extra)

    pem = jwt_bearer_cli("export", "--conn-id", "cli_local")
    assert pem.returncode == 0, pem.output
    assert pem.stdout == public_pem(rotation_store.certificate_pem_of("new"))  # 'old' is within the warning window
    assert "note: exported key 'new' (kid 'kid-new'" in pem.stderr

    cert = jwt_bearer_cli("export", "--conn-id", "cli_local", "--format", "cert", "--alias", "OLD")
    assert cert.returncode == 0, cert.output
    assert cert.stdout == rotation_store.certificate_pem_of("old")

    jwks = jwt_bearer_cli("export", "--conn-id", "cli_local", "--format", "jwks", "--all")
    assert jwks.returncode == 0, jwks.output
    keys = json.loads(jwks.stdout)["keys"]
    assert [k["kid"] for k in keys] == ["kid-old", "kid-new"]
    for key, alias in zip(keys, ("old", "new"), strict=True):
        pem_text = rotation_store.certificate_pem_of(alias)
        assert key["kty"] == "RSA"
        assert (key["use"], key["alg"]) == ("sig", "RS256")
        assert key["x5t#S256"] == thumbprint(pem_text)
        der = base64.b64decode(key["x5c"][0])
        assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(pem_text.encode())
        from_jwk = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
        assert from_jwk.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode() == public_pem(pem_text)
    no_secret(pem.output + cert.output + jwks.output, STORE_PASSWORD)


def test_export_from_a_pkcs11_token_registers_with_the_server(
    jwt_bearer_cli: Any, softhsm: SoftHsm, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    """The certificate exported from the token is what the server verifies the assertions with; check passes."""
    set_connection("cli_hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, auth_server, "rsa-signing", x5t=True))
    cert = jwt_bearer_cli("export", "--conn-id", "cli_hsm", "--format", "cert")
    assert cert.returncode == 0, cert.output
    assert cert.stdout == softhsm.key("rsa-signing").certificate_pem
    auth_server.register_client(CLIENT_ID, certificate_pem=cert.stdout)

    check = jwt_bearer_cli("check", "--conn-id", "cli_hsm")
    assert check.returncode == 0, check.output
    lines = check.stdout.splitlines()
    statuses = {m.group(2): m.group(1).strip() for m in map(re.compile(r"^\[(.{4})\] ([a-z ]+):").match, lines) if m}
    assert statuses == {
        "settings": "OK",
        "preset rules": "SKIP",
        "key": "OK",
        "certificate": "WARN",  # the test CA issues two-day certificates
        "assertion": "OK",
        "token": "OK",
        "binding": "SKIP",  # bearer tokens: nothing bound
        "clock": "OK",
    }
    assert "signer pkcs11, module" in check.stdout
    assert "signing with key 'rsa-signing' (no kid, RSA-2048, RS256" in check.stdout
    assert "'x5t#S256'" in check.stdout
    assert '  sub: "alice"' in check.stdout
    assert "Connection 'cli_hsm': ready" in check.stdout
    [granted] = [r for r in auth_server.token_requests if r["success"]]
    assert granted["assertion_verified"] is True
    no_secret(cert.output + check.output, softhsm.user_pin, *auth_server._tokens)


def test_export_a_kms_key(
    jwt_bearer_cli: Any, kms_keys: dict[str, dict[str, Any]], aws_conn_id: str, set_connection: Any
) -> None:
    from devserver.kms import SECRET_ACCESS_KEY

    key = kms_keys["ec"]
    set_connection(
        "cli_kms", login=CLIENT_ID, extra=kms_extra(key["alias"], aws_conn_id, _NoServer(), key_id="kms-kid")
    )
    jwks = jwt_bearer_cli("export", "--conn-id", "cli_kms", "--format", "jwks")
    assert jwks.returncode == 0, jwks.output
    [jwk] = json.loads(jwks.stdout)["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["kid"]) == ("EC", "P-256", "ES256", "kms-kid")
    assert "x5c" not in jwk  # KMS holds no certificate
    from_jwk = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
    exported = from_jwk.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert exported.decode() == key["public_key_pem"]

    cert = jwt_bearer_cli("export", "--conn-id", "cli_kms", "--format", "cert")
    assert cert.returncode == 1
    assert (
        "has no certificate: export --format pem for its public key, or (signer pkcs11 / aws_kms) set certificate_file"
        in (cert.stderr)
    )
    no_secret(jwks.output + cert.output, SECRET_ACCESS_KEY)


# --- check -----------------------------------------------------------------------------------------


def test_check_reports_a_wrong_pin_and_stops(
    jwt_bearer_cli: Any, softhsm: SoftHsm, auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    wrong = "9999-not-the-pin"
    set_connection("cli_hsm", login=CLIENT_ID, extra=pkcs11_extra(softhsm, auth_server, keystore_password=wrong))
    result = jwt_bearer_cli("check", "--conn-id", "cli_hsm")
    assert result.returncode == 1
    assert "[FAIL] key: Connection 'cli_hsm': keystore_password is not the user PIN of token 'jwt-signing'" in (
        result.stdout
    )
    for step in ("certificate", "assertion", "token", "clock"):
        assert f"[SKIP] {step}: an earlier step failed" in result.stdout
    assert "a step FAILED" in result.stdout
    assert auth_server.token_requests == []
    no_secret(result.output, wrong, softhsm.user_pin)


def test_check_finds_preset_rules_a_clock_offset_and_a_refused_token(
    jwt_bearer_cli: Any, keystores: dict[str, ks.Keystore], auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    """The server's clock is 10 minutes ahead: the assertion has expired by its clock, and check says why."""
    store = keystores["default"]
    # Salesforce's aud is the login host: the server accepts it, so the clock is what fails the request.
    auth_server.register_client(CLIENT_ID, certificate_pem=store.certificate_pem, extra_audiences=[auth_server.url])
    auth_server.clock_offset = 600
    extra = connection_extra(store, auth_server, preset="salesforce", subject=None)
    set_connection("cli_sf", login=CLIENT_ID, extra=extra)
    result = jwt_bearer_cli("check", "--conn-id", "cli_sf", "--subject", "bob")
    assert result.returncode == 1, result.output
    out = result.stdout
    assert "[FAIL] preset rules: Connection 'cli_sf': subject is required: set it to the Salesforce username" in out
    assert "[ OK ] key: signing with key 'signing'" in out
    assert '  sub: "bob"' in out
    assert f'  aud: "{auth_server.url}"' in out
    # The Date header has whole seconds: the offset reads 599 to 601 s.
    behind = r"clock is (599|600|601) s behind"
    assert re.search(rf"^\[FAIL\] token: The token endpoint .* invalid_grant: .*This machine's {behind}", out, re.M)
    clock = rf"^\[FAIL\] clock: this machine's {behind} the token endpoint's \(from its Date header\): more than"
    assert re.search(clock, out, re.M), out
    no_secret(result.output, STORE_PASSWORD)


# --- mint and token --------------------------------------------------------------------------------


def test_mint_shows_claims_and_the_assertion_only_when_asked(
    jwt_bearer_cli: Any, keystores: dict[str, ks.Keystore], auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    store = keystores["default"]
    set_connection("cli_local", login=CLIENT_ID, extra=connection_extra(store, auth_server, key_id="kid-1"))
    hidden = jwt_bearer_cli("mint", "--conn-id", "cli_local", "--subject", "carol")
    assert hidden.returncode == 0, hidden.output
    assert 'header: {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}' in hidden.stdout
    assert '  sub: "carol"' in hidden.stdout
    assert f'  iss: "{CLIENT_ID}"' in hidden.stdout
    assert f'  aud: "{auth_server.token_url}"' in hidden.stdout
    assert "add --show-assertion to print it" in hidden.stderr
    no_secret(hidden.output, STORE_PASSWORD)

    shown = jwt_bearer_cli("mint", "--conn-id", "cli_local", "--show-assertion")
    assert shown.returncode == 0, shown.output
    [assertion] = re.findall(r"^assertion: (\S+)$", shown.stdout, flags=re.MULTILINE)
    claims = jwt.decode(
        assertion, public_pem(store.certificate_pem), algorithms=["RS256"], audience=auth_server.token_url
    )
    assert claims["sub"] == "alice"
    no_secret(shown.output.replace(assertion, ""), STORE_PASSWORD)


def test_mint_of_a_keyless_connection_shows_the_platforms_jwt_decoded(
    jwt_bearer_cli: Any, auth_server: LocalAuthorizationServer, set_connection: Any, platform: Any, tmp_path: Any
) -> None:
    """Without a key, ``mint`` shows what a token request would send: the platform's current JWT, decoded."""
    projected = platform.project_service_account(
        tmp_path / "token" / "token", auth_server.issuer, namespace="data", service_account="airflow"
    )
    extra = {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(projected.path)}
    set_connection("cli_keyless", extra=extra)
    result = jwt_bearer_cli("mint", "--conn-id", "cli_keyless")
    assert result.returncode == 0, result.output
    assert '  sub: "system:serviceaccount:data:airflow"' in result.stdout
    assert f'  iss: "{platform.url}"' in result.stdout
    assert f"not signed here: from assertion_file '{projected.path}'" in result.stderr
    assert projected.token not in result.output
    projected.stop()


def test_token_shows_its_lifetime_and_the_token_only_when_asked(
    jwt_bearer_cli: Any, keystores: dict[str, ks.Keystore], auth_server: LocalAuthorizationServer, set_connection: Any
) -> None:
    store = keystores["default"]
    auth_server.register_client(CLIENT_ID, certificate_pem=store.certificate_pem)
    set_connection("cli_local", login=CLIENT_ID, extra=connection_extra(store, auth_server, scope="read"))
    before = set(auth_server._tokens)  # the server keeps the tokens of earlier tests
    hidden = jwt_bearer_cli("token", "--conn-id", "cli_local")
    assert hidden.returncode == 0, hidden.output
    assert "token_type: Bearer\nscope: read\nlifetime: 3600 s (expires " in hidden.stdout
    assert "add --show-token to print it" in hidden.stderr
    issued = set(auth_server._tokens) - before
    assert len(issued) == 1
    no_secret(hidden.output, STORE_PASSWORD, *issued)

    shown = jwt_bearer_cli("token", "--conn-id", "cli_local", "--show-token", "--subject", "dave")
    assert shown.returncode == 0, shown.output
    [token] = re.findall(r"^access_token: (\S+)$", shown.stdout, flags=re.MULTILINE)
    info = auth_server.token_info(token)
    assert info is not None
    assert info.sub == "dave"


def test_unknown_connection_and_bad_settings(jwt_bearer_cli: Any, airflow_db: Path, set_connection: Any) -> None:
    missing = jwt_bearer_cli("token", "--conn-id", "no_such_conn")
    assert missing.returncode == 1
    assert "error: connection 'no_such_conn' is not defined" in missing.stderr
    set_connection(
        "cli_bad", login=CLIENT_ID, extra={"auth_url": "https://x/token", "signer": "pkcs11", "key_file": "/k"}
    )
    bad = jwt_bearer_cli("export", "--conn-id", "cli_bad")
    assert bad.returncode == 1
    assert "error: Connection 'cli_bad': key_file does not apply to signer 'pkcs11'" in bad.stderr
    assert "Traceback" not in bad.output


# --- the definitions stay light ---------------------------------------------------------------------


def test_the_cli_definitions_import_nothing_heavy() -> None:
    """Airflow imports them for every ``airflow`` command: only Airflow's CLI types, no crypto, HTTP or keys."""
    probe = (
        "import sys, airflow.cli.cli_config\n"
        "before = set(sys.modules)\n"
        "from airflow_jwt_provider.cli.definition import get_cli_commands\n"
        "[group] = get_cli_commands()\n"
        "print(sorted(set(sys.modules) - before))\n"
        "print(sorted(c.name for c in group.subcommands))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    imported, names = result.stdout.splitlines()[-2:]
    assert imported == "['airflow_jwt_provider.cli', 'airflow_jwt_provider.cli.definition']"
    assert names == "['check', 'export', 'inspect', 'mint', 'token']"


class _NoServer:
    token_url = "http://127.0.0.1:9/oauth2/token"
