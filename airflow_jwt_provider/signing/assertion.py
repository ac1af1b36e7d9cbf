"""Mint signed JWT assertions (RFC 7523 §3): the authorization grant and the client assertion.

Every call makes a new assertion, with a new ``jti`` and fresh ``iat``/``exp``: servers
refuse a replayed ``jti`` (Box, ServiceNow), so an assertion is never reused, not even for
a retry of the same token request.

The compact JWS is assembled here (RFC 7515 §7.1) and only the signature is asked of the
:class:`~airflow_jwt_provider.signing.signers.base.Signer`, so a key held in an HSM or a KMS signs
exactly like a key loaded on the worker. The protected header does not change between
assertions and is encoded once.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes

from airflow_jwt_provider.common.telemetry import TELEMETRY
from airflow_jwt_provider.signing.certificates import certificate_thumbprint
from airflow_jwt_provider.signing.signers.base import Signer


def b64url(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class AssertionMinter:
    """Mints assertions with one signer and fixed header settings.

    :param key_id: the ``kid`` header; the signer's own key id (e.g. a Google
        ``private_key_id``) when none is configured.
    :param x5t: add the ``x5t#S256`` and ``x5t`` certificate thumbprints (Microsoft Entra);
        raises :class:`~airflow_jwt_provider.exceptions.KeystoreError` at once when the signer
        knows no certificate, rather than at the first token request.
    :param kind: the signer's registered name (``local``, ``pkcs11``, ``aws_kms``…) and ``conn_id`` the
        connection: what the signing-time metric is named and tagged with.
    """

    def __init__(
        self,
        signer: Signer,
        *,
        key_id: str | None = None,
        x5t: bool = False,
        kind: str = "custom",
        conn_id: str | None = None,
    ) -> None:
        self.signer = signer
        self.kind = kind
        self.conn_id = conn_id
        self.header: dict[str, str] = {"alg": signer.algorithm, "typ": "JWT"}
        kid = key_id or signer.key_id
        if kid:
            self.header["kid"] = kid
        if x5t:
            self.header["x5t#S256"] = certificate_thumbprint(signer.certificate, hashes.SHA256())
            self.header["x5t"] = certificate_thumbprint(signer.certificate, hashes.SHA1())
        self._encoded_header = b64url(_json(self.header))
        self._typed_headers: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"AssertionMinter({self.signer!r}, header={self.header!r})"

    @property
    def algorithm(self) -> str:
        return self.signer.algorithm

    def _header_for(self, typ: str | None) -> bytes:
        if typ is None:
            return self._encoded_header
        encoded = self._typed_headers.get(typ)
        if encoded is None:
            encoded = self._typed_headers[typ] = b64url(_json({**self.header, "typ": typ}))
        return encoded

    def mint(
        self,
        *,
        issuer: str,
        audience: str | tuple[str, ...],
        subject: str | None = None,
        lifetime: int = 60,
        claims: Mapping[str, Any] | None = None,
        not_before: bool = False,
        now: float | None = None,
        typ: str | None = None,
    ) -> str:
        """A compact JWS with ``iss``, ``sub``, ``aud``, ``iat``, ``exp``, ``jti`` and ``claims``.

        :param typ: another ``typ`` header than ``JWT`` (a client assertion's ``client-authentication+jwt``).
        """
        issued_at = int(now if now is not None else time.time())
        payload: dict[str, Any] = dict(claims or {})
        payload.update(
            iss=issuer,
            aud=list(audience) if isinstance(audience, tuple) else audience,
            iat=issued_at,
            exp=issued_at + lifetime,
            jti=str(uuid.uuid4()),
        )
        if subject is not None:
            payload["sub"] = subject
        if not_before:
            payload["nbf"] = issued_at
        signing_input = self._header_for(typ) + b"." + b64url(_json(payload))
        started = time.perf_counter()
        signature = self.signer.sign(signing_input)  # the device round trip, for an HSM or a KMS
        TELEMETRY.signed(self.kind, self.conn_id, time.perf_counter() - started)
        return (signing_input + b"." + b64url(signature)).decode("ascii")
