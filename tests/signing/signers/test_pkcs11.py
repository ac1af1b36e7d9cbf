"""Pkcs11Signer against a real SoftHSM2 token whose private keys never leave it."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.signing.signers.base import Signer
from airflow_jwt_provider.signing.signers.pkcs11.signer import INSTALL_HINT, Pkcs11Signer
from devserver.hsm import SoftHsm
from tests.signing.signers.jws_checks import assert_signs_valid_jws, sign_compact, verify_with_pyjwt

REPO_ROOT = Path(__file__).resolve().parents[3]


def make_signer(softhsm: SoftHsm, **kwargs: Any) -> Pkcs11Signer:
    kwargs.setdefault("key_label", "rsa-signing")
    return Pkcs11Signer(softhsm.module_path, softhsm.token_label, kwargs.pop("pin", softhsm.user_pin), **kwargs)


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), str(exc.__cause__ or ""), str(exc.__context__ or "")):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("label", "algorithm"),
    [
        ("rsa-signing", "RS256"),
        ("rsa-signing", "RS384"),
        ("rsa-signing", "RS512"),
        ("rsa-signing", "PS256"),
        ("rsa-signing", "PS384"),
        ("rsa-signing", "PS512"),
        ("ec-signing", "ES256"),
        ("ec384-signing", "ES384"),
    ],
)
def test_signatures_verify_as_jws(softhsm: SoftHsm, label: str, algorithm: str) -> None:
    signer = make_signer(softhsm, key_label=label, algorithm=algorithm)
    assert isinstance(signer, Signer)
    assert signer.algorithm == algorithm
    exported = softhsm.key(label)
    assert (
        signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        == exported.public_key_pem
    )
    assert_signs_valid_jws(signer, exported.public_key_pem)


@pytest.mark.parametrize(
    ("label", "expected", "mechanism"),
    [
        ("rsa-signing", "RS256", "SHA256_RSA_PKCS"),
        ("ec-signing", "ES256", "ECDSA"),
        ("ec384-signing", "ES384", "ECDSA"),
    ],
)
def test_default_algorithm_follows_the_key(softhsm: SoftHsm, label: str, expected: str, mechanism: str) -> None:
    signer = make_signer(softhsm, key_label=label)
    assert signer.algorithm == expected
    assert signer.mechanism == mechanism
    assert signer.key_id is None


def test_pss_signatures_are_randomised_and_pkcs1_deterministic(softhsm: SoftHsm) -> None:
    """PSS salts are random (a device that ignored the PSS parameters would repeat itself)."""
    data = b"header.payload"
    rs = make_signer(softhsm, algorithm="RS256")
    ps = make_signer(softhsm, algorithm="PS256")
    assert rs.sign(data) == rs.sign(data)
    assert ps.sign(data) != ps.sign(data)


def test_select_key_by_object_id_among_shared_labels(softhsm: SoftHsm) -> None:
    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, key_label="shared-label")
    assert excinfo.value.field == "pkcs11_key_id"
    assert "2 private keys" in str(excinfo.value)
    assert "(id 0a)" in str(excinfo.value)
    assert "(id 0b)" in str(excinfo.value)

    for object_id in ("0a", "0x0B"):
        signer = make_signer(softhsm, key_label="shared-label", key_object_id=object_id)
        assert signer.key_object_id == object_id.lower().removeprefix("0x")
        assert_signs_valid_jws(signer, softhsm.key("shared-label", signer.key_object_id).public_key_pem)

    by_id_only = make_signer(softhsm, key_label=None, key_object_id="02")
    assert by_id_only.key_label == "ec-signing"
    assert_signs_valid_jws(by_id_only, softhsm.key("ec-signing").public_key_pem)


def test_private_keys_cannot_leave_the_token(softhsm: SoftHsm) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    make_signer(softhsm)  # logs this process in: a plain session then sees the private objects
    token = pkcs11.lib(softhsm.module_path).get_token(token_label=softhsm.token_label)
    with token.open() as session:
        rsa_key = session.get_key(ObjectClass.PRIVATE_KEY, label="rsa-signing")
        ec_key = session.get_key(ObjectClass.PRIVATE_KEY, label="ec-signing")
        for key, secret_attribute in ((rsa_key, Attribute.PRIVATE_EXPONENT), (ec_key, Attribute.VALUE)):
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            with pytest.raises(pkcs11.AttributeSensitive):
                key[secret_attribute]
        with pytest.raises(pkcs11.AttributeSensitive):
            rsa_key[Attribute.PRIME_1]
        # Nor can the key be marked extractable afterwards (PKCS#11: EXTRACTABLE only goes to false).
        with pytest.raises(pkcs11.PKCS11Error):
            rsa_key[Attribute.EXTRACTABLE] = True


def test_certificate_from_a_token_object(softhsm: SoftHsm) -> None:
    signer = make_signer(softhsm)
    assert signer.certificate_source == "token"
    assert signer.certificate == softhsm.key("rsa-signing").certificate


def test_no_certificate_without_object_or_file(softhsm: SoftHsm) -> None:
    signer = make_signer(softhsm, key_label="ec-signing")
    assert signer.certificate is None
    assert signer.certificate_source is None


@pytest.mark.parametrize("der", [False, True])
def test_certificate_from_a_file(softhsm: SoftHsm, tmp_path: Path, der: bool) -> None:
    exported = softhsm.key("ec-signing")
    path = exported.write_certificate(tmp_path / ("ec.der" if der else "ec.pem"), der=der)
    signer = make_signer(softhsm, key_label="ec-signing", certificate_file=str(path))
    assert signer.certificate_source == "file"
    assert signer.certificate == exported.certificate


def test_certificate_file_wins_over_the_token_object_and_must_match_the_key(softhsm: SoftHsm, tmp_path: Path) -> None:
    rsa_cert = softhsm.key("rsa-signing").write_certificate(tmp_path / "rsa.pem")
    signer = make_signer(softhsm, certificate_file=rsa_cert)
    assert signer.certificate_source == "file"

    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, key_label="ec-signing", certificate_file=str(rsa_cert))
    assert excinfo.value.field == "certificate_file"
    assert "holds no certificate for the signing key" in str(excinfo.value)
    assert "CN=hsm key rsa-signing" in str(excinfo.value)

    with pytest.raises(KeystoreError, match="does not exist"):
        make_signer(softhsm, certificate_file=str(tmp_path / "missing.pem"))
    not_a_cert = tmp_path / "key.pem"
    not_a_cert.write_text(softhsm.key("rsa-signing").public_key_pem)
    with pytest.raises(KeystoreError, match=r"not an X\.509 certificate"):
        make_signer(softhsm, certificate_file=str(not_a_cert))


def test_wrong_pin_is_refused_without_showing_it(softhsm: SoftHsm) -> None:
    good = make_signer(softhsm)
    wrong_pin = "0000-wrong-pin-canary"
    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, pin=wrong_pin)
    assert excinfo.value.field == "pkcs11_pin"
    assert "is not the user PIN" in str(excinfo.value)
    assert_secret_free(excinfo.value, wrong_pin, softhsm.user_pin)
    # The signer built with the right PIN logs in again and goes on signing.
    assert_signs_valid_jws(good, softhsm.key("rsa-signing").public_key_pem)


def test_pin_is_not_in_repr_and_signer_cannot_be_pickled(softhsm: SoftHsm) -> None:
    signer = make_signer(softhsm)
    text = repr(signer)
    assert softhsm.user_pin not in text
    assert "rsa-signing" in text
    assert "RS256" in text
    assert "SHA256_RSA_PKCS" in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)


def test_empty_pin_is_a_config_error(softhsm: SoftHsm) -> None:
    with pytest.raises(JwtBearerConfigError) as excinfo:
        make_signer(softhsm, pin="")
    assert excinfo.value.field == "pkcs11_pin"


def test_unknown_token_lists_the_tokens(softhsm: SoftHsm) -> None:
    with pytest.raises(KeystoreError) as excinfo:
        Pkcs11Signer(softhsm.module_path, "no-such-token", softhsm.user_pin, key_label="rsa-signing")
    assert excinfo.value.field == "pkcs11_token_label"
    assert f"tokens present: {softhsm.token_label!r}" in str(excinfo.value)
    assert_secret_free(excinfo.value, softhsm.user_pin)


def test_unknown_key_lists_the_keys(softhsm: SoftHsm) -> None:
    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, key_label="no-such-key")
    message = str(excinfo.value)
    assert excinfo.value.field == "pkcs11_key_label"
    assert "no private key on token" in message
    for label in ("'rsa-signing' (id 01)", "'ec-signing' (id 02)", "'ec384-signing' (id 03)"):
        assert label in message
    assert_secret_free(excinfo.value, softhsm.user_pin)

    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, key_label="rsa-signing", key_object_id="02")  # label and id of two keys
    assert "no private key" in str(excinfo.value)


def test_key_settings_are_checked(softhsm: SoftHsm) -> None:
    with pytest.raises(JwtBearerConfigError) as excinfo:
        make_signer(softhsm, key_label=None)
    assert excinfo.value.field == "pkcs11_key_label"
    with pytest.raises(JwtBearerConfigError) as excinfo:
        make_signer(softhsm, key_label=None, key_object_id="not-hex")
    assert excinfo.value.field == "pkcs11_key_id"


def test_field_names_can_follow_the_connection(softhsm: SoftHsm) -> None:
    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm, key_label="missing", field_names={"key_label": "hsm_key"})
    assert excinfo.value.field == "hsm_key"


def test_module_path_errors(softhsm: SoftHsm, tmp_path: Path) -> None:
    missing = tmp_path / "libvendor-pkcs11.so"
    with pytest.raises(KeystoreError) as excinfo:
        Pkcs11Signer(missing, softhsm.token_label, softhsm.user_pin, key_label="rsa-signing")
    assert excinfo.value.field == "pkcs11_module_path"
    assert "does not exist on this machine" in str(excinfo.value)

    not_a_library = tmp_path / "not-a-library.so"
    not_a_library.write_text("not ELF")
    with pytest.raises(KeystoreError) as excinfo:
        Pkcs11Signer(not_a_library, softhsm.token_label, softhsm.user_pin, key_label="rsa-signing")
    assert "cannot be loaded as a PKCS#11 module" in str(excinfo.value)
    assert_secret_free(excinfo.value, softhsm.user_pin)


@pytest.mark.parametrize(
    ("label", "algorithm", "allowed"),
    [
        ("rsa-signing", "ES256", "RS256, RS384, RS512, PS256, PS384, PS512"),
        ("ec-signing", "RS256", "ES256"),
        ("ec-signing", "ES384", "ES256"),
        ("ec384-signing", "ES256", "ES384"),
        ("rsa-signing", "HS256", "RS256"),
    ],
)
def test_algorithm_must_fit_the_key(softhsm: SoftHsm, label: str, algorithm: str, allowed: str) -> None:
    with pytest.raises(JwtBearerConfigError) as excinfo:
        make_signer(softhsm, key_label=label, algorithm=algorithm)
    assert excinfo.value.field == "algorithm"
    assert f"algorithm {algorithm} does not fit" in str(excinfo.value)
    assert allowed in str(excinfo.value)


def test_signing_from_many_threads(softhsm: SoftHsm) -> None:
    """One token, one session, eight threads signing with two keys at once: every signature verifies."""
    rsa_signer = make_signer(softhsm, algorithm="PS256")
    ec_signer = make_signer(softhsm, key_label="ec-signing")
    results: list[tuple[Pkcs11Signer, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(signer: Pkcs11Signer) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(10):
                token, _data, _sig = sign_compact(signer)
                results.append((signer, token))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rsa_signer if i % 2 else ec_signer,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 80
    for signer, token in results:
        verify_with_pyjwt(token, softhsm.key(signer.key_label or "").public_key_pem, signer.algorithm)


def test_reconnects_when_the_library_was_reinitialised(softhsm: SoftHsm) -> None:
    """C_Finalize/C_Initialize invalidates every session, as a device restart would."""
    import pkcs11

    signer = make_signer(softhsm, key_label="ec-signing")
    assert_signs_valid_jws(signer, softhsm.key("ec-signing").public_key_pem)
    sessions_opened = signer._link.generation
    pkcs11.lib(signer.module_path).reinitialize()
    assert_signs_valid_jws(signer, softhsm.key("ec-signing").public_key_pem)
    assert signer._link.generation == sessions_opened + 1  # a new session, logged in again


def _sign_in_child(signer: Pkcs11Signer, data: bytes, conn: Any) -> None:
    try:
        conn.send(("ok", signer.sign(data)))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def test_forked_child_opens_its_own_session(softhsm: SoftHsm) -> None:
    """Celery's prefork pool and Airflow's task supervisor fork: the child must not reuse the parent's session."""
    signer = make_signer(softhsm)
    token, data, _ = sign_compact(signer)
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_sign_in_child, args=(signer, data, child_end))
    child.start()
    assert parent_end.poll(60)
    status, value = parent_end.recv()
    child.join(timeout=30)
    assert status == "ok", value
    public_key_pem = softhsm.key("rsa-signing").public_key_pem
    from tests.signing.signers.jws_checks import b64url

    verify_with_pyjwt(data.decode() + "." + b64url(value), public_key_pem, "RS256")
    # RSASSA-PKCS1-v1_5 is deterministic: the child's device signature equals the parent's.
    assert value == signer.sign(data)
    verify_with_pyjwt(token, public_key_pem, "RS256")


_RESTRICTED_TOKEN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from airflow_jwt_provider.exceptions import JwtBearerConfigError
    from airflow_jwt_provider.signing.signers.pkcs11.signer import Pkcs11Signer
    from tests.signing.signers.jws_checks import sign_compact

    module, token, pin = sys.argv[1:4]
    out = {}
    for algorithm in ("RS256", "PS256", "RS384"):
        try:
            signer = Pkcs11Signer(module, token, pin, key_label="rsa-signing", algorithm=algorithm)
            out[algorithm] = {"mechanism": signer.mechanism, "token": sign_compact(signer)[0]}
        except JwtBearerConfigError as exc:
            out[algorithm] = {"error": str(exc), "field": exc.field}
    print(json.dumps(out))
    """
)


def test_fallback_mechanisms_and_missing_mechanisms(softhsm: SoftHsm) -> None:
    """A token without the hash-and-sign mechanisms (as some HSMs are): digest on the host, or a clear error.

    SoftHSM2's ``slots.mechanisms`` hides mechanisms; the conf is read at C_Initialize, so this
    runs in a child process with its own conf on the same token.
    """
    conf = softhsm.write_conf(
        "limited.conf",
        disabled_mechanisms=(
            "CKM_SHA256_RSA_PKCS",
            "CKM_SHA384_RSA_PKCS",
            "CKM_SHA256_RSA_PKCS_PSS",
            "CKM_RSA_PKCS_PSS",
        ),
    )
    result = subprocess.run(
        [sys.executable, "-c", _RESTRICTED_TOKEN_SCRIPT, softhsm.module_path, softhsm.token_label, softhsm.user_pin],
        env=softhsm.env(conf_path=conf),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    public_key_pem = softhsm.key("rsa-signing").public_key_pem
    for algorithm in ("RS256", "RS384"):
        assert out[algorithm]["mechanism"] == "RSA_PKCS", out
        verify_with_pyjwt(out[algorithm]["token"], public_key_pem, algorithm)
    assert out["PS256"]["field"] == "algorithm"
    assert "offers no mechanism for PS256" in out["PS256"]["error"]
    assert "RS256, RS384, RS512" in out["PS256"]["error"]
    assert "PS384, PS512" in out["PS256"]["error"]  # SHA384/512 PSS are still there


def test_missing_extra_names_the_install_command(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # `import pkcs11` now raises ImportError
    with pytest.raises(KeystoreError) as excinfo:
        make_signer(softhsm)
    assert INSTALL_HINT in str(excinfo.value)
    assert excinfo.value.field == "pkcs11_module_path"
