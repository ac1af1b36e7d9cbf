"""The :class:`Signer` contract and the JWS arithmetic every signer shares.

A JWS (RFC 7515) is ``base64url(header) . base64url(payload) . base64url(signature)``, where
the signature covers the ASCII bytes of the first two parts (the *signing input*). Whoever
holds the private key only ever needs to see that input (or its digest) and return the
signature; this is what lets a key stay inside an HSM or a cloud KMS. The assertion code
builds headers and claims, and asks a :class:`Signer` for the signature alone.

JWS signature formats (RFC 7518 §3): RSASSA-PKCS1-v1_5 (``RS*``) and RSASSA-PSS (``PS*``,
MGF1 with the same hash, salt as long as the hash) signatures are the raw RSA output;
ECDSA (``ES*``) signatures are ``R || S``, each left-padded to the curve's byte length, not
the DER ``SEQUENCE`` that most libraries and devices return (:func:`ecdsa_der_to_jws`).
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

#: Public keys a JWS signer may have.
SigningPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: The hash each JWS algorithm signs with (EdDSA hashes internally).
JWS_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
    "ES256": hashes.SHA256,
    "ES384": hashes.SHA384,
    "ES512": hashes.SHA512,
}
#: The curve each ECDSA algorithm requires (RFC 7518 §3.4).
ES_CURVES: dict[str, str] = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


@runtime_checkable
class Signer(Protocol):
    """Signs JWS signing inputs with one private key; knows the key's public half.

    Implement this to sign with a key the provider has no backend for (a GCP KMS, Azure
    Key Vault or Vault transit key...): the assertion code calls only these members.

    * ``algorithm``: the JWS ``alg`` this signer produces (``RS256``, ``PS256``, ``ES256``...).
    * ``key_id``: the ``kid`` the key is known by, or ``None`` (a connection's ``key_id``
      setting wins over it).
    * ``certificate``: the X.509 certificate of the key, if one is known (needed for the
      ``x5t``/``x5t#S256`` headers and shown by ``airflow jwt-bearer inspect``).
    * ``public_key``: the public half (for the cache fingerprint and for export).
    * ``sign(signing_input)``: the JWS signature of ``signing_input``, in JWS form
      (``R || S`` for ECDSA). Called once per assertion; may block on I/O (an HSM or a KMS
      round trip), never called on the triggerer's event loop.
    """

    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str | None: ...

    @property
    def certificate(self) -> x509.Certificate | None: ...

    @property
    def public_key(self) -> SigningPublicKey: ...

    def sign(self, signing_input: bytes) -> bytes: ...


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """The hash of JWS ``algorithm`` (``KeyError`` for EdDSA, which has none to choose)."""
    return JWS_HASHES[algorithm]()


def digest(algorithm: str, signing_input: bytes) -> bytes:
    """The digest a remote signer is sent for ``algorithm`` (the data never leaves as such)."""
    return hashlib.new(hash_for(algorithm).name, signing_input).digest()


def ecdsa_der_to_jws(der_signature: bytes, curve_bits: int) -> bytes:
    """A DER ``ECDSA-Sig-Value`` (what KMS and most libraries return) as JWS ``R || S``."""
    r, s = decode_dss_signature(der_signature)
    size = (curve_bits + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def public_key_fingerprint(public_key: SigningPublicKey) -> str:
    """Hex SHA-256 of the SubjectPublicKeyInfo: names a key pair wherever its private half lives."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def describe_public_key(public_key: SigningPublicKey) -> str:
    """``RSA-2048``, ``EC-secp256r1`` or ``Ed25519``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC-{public_key.curve.name}"
    return "Ed25519"


#: JWS algorithms an RSA key can sign with.
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


def allowed_algorithms(public_key: SigningPublicKey) -> tuple[str, ...]:
    """The JWS algorithms a key pair can sign with: any RSA one, the curve's ECDSA one, or EdDSA."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return tuple(alg for alg, curve in ES_CURVES.items() if curve == public_key.curve.name)
    return ("EdDSA",)


def default_algorithm(public_key: SigningPublicKey) -> str:
    """RSA → RS256, EC → ES256/384/512 by curve, Ed25519 → EdDSA."""
    allowed = allowed_algorithms(public_key)
    if not allowed:
        curve = public_key.curve.name if isinstance(public_key, ec.EllipticCurvePublicKey) else "?"
        raise ValueError(f"no JWS algorithm signs with the EC curve {curve}; use P-256, P-384 or P-521")
    return allowed[0]


def choose_algorithm(public_key: SigningPublicKey, requested: str | None) -> str:
    """``requested`` if the key can sign with it, else the key's default; a misfit names the setting."""
    from airflow_jwt_provider.exceptions import JwtBearerConfigError

    if requested is None:
        return default_algorithm(public_key)
    allowed = allowed_algorithms(public_key)
    if requested not in allowed:
        raise JwtBearerConfigError(
            f"algorithm {requested} does not fit the {describe_public_key(public_key)} key; "
            f"use one of {', '.join(allowed)} or remove the algorithm setting",
            field="algorithm",
        )
    return requested
