"""Access tokens at rest in a shared cache: encrypted, authenticated, bound to their cache key.

A token in Redis or in a file is a bearer credential: whoever reads it can call the API as the
subject. So a shared cache stores only *sealed* entries that take the connection's signing key
to open, the same thing minting a token takes:

* **One secret, three keys.** :class:`TokenSeal` is built from a secret only a holder of the
  connection's key can compute (:meth:`JwtBearerCredentials.token_cache_secret
  <airflow_jwt_provider.tokens.credentials.JwtBearerCredentials.token_cache_secret>`: a digest of the
  private key, or a deterministic signature made by a remote signer, with the client secret when
  there is one). HKDF-SHA256 turns it into an AES-256-GCM key, a key that names entries and a
  key that tags tokens.
* **Names reveal nothing.** An entry's name is an HMAC of the cache key, so neither a Redis key
  nor a file name shows a subject, a scope or a client, and two keys never address each other's
  entries.
* **Bound to the cache key.** The cache key (a digest of the token URL, client, ``iss``, ``sub``,
  ``aud``, scope, claims and key fingerprint) is the AEAD's associated data: an entry copied
  under another name, or written for another subject, scope or audience, does not open.
* **Compare-and-delete without decrypting.** Each entry starts with a tag of the token it holds
  (an HMAC, never the token): the 401 rule drops an entry only while it still holds the token
  the API refused, which a store can check atomically (a Lua script, or under the file lock).

Entry layout: ``b"JWTB"``, a version byte, the 16-byte token tag, a 12-byte nonce, then the
ciphertext of the token's JSON with the 16-byte GCM tag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airflow_jwt_provider.signing.dpop import DPoPKey
from airflow_jwt_provider.tokens.access_token import AccessToken

MAGIC = b"JWTB"
VERSION = b"\x01"
TAG_LENGTH = 16
NONCE_LENGTH = 12
#: The bytes an entry starts with, which name the token it holds (see :meth:`TokenSeal.entry_prefix`).
PREFIX_LENGTH = len(MAGIC) + len(VERSION) + TAG_LENGTH
_HKDF_INFO = b"airflow-jwt-provider token cache v1"
_GCM_TAG_LENGTH = 16


class SealError(ValueError):
    """An entry that cannot be opened: altered, truncated, or sealed with another key or for another token."""


class TokenSeal:
    """Seals and opens cache entries with keys derived from ``secret``; see the module docstring.

    :param secret: at least 16 bytes only a holder of the connection's key can compute.
    """

    __slots__ = ("_aead", "_name_key", "_tag_key")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token cache secret must have at least 16 bytes")
        material = HKDF(algorithm=hashes.SHA256(), length=96, salt=None, info=_HKDF_INFO).derive(secret)
        self._aead = AESGCM(material[:32])
        self._name_key = material[32:64]
        self._tag_key = material[64:]

    def __repr__(self) -> str:
        return "TokenSeal(<keys hidden>)"

    def __reduce__(self) -> Any:
        raise TypeError("a TokenSeal holds encryption keys and cannot be pickled")

    def entry_name(self, cache_key: str) -> str:
        """The store's name for the entry of ``cache_key``: 64 hex digits that reveal nothing."""
        return hmac.new(self._name_key, b"name:" + cache_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def entry_prefix(self, token: AccessToken) -> bytes:
        """The first bytes of any entry that holds ``token``: compare-and-delete compares these."""
        tag = hmac.new(self._tag_key, b"token:" + token.access_token.encode("utf-8"), hashlib.sha256).digest()
        return MAGIC + VERSION + tag[:TAG_LENGTH]

    def seal(self, cache_key: str, token: AccessToken) -> bytes:
        """``token`` encrypted and authenticated for ``cache_key``, as the bytes a store keeps."""
        prefix = self.entry_prefix(token)
        nonce = os.urandom(NONCE_LENGTH)
        plaintext = json.dumps(_token_to_json(token), separators=(",", ":")).encode("utf-8")
        return prefix + nonce + self._aead.encrypt(nonce, plaintext, self._associated_data(cache_key, prefix))

    def open(self, cache_key: str, entry: bytes) -> AccessToken:
        """The token sealed in ``entry`` for ``cache_key``; :class:`SealError` if it does not open."""
        if len(entry) < PREFIX_LENGTH + NONCE_LENGTH + _GCM_TAG_LENGTH or not entry.startswith(MAGIC):
            raise SealError("not a token cache entry (truncated or foreign data)")
        if entry[len(MAGIC) : len(MAGIC) + len(VERSION)] != VERSION:
            raise SealError("a token cache entry of another format version")
        prefix = entry[:PREFIX_LENGTH]
        nonce = entry[PREFIX_LENGTH : PREFIX_LENGTH + NONCE_LENGTH]
        try:
            plaintext = self._aead.decrypt(
                nonce, entry[PREFIX_LENGTH + NONCE_LENGTH :], self._associated_data(cache_key, prefix)
            )
        except InvalidTag:
            raise SealError(
                "the entry does not open with this connection's key (altered, or sealed with another key)"
            ) from None
        try:
            token = _token_from_json(json.loads(plaintext))
        except (ValueError, TypeError, KeyError):
            raise SealError("the entry opens but holds no token") from None
        if not hmac.compare_digest(self.entry_prefix(token), prefix):
            raise SealError("the entry's tag does not name the token it holds")
        return token

    @staticmethod
    def _associated_data(cache_key: str, prefix: bytes) -> bytes:
        return prefix + b"|" + cache_key.encode("utf-8")


def _token_to_json(token: AccessToken) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "scope": token.scope,
        "issued_at": token.issued_at.isoformat(),
        "extra": dict(token.extra),
        "assumed_lifetime": token.assumed_lifetime.total_seconds(),
        "issued_token_type": token.issued_token_type,
        # A generated DPoP key travels with its token (inside the sealed entry): every process served the
        # token proves with the key it is bound to. A signer key does not: every process has it.
        "dpop_key": _dpop_key_to_json(token.dpop_key),
    }


def _dpop_key_to_json(key: DPoPKey | None) -> dict[str, str] | None:
    if key is None or not key.travels_with_token:
        return None
    return {"alg": key.algorithm, "pkcs8": base64.b64encode(key.private_der()).decode("ascii")}


def _dpop_key_from_json(data: Any) -> DPoPKey | None:
    if not isinstance(data, dict):
        return None
    return DPoPKey.from_private_der(base64.b64decode(str(data["pkcs8"])), str(data["alg"]))


def _token_from_json(data: Any) -> AccessToken:
    if not isinstance(data, dict) or not isinstance(data["access_token"], str):
        raise TypeError("not a token")
    expires_at = data["expires_at"]
    extra = data["extra"]
    if not isinstance(extra, dict):
        raise TypeError("extra is not an object")
    return AccessToken(
        access_token=data["access_token"],
        token_type=str(data["token_type"]),
        expires_at=datetime.fromisoformat(expires_at) if expires_at is not None else None,
        scope=data["scope"] if isinstance(data["scope"], str) else None,
        issued_at=datetime.fromisoformat(data["issued_at"]),
        extra=extra,
        assumed_lifetime=timedelta(seconds=float(data["assumed_lifetime"])),
        issued_token_type=data.get("issued_token_type") if isinstance(data.get("issued_token_type"), str) else None,
        dpop_key=_dpop_key_from_json(data.get("dpop_key")),
    )
