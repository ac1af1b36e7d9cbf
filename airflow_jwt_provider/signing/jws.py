"""JWS arithmetic every signer shares: algorithms, hashes, key descriptions, signature formats.

A JWS (RFC 7515) is ``base64url(header) . base64url(payload) . base64url(signature)``, where
the signature covers the ASCII bytes of the first two parts (the *signing input*). Whoever
holds the private key only ever needs to see that input (or its digest) and return the
signature; this is what lets a key stay inside an HSM or a cloud KMS.

JWS signature formats (RFC 7518 §3): RSASSA-PKCS1-v1_5 (``RS*``) and RSASSA-PSS (``PS*``,
MGF1 with the same hash, salt as long as the hash) signatures are the raw RSA output;
ECDSA (``ES*``) signatures are ``R || S``, each left-padded to the curve's byte length, not
the DER ``SEQUENCE`` that most libraries and devices return (:func:`ecdsa_der_to_jws`).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from airflow_jwt_provider.exceptions import JwtBearerConfigError

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
#: The JWS algorithms an RSA key can sign with; RS256 is the default (the most widely accepted).
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
#: RFC 7518 §3.3: RSA keys of 2048 bits or more.
MIN_RSA_BITS = 2048
#: JWS algorithms whose signature of given bytes is always the same (RSASSA-PKCS1-v1_5, Ed25519);
#: PSS and ECDSA signatures are randomised (a fresh salt or nonce each time).
DETERMINISTIC_ALGORITHMS = ("RS256", "RS384", "RS512", "EdDSA")


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


def allowed_algorithms(public_key: SigningPublicKey) -> tuple[str, ...]:
    """The JWS algorithms ``public_key``'s private half may sign with (default first).

    An EC key signs with one algorithm only: RFC 7518 §3.4 ties ES256/384/512 to a curve.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return tuple(alg for alg, curve in ES_CURVES.items() if curve == public_key.curve.name)
    return ("EdDSA",)


def choose_algorithm(
    public_key: SigningPublicKey,
    requested: str | None,
    *,
    supported: tuple[str, ...] = tuple(JWS_HASHES),
    field: str = "algorithm",
    key_field: str | None = None,
    where: str = "the key",
) -> str:
    """The JWS algorithm to sign with: ``requested`` if it fits the key, else the key's default.

    Remote signers (HSM, KMS) call this once, when they are built, so that a key that cannot
    sign a JWT, or an algorithm that does not fit it, is reported before any request is made.

    :param supported: what the signer's backend can produce at all (HSMs and KMS sign no EdDSA here).
    :param field: the setting that holds ``requested``, named in the error.
    :param key_field: the setting that selects the key, named when the key itself is unfit.
    :param where: how the key is called in messages (``KMS key alias/x``, ``PKCS#11 key 'rsa'``...).
    """
    described = describe_public_key(public_key)
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        raise JwtBearerConfigError(
            f"{where} is {described}; RFC 7518 requires RSA keys of at least {MIN_RSA_BITS} bits: "
            "create a 2048-bit (or larger) key",
            field=key_field,
        )
    allowed = tuple(alg for alg in allowed_algorithms(public_key) if alg in supported)
    if not allowed:
        raise JwtBearerConfigError(
            f"{where} is {described}, which this signer cannot sign a JWT with; "
            "use an RSA (2048 bits or more) or EC P-256/P-384/P-521 key",
            field=key_field,
        )
    if requested is None or requested == "":
        return allowed[0]
    if requested not in allowed:
        raise JwtBearerConfigError(
            f"{field} {requested} does not fit {where} ({described}); use one of {', '.join(allowed)} "
            f"or leave {field} empty for {allowed[0]}",
            field=field,
        )
    return requested


def same_public_key(a: object, b: object) -> bool:
    """Whether two public keys are the same key (compared as SubjectPublicKeyInfo)."""

    def spki(key: object) -> bytes | None:
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            return None
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    left = spki(a)
    return left is not None and left == spki(b)
