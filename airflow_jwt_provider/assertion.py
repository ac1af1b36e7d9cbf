"""Mint signed JWT assertions (RFC 7523 §3): the authorization grant and the client assertion.

Every call makes a new assertion, with a new ``jti`` and fresh ``iat``/``exp``: servers
refuse a replayed ``jti`` (Box, ServiceNow), so an assertion is never reused, not even for
a retry of the same token request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes

from airflow_jwt_provider.keys import SigningKey


@dataclass(frozen=True)
class AssertionSigner:
    """Signs assertions with one key and fixed header settings.

    :param key_id: the ``kid`` header (the key's own id, e.g. a Google ``private_key_id``,
        is used when none is configured).
    :param x5t: add the ``x5t#S256`` and ``x5t`` certificate thumbprints (Microsoft Entra).
    """

    key: SigningKey = field(repr=False)
    algorithm: str
    key_id: str | None = None
    x5t: bool = False

    @classmethod
    def for_key(cls, key: SigningKey, *, algorithm: str | None, key_id: str | None, x5t: bool) -> AssertionSigner:
        signer = cls(key=key, algorithm=key.algorithm_for(algorithm), key_id=key_id or key.key_id, x5t=x5t)
        signer.headers()  # fail now, not at the first request, when x5t has no certificate
        return signer

    def headers(self) -> dict[str, str]:
        headers = {"typ": "JWT"}
        if self.key_id:
            headers["kid"] = self.key_id
        if self.x5t:
            headers["x5t#S256"] = self.key.thumbprint(hashes.SHA256())
            headers["x5t"] = self.key.thumbprint(hashes.SHA1())
        return headers

    def sign(
        self,
        *,
        issuer: str,
        audience: str | tuple[str, ...],
        subject: str | None = None,
        lifetime: int = 60,
        claims: Mapping[str, Any] | None = None,
        not_before: bool = False,
        now: float | None = None,
    ) -> str:
        """Return a compact JWS with ``iss``, ``sub``, ``aud``, ``iat``, ``exp``, ``jti`` and ``claims``."""
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
        # Not registered with the secret masker here: assertions minted for token requests go
        # straight into the POST body and are never logged, and the masker recompiles its
        # pattern on every new secret (a cost that grows with each one). The hook masks the
        # assertions it hands to user code.
        return jwt.encode(payload, self.key.private_key, algorithm=self.algorithm, headers=self.headers())
