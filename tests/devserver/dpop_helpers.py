"""DPoP proofs made by hand (PyJWT) and WWW-Authenticate parsing, for the devserver's DPoP and mTLS tests."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc7638(public_jwk: dict[str, Any]) -> str:
    """The test's own RFC 7638 thumbprint (the server uses joserfc's)."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = {name: public_jwk[name] for name in members[public_jwk["kty"]]}
    return b64url(hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest())


class ProofKey:
    """A DPoP key and the proofs it signs (PyJWT)."""

    def __init__(self, private_key: Any, alg: str) -> None:
        self.private_key = private_key
        self.alg = alg
        exporter: Any = {"ES": ECAlgorithm, "PS": RSAAlgorithm, "RS": RSAAlgorithm}.get(alg[:2], OKPAlgorithm)
        exported = exporter.to_jwk(private_key.public_key(), as_dict=True)
        self.jwk: dict[str, Any] = {k: v for k, v in exported.items() if k in ("kty", "crv", "x", "y", "n", "e")}
        self.jkt = rfc7638(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A proof; a claim given as None is left out."""
        payload: dict[str, Any] = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
        if access_token is not None:
            payload["ath"] = b64url(hashlib.sha256(access_token.encode("ascii")).digest())
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"typ": "dpop+jwt", "jwk": self.jwk, **(headers or {})}
        return jwt.encode(payload, self.private_key, algorithm=self.alg, headers=header)


def challenges(header: str) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` by scheme (a header may hold several challenges)."""
    found: dict[str, dict[str, str]] = {}
    for match in re.finditer(r'([A-Za-z]+)((?:\s*,?\s*[a-z_]+="[^"]*")+)', header):
        found[match.group(1)] = dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2)))
    return found
