"""The ``local`` signer's :class:`LocalKeySigner`: a private key held in this process, signing with PyJWT's code."""

from __future__ import annotations

import hashlib
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import Algorithm, get_default_algorithms

from airflow_jwt_provider.signing.jws import JWS_HASHES, SigningPublicKey, choose_algorithm
from airflow_jwt_provider.signing.key_files.loader import SigningKey

_JWS_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()


class LocalKeySigner:
    """Signs with a :class:`~airflow_jwt_provider.signing.key_files.loader.SigningKey` held in this process.

    Signatures come from PyJWT's algorithm implementations (the same code as ``jwt.encode``),
    so the JWS format (``R || S`` for ECDSA, PSS salt length) is PyJWT's.
    """

    def __init__(self, key: SigningKey, algorithm: str | None = None, *, key_field: str = "key_file") -> None:
        self.key = key
        self._algorithm = choose_algorithm(
            key.public_key, algorithm, supported=(*JWS_HASHES, "EdDSA"), key_field=key_field, where="the signing key"
        )
        self._implementation = _JWS_ALGORITHMS[self._algorithm]

    def __repr__(self) -> str:
        return f"LocalKeySigner({self.key!r}, algorithm={self._algorithm!r})"

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def key_id(self) -> str | None:
        return self.key.key_id

    @property
    def certificate(self) -> x509.Certificate | None:
        return self.key.certificate

    @property
    def public_key(self) -> SigningPublicKey:
        return self.key.public_key

    def sign(self, signing_input: bytes) -> bytes:
        return self._implementation.sign(signing_input, self.key.private_key)

    def key_holder_secret(self) -> bytes:
        """A digest of the private key itself (any key type): see :func:`~.base.key_holder_secret`."""
        return self._key_holder_secret

    @cached_property
    def _key_holder_secret(self) -> bytes:
        der = self.key.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return hashlib.sha256(b"private-key:" + der).digest()
