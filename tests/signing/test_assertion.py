"""AssertionMinter on its own: keys made in-process, every compact JWS checked with PyJWT's verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.signing.assertion import AssertionMinter
from airflow_jwt_provider.signing.jws import SigningPublicKey, ecdsa_der_to_jws
from airflow_jwt_provider.signing.key_files.loader import SigningKey, SigningPrivateKey
from airflow_jwt_provider.signing.signers.base import Signer
from airflow_jwt_provider.signing.signers.local.signer import LocalKeySigner

ISSUER = "client-123"
AUDIENCE = "https://login.example.com/oauth2/token"

# One key per kind, made once: RSA generation is the slow part (~50 ms per key).
_KEYS: dict[str, SigningPrivateKey] = {}


def private_key(kind: str) -> SigningPrivateKey:
    if kind not in _KEYS:
        if kind == "rsa":
            _KEYS[kind] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "ed25519":
            _KEYS[kind] = ed25519.Ed25519PrivateKey.generate()
        else:
            curve = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}[kind]
            _KEYS[kind] = ec.generate_private_key(curve)
    return _KEYS[kind]


def self_signed(key: SigningPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "assertion-test")])
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def local_signer(
    kind: str = "p256",
    algorithm: str | None = None,
    *,
    certificate: bool = False,
    key_id: str | None = None,
) -> LocalKeySigner:
    key = private_key(kind)
    signing_key = SigningKey(
        private_key=key,
        store_type="pem",
        certificate=self_signed(key) if certificate else None,
        key_id=key_id,
    )
    return LocalKeySigner(signing_key, algorithm)


def parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, decoded without verification (the tests verify separately)."""
    header_b64, payload_b64, _ = assertion.split(".")

    def decode(segment: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    return decode(header_b64), decode(payload_b64)


def verify(assertion: str, public_key: SigningPublicKey, algorithm: str, audience: str = AUDIENCE) -> dict[str, Any]:
    return jwt.decode(assertion, public_key, algorithms=[algorithm], audience=audience, issuer=ISSUER)


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("rsa", "RS256"),
        ("rsa", "RS384"),
        ("rsa", "RS512"),
        ("rsa", "PS256"),
        ("rsa", "PS384"),
        ("rsa", "PS512"),
        ("p256", "ES256"),
        ("p384", "ES384"),
        ("p521", "ES512"),
        ("ed25519", "EdDSA"),
    ],
)
def test_every_algorithm_verifies_with_the_public_key(kind: str, algorithm: str) -> None:
    signer = local_signer(kind, algorithm)
    assertion = AssertionMinter(signer).mint(issuer=ISSUER, audience=AUDIENCE, subject="alice")

    claims = verify(assertion, private_key(kind).public_key(), algorithm)
    assert claims["sub"] == "alice"
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": algorithm, "typ": "JWT"}


def test_a_tampered_assertion_does_not_verify() -> None:
    """The verification above is a real check: one changed claim breaks it."""
    assertion = AssertionMinter(local_signer("p256")).mint(issuer=ISSUER, audience=AUDIENCE, subject="alice")
    header, _payload, signature = assertion.split(".")
    claims = parts(assertion)[1]
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{forged}.{signature}", private_key("p256").public_key(), "ES256")
    # another key of the same kind does not verify it either
    with pytest.raises(jwt.InvalidSignatureError):
        verify(assertion, ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")


def test_default_algorithm_follows_the_key() -> None:
    for kind, algorithm in (("rsa", "RS256"), ("p256", "ES256"), ("p384", "ES384"), ("p521", "ES512")):
        assert AssertionMinter(local_signer(kind)).algorithm == algorithm
    assert AssertionMinter(local_signer("ed25519")).algorithm == "EdDSA"


# --------------------------------------------------------------------------- header


def test_kid_comes_from_the_setting_else_from_the_signer() -> None:
    from_signer = AssertionMinter(local_signer(key_id="key-from-store"))
    setting_wins = AssertionMinter(local_signer(key_id="key-from-store"), key_id="key-from-setting")
    none = AssertionMinter(local_signer())

    assert parts(from_signer.mint(issuer=ISSUER, audience=AUDIENCE))[0]["kid"] == "key-from-store"
    assert parts(setting_wins.mint(issuer=ISSUER, audience=AUDIENCE))[0]["kid"] == "key-from-setting"
    assert "kid" not in parts(none.mint(issuer=ISSUER, audience=AUDIENCE))[0]


@pytest.mark.parametrize("kind", ["rsa", "p384", "ed25519"])
def test_x5t_thumbprints_are_over_the_der_certificate(kind: str) -> None:
    signer = local_signer(kind, certificate=True)
    assert signer.certificate is not None
    der = signer.certificate.public_bytes(serialization.Encoding.DER)

    def b64url(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    assertion = AssertionMinter(signer, x5t=True).mint(issuer=ISSUER, audience=AUDIENCE)
    header = jwt.get_unverified_header(assertion)
    assert header["x5t#S256"] == b64url(hashlib.sha256(der).digest())
    assert header["x5t"] == b64url(hashlib.sha1(der).digest())
    assert "=" not in header["x5t#S256"] + header["x5t"]
    verify(assertion, private_key(kind).public_key(), signer.algorithm)  # the header is part of what is signed


def test_no_thumbprints_unless_asked() -> None:
    header = parts(AssertionMinter(local_signer(certificate=True)).mint(issuer=ISSUER, audience=AUDIENCE))[0]
    assert "x5t" not in header
    assert "x5t#S256" not in header


def test_x5t_without_a_certificate_is_refused_when_the_minter_is_built() -> None:
    with pytest.raises(KeystoreError, match="x5t") as info:
        AssertionMinter(local_signer(), x5t=True)
    assert info.value.field == "x5t"


# --------------------------------------------------------------------------- claims


def test_registered_claims() -> None:
    minter = AssertionMinter(local_signer("p256"))
    before = int(time.time())
    assertion = minter.mint(issuer=ISSUER, audience=AUDIENCE, subject="alice", lifetime=120)
    after = int(time.time())

    claims = verify(assertion, private_key("p256").public_key(), "ES256")
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "alice"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 120
    assert "nbf" not in claims
    assert len(claims["jti"]) == 36


def test_now_fixes_iat_and_exp() -> None:
    claims = parts(AssertionMinter(local_signer()).mint(issuer=ISSUER, audience=AUDIENCE, lifetime=30, now=1000.9))[1]
    assert (claims["iat"], claims["exp"]) == (1000, 1030)


def test_audience_list_is_a_json_array() -> None:
    audiences = ("https://a.example", "https://b.example")
    assertion = AssertionMinter(local_signer("p256")).mint(issuer=ISSUER, audience=audiences)
    assert parts(assertion)[1]["aud"] == list(audiences)
    for audience in audiences:  # either audience accepts it
        verify(assertion, private_key("p256").public_key(), "ES256", audience=audience)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(assertion, private_key("p256").public_key(), "ES256", audience="https://c.example")


def test_no_subject_means_no_sub_claim() -> None:
    assert "sub" not in parts(AssertionMinter(local_signer()).mint(issuer=ISSUER, audience=AUDIENCE))[1]


def test_nbf_when_asked() -> None:
    claims = parts(AssertionMinter(local_signer()).mint(issuer=ISSUER, audience=AUDIENCE, not_before=True))[1]
    assert claims["nbf"] == claims["iat"]


def test_extra_claims_are_kept_with_their_json_types() -> None:
    extra = {"box_sub_type": "enterprise", "roles": ["a", "b"], "ctx": {"tenant": "t1", "n": 2}, "flag": False}
    assertion = AssertionMinter(local_signer("p256")).mint(issuer=ISSUER, audience=AUDIENCE, claims=extra)
    claims = verify(assertion, private_key("p256").public_key(), "ES256")
    for name, value in extra.items():
        assert claims[name] == value
    assert claims["iss"] == ISSUER


def test_jti_is_new_for_every_assertion() -> None:
    minter = AssertionMinter(local_signer("p256"))
    assertions = [minter.mint(issuer=ISSUER, audience=AUDIENCE, now=1000) for _ in range(500)]
    assert len({parts(a)[1]["jti"] for a in assertions}) == 500
    assert len(set(assertions)) == 500  # same second, same claims otherwise: still never the same assertion


# --------------------------------------------------------------------------- the Signer contract


class DigestOnlySigner:
    """A signer that is not local: it keeps its key to itself and signs as a KMS would.

    Like a cloud KMS it returns a DER ECDSA signature, converted to JWS form with the
    provider's helper; it exposes nothing but the members of the :class:`Signer` protocol.
    """

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.signed: list[bytes] = []

    @property
    def algorithm(self) -> str:
        return "ES256"

    @property
    def key_id(self) -> str | None:
        return "kms-key-1"

    @property
    def certificate(self) -> x509.Certificate | None:
        return None

    @property
    def public_key(self) -> SigningPublicKey:
        return self._key.public_key()

    def sign(self, signing_input: bytes) -> bytes:
        self.signed.append(signing_input)
        return ecdsa_der_to_jws(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())), 256)


def test_a_signer_that_is_not_local_is_used_as_is() -> None:
    signer = DigestOnlySigner()
    assert isinstance(signer, Signer)
    minter = AssertionMinter(signer)

    assertion = minter.mint(issuer=ISSUER, audience=AUDIENCE, subject="alice")

    claims = verify(assertion, signer.public_key, "ES256")
    assert claims["sub"] == "alice"
    assert jwt.get_unverified_header(assertion) == {"alg": "ES256", "typ": "JWT", "kid": "kms-key-1"}
    header_b64, payload_b64, _ = assertion.split(".")
    assert signer.signed == [f"{header_b64}.{payload_b64}".encode("ascii")]  # one call, the signing input only
    minter.mint(issuer=ISSUER, audience=AUDIENCE)
    assert len(signer.signed) == 2
