"""DPoP proofs (RFC 9449 §4): a JWT, signed by the key a token is bound to, for one HTTP request.

The proof's header carries the public key (``jwk``, the RFC 7638 required members only), its
claims the request (``htm``, ``htu``), a fresh ``jti`` and ``iat``, the server's ``nonce`` when it
gave one, and on API calls the hash of the access token (``ath``). The server binds the token to
the key's thumbprint (``cnf.jkt``), so only the key's holder can use it.

The key is a :class:`~airflow_jwt_provider.signing.signers.base.Signer`: one generated for the
connection (ES256 by default: the algorithm servers accept first, and the cheapest signature), or
the connection's own signer (a key file, an HSM, a KMS key), which then signs every proof.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from airflow_jwt_provider.connection.kinds import KeystoreType
from airflow_jwt_provider.signing.assertion import b64url
from airflow_jwt_provider.signing.jws import SigningPublicKey
from airflow_jwt_provider.signing.key_files.loader import SigningKey
from airflow_jwt_provider.signing.signers.base import Signer
from airflow_jwt_provider.signing.signers.local.signer import LocalKeySigner

DPOP_TYP = "dpop+jwt"
#: RFC 7638 §3.2: the members of a public JWK its thumbprint covers, by key type.
_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def public_jwk(public_key: SigningPublicKey) -> dict[str, str]:
    """The public JWK of ``public_key`` with exactly the RFC 7638 required members (never a private one)."""
    jwk: dict[str, Any]
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    return {member: str(jwk[member]) for member in _REQUIRED_MEMBERS[str(jwk["kty"])]}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the ``jkt`` a server binds a token to."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return b64url(hashlib.sha256(canonical).digest()).decode("ascii")


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url SHA-256 of the ASCII access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()).decode("ascii")


class DPoPKey:
    """The key a DPoP-bound token is bound to: signs proofs; knows its public JWK and thumbprint.

    :param signer: what signs the proofs.
    :param private_key: the private key of a generated key, which travels with its token through a
        shared cache (sealed); ``None`` for the connection's signer, which every process has anyway.
    """

    def __init__(self, signer: Signer, private_key: Any = None) -> None:
        self.signer = signer
        self.private_key = private_key
        self.public_jwk = public_jwk(signer.public_key)
        self.jkt = jwk_thumbprint(self.public_jwk)
        header = {"typ": DPOP_TYP, "alg": signer.algorithm, "jwk": self.public_jwk}
        self._header = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.algorithm!r}, jkt={self.jkt!r})"

    @property
    def algorithm(self) -> str:
        return self.signer.algorithm

    @property
    def travels_with_token(self) -> bool:
        """A generated key is stored with its token (sealed) in a shared cache; the signer is everywhere."""
        return self.private_key is not None

    @classmethod
    def generate(cls, algorithm: str = "ES256") -> DPoPKey:
        """A new key for ``algorithm`` (EC on the algorithm's curve, Ed25519 for EdDSA, RSA-2048 for RS/PS)."""
        private_key: Any
        if algorithm in _CURVES:
            private_key = ec.generate_private_key(_CURVES[algorithm])
        elif algorithm == "EdDSA":
            private_key = ed25519.Ed25519PrivateKey.generate()
        else:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls.from_private_key(private_key, algorithm)

    @classmethod
    def from_private_key(cls, private_key: Any, algorithm: str) -> DPoPKey:
        signing_key = SigningKey(private_key, KeystoreType.PEM)
        return cls(LocalKeySigner(signing_key, algorithm, key_field="dpop_key"), private_key)

    def private_der(self) -> bytes:
        """The generated private key (PKCS#8 DER), for the sealed shared-cache entry only."""
        if self.private_key is None:
            raise ValueError("the connection's signer key is not stored with its tokens")
        return bytes(
            self.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    @classmethod
    def from_private_der(cls, der: bytes, algorithm: str) -> DPoPKey:
        return cls.from_private_key(serialization.load_der_private_key(der, None), algorithm)

    def proof(self, method: str, htu: str, *, access_token: str | None = None, nonce: str | None = None) -> str:
        """A new proof for one request: ``htu`` as :func:`airflow_jwt_provider.tokens.dpop.htu_of` makes it."""
        claims: dict[str, Any] = {"jti": str(uuid.uuid4()), "htm": method.upper(), "htu": htu, "iat": int(time.time())}
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        signing_input = self._header + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        signature = base64.urlsafe_b64encode(self.signer.sign(signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode("ascii")
