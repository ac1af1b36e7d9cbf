"""A JWT the platform made, decoded without verifying it (that is the authorization server's job).

Read for three reasons: never send one that has expired (the server would refuse it, with a less
useful message), say in ``airflow jwt-bearer check`` what it claims, and key the token cache by who
it names (``iss``, ``sub``, ``aud``), never by its bytes, which change at every rotation.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_jwt_provider.exceptions import AssertionSourceError

#: A JWT this close to its expiry is not sent: it could expire on its way.
EXPIRY_MARGIN_SECONDS = 5.0


def _segment(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


@dataclass(frozen=True, repr=False)
class ExternalJwt:
    """A compact JWT and its decoded header and claims (the compact form is a credential: never in ``repr``)."""

    compact: str = field(repr=False)
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @classmethod
    def parse(cls, text: str, *, where: str, field_name: str) -> ExternalJwt:
        """``text`` (surrounding blanks removed) as a JWT, or :class:`AssertionSourceError` naming ``where``."""
        compact = text.strip()
        parts = compact.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise AssertionSourceError(
                f"{where} does not hold a JWT (three base64url parts separated by dots); check that it is the "
                "platform's token and not, e.g., a key or an empty file",
                field=field_name,
            )
        try:
            header, claims = _segment(parts[0]), _segment(parts[1])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise AssertionSourceError(
                f"{where} holds three dot-separated parts that are not a JWT's base64url JSON", field=field_name
            ) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AssertionSourceError(f"{where} holds a JWT whose header or claims are not objects", field=field_name)
        return cls(compact, header, claims)

    def __repr__(self) -> str:
        return f"ExternalJwt(iss={self.issuer!r}, sub={self.subject!r}, aud={self.audiences!r}, exp={self.expires})"

    @property
    def issuer(self) -> str | None:
        value = self.claims.get("iss")
        return value if isinstance(value, str) else None

    @property
    def subject(self) -> str | None:
        value = self.claims.get("sub")
        return value if isinstance(value, str) else None

    @property
    def audiences(self) -> tuple[str, ...]:
        value = self.claims.get("aud")
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(v for v in value if isinstance(v, str))
        return ()

    @property
    def expires_at(self) -> float | None:
        value = self.claims.get("exp")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def lifetime(self) -> float | None:
        """``exp - iat``, when both are numbers: how long the platform made it live."""
        issued = self.claims.get("iat")
        if self.expires_at is None or not isinstance(issued, (int, float)) or isinstance(issued, bool):
            return None
        return self.expires_at - float(issued) or None

    @property
    def expires(self) -> str:
        at = self.expires_at
        return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "never"

    @property
    def identity(self) -> str:
        """Who the JWT names: what the token cache keys on, so a rotated JWT of the same identity reuses a token."""
        return json.dumps([self.issuer, self.subject, sorted(self.audiences)], separators=(",", ":"))

    def seconds_left(self, now: float | None = None) -> float | None:
        at = self.expires_at
        return None if at is None else at - (now if now is not None else time.time())

    def check_usable(self, *, where: str, field_name: str, audience: str | None = None, advice: str = "") -> None:
        """Refuse a JWT that has expired (or nearly), or that is not for ``audience`` when one is expected."""
        left = self.seconds_left()
        if left is not None and left <= EXPIRY_MARGIN_SECONDS:
            when = f"expired at {self.expires} ({-left:.0f} s ago)" if left <= 0 else f"expires in {left:.0f} s"
            raise AssertionSourceError(
                f"{where} holds a JWT that {when}, and an expired JWT is never sent{advice}", field=field_name
            ) from None
        if audience is not None and audience not in self.audiences:
            raise AssertionSourceError(
                f"{where} holds a JWT for audience {', '.join(self.audiences) or '(none)'}, not {audience!r}: the "
                "platform was asked for another audience, or the setting is wrong",
                field=field_name,
            )
