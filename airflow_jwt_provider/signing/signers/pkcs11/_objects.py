"""What is read off a PKCS#11 token: public keys from key objects, ECDSA output, the key that was found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_jwt_provider.signing.jws import SigningPublicKey, ecdsa_der_to_jws


@dataclass(frozen=True)
class FoundKey:
    """The private key a signer found on its token, and what goes with it.

    :param template: the attributes that find this key again after a reconnect (class, id, label).
    :param label: its ``CKA_LABEL`` (``None`` when the token gave none).
    :param object_id: its ``CKA_ID`` in hex (empty when the token gave none).
    :param certificate: a certificate object on the token for this key pair, if any.
    :param mechanisms: the mechanisms the token's slot offers.
    """

    template: dict[Any, Any]
    public_key: SigningPublicKey
    label: str | None
    object_id: str
    certificate: x509.Certificate | None
    mechanisms: frozenset[Any]


def public_key_from_token_object(obj: Any) -> SigningPublicKey:
    """The ``cryptography`` public key of a PKCS#11 RSA/EC public-key (or RSA private-key) object."""
    from pkcs11 import Attribute, KeyType

    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
        exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if key_type == KeyType.EC:
        from asn1crypto.core import OctetString
        from asn1crypto.keys import ECDomainParameters, PublicKeyInfo

        point = bytes(obj[Attribute.EC_POINT])
        try:
            # PKCS#11 says DER OCTET STRING; some modules return the bare point (also 0x04-led).
            inner = bytes(OctetString.load(point, strict=True))
            if inner[:1] in (b"\x02", b"\x03", b"\x04"):
                point = inner
        except ValueError:
            pass
        spki = PublicKeyInfo(
            {
                "algorithm": {"algorithm": "ec", "parameters": ECDomainParameters.load(obj[Attribute.EC_PARAMS])},
                "public_key": point,
            }
        ).dump()
        key = serialization.load_der_public_key(spki)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key
    raise ValueError(f"key type {getattr(key_type, 'name', key_type)} is not RSA or EC")


def token_ecdsa_to_jws(raw: bytes, curve_bits: int) -> bytes:
    """A token's ECDSA output as JWS ``R || S`` (PKCS#11 already returns ``r || s``; pad short halves)."""
    size = (curve_bits + 7) // 8
    if len(raw) == 2 * size:
        return raw
    if raw[:1] == b"\x30":
        return ecdsa_der_to_jws(raw, curve_bits)
    if len(raw) % 2 == 0 and len(raw) < 2 * size:
        half = len(raw) // 2
        return raw[:half].rjust(size, b"\0") + raw[half:].rjust(size, b"\0")
    raise ValueError(f"a {len(raw)}-byte ECDSA signature does not fit a {curve_bits}-bit curve")
