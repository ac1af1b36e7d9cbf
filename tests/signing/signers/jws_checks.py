"""Independent checks of what a signer produces: a compact JWS that PyJWT and cryptography accept.

Neither check uses the signer's own code: PyJWT verifies the assembled token with the public
key the authorization server would hold (so the JWS format, including ECDSA ``R || S``, is
proven), and cryptography verifies the raw signature with the textbook parameters of each
algorithm (PSS salt = hash length, as RFC 7518 §3.5 requires).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from airflow_jwt_provider.signing.signers.base import Signer

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signing_input(algorithm: str, claims: dict[str, Any] | None = None) -> bytes:
    """The ASCII ``header.payload`` of a typical client assertion."""
    now = int(time.time())
    header = {"alg": algorithm, "typ": "JWT"}
    payload = claims or {
        "iss": "test-client",
        "sub": "alice",
        "aud": "https://as.example/token",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    return (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())).encode("ascii")


def sign_compact(signer: Signer, claims: dict[str, Any] | None = None) -> tuple[str, bytes, bytes]:
    """A compact JWS signed by ``signer``: (token, signing input, signature)."""
    data = signing_input(signer.algorithm, claims)
    signature = signer.sign(data)
    return data.decode("ascii") + "." + b64url(signature), data, signature


def verify_with_pyjwt(token: str, public_key_pem: str, algorithm: str) -> dict[str, Any]:
    return jwt.decode(
        token,
        key=public_key_pem,
        algorithms=[algorithm],
        audience="https://as.example/token",
        options={"require": ["exp", "iat"]},
    )


def verify_with_cryptography(public_key: Any, algorithm: str, data: bytes, signature: bytes) -> None:
    """Raises ``InvalidSignature`` unless ``signature`` is ``algorithm``'s JWS signature of ``data``."""
    hash_algorithm = _HASHES[algorithm[2:]]()
    if algorithm.startswith("RS"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        assert len(signature) == public_key.key_size // 8
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif algorithm.startswith("PS"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
        public_key.verify(signature, data, pss, hash_algorithm)
    elif algorithm.startswith("ES"):
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        size = (public_key.curve.key_size + 7) // 8
        assert len(signature) == 2 * size, f"ECDSA JWS signature must be R||S of {2 * size} bytes"
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_algorithm))
    else:
        raise AssertionError(f"unexpected algorithm {algorithm}")


def assert_signs_valid_jws(signer: Signer, public_key_pem: str) -> str:
    """Sign a compact JWS with ``signer`` and verify it both ways; returns the token."""
    token, data, signature = sign_compact(signer)
    claims = verify_with_pyjwt(token, public_key_pem, signer.algorithm)
    assert claims["sub"] == "alice"
    verify_with_cryptography(signer.public_key, signer.algorithm, data, signature)
    return token
