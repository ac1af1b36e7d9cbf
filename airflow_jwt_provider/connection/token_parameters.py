"""Which token a call wants: :class:`TokenParameters` (subject, scope, claims, handed-in assertion).

One connection gives many tokens: a task may act as another user (``subject``, like
ServiceNow's ``setRequestor``), ask for a narrower ``scope``, add ``claims``, or exchange a JWT
obtained elsewhere (``assertion``, Microsoft's on-behalf-of flow). These four travel together
from the operator or the hook down to the token cache, so they are one immutable value,
compared and hashed by content: it is the key of the hook's sessions and part of the token
cache key, and (without the assertion, a secret) what a trigger carries.

Claims may hold lists and objects (``{"roles": ["a", "b"]}``); equality and hashing go through
their canonical JSON, so such values work wherever the parameters are used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airflow_jwt_provider.exceptions import JwtBearerConfigError

#: Claims the provider sets itself; per-call or connection ``claims`` may not override them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "exp", "jti", "nbf"})
_DEDICATED_SETTINGS = {"iss": "issuer", "sub": "subject", "aud": "audience", "exp": "lifetime"}


def reserved_claim_advice(name: str) -> str:
    """Why ``name`` cannot be set in ``claims`` and what to use instead."""
    dedicated = _DEDICATED_SETTINGS.get(name)
    return f"use the {dedicated!r} setting instead" if dedicated else "the provider sets it on every assertion"


def canonical_claims(claims: Mapping[str, Any] | None, *, field_name: str = "claims") -> str:
    """The canonical JSON of ``claims`` (sorted keys, no spaces); refuses reserved names and non-JSON values."""
    if not claims:
        return "{}"
    if not isinstance(claims, Mapping):
        raise JwtBearerConfigError(
            f"{field_name} must be a mapping of claim names to values, not {type(claims).__name__}", field=field_name
        )
    for name in claims:
        if not isinstance(name, str):
            raise JwtBearerConfigError(f"{field_name} names must be strings, got {name!r}", field=field_name)
    reserved = sorted(RESERVED_CLAIMS & set(claims))
    if reserved:
        name = reserved[0]
        raise JwtBearerConfigError(
            f"{field_name}.{name} is a registered claim that cannot be set here; {reserved_claim_advice(name)}",
            field=f"{field_name}.{name}",
        )
    try:
        return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad = next((k for k, v in claims.items() if not _is_json(v)), "?")
        raise JwtBearerConfigError(
            f"{field_name}.{bad} is not a JSON value ({type(exc).__name__}); claims must be strings, numbers, "
            "booleans, null, lists or objects of those",
            field=f"{field_name}.{bad}",
        ) from None


def _is_json(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True, eq=False, repr=False)
class TokenParameters:
    """Per-call choices that select a token; ``None``/empty means "the connection's".

    :param subject: the ``sub`` to act as.
    :param scope: the scope to request (space-separated, as sent on the wire; a list is joined).
    :param claims: extra assertion claims (JSON values; reserved names are refused).
    :param assertion: a JWT obtained elsewhere, sent instead of a minted one (a secret: never
        shown in ``repr``, never serialized).
    """

    subject: str | None = None
    scope: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    assertion: str | None = None
    _claims_json: str = field(init=False, default="{}")

    def __post_init__(self) -> None:
        if isinstance(self.scope, (list, tuple)) and all(isinstance(s, str) for s in self.scope):
            object.__setattr__(self, "scope", " ".join(self.scope))
        for name in ("subject", "scope", "assertion"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise JwtBearerConfigError(f"{name} must be a string, not {type(value).__name__}", field=name)
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)
        canonical = canonical_claims(self.claims)
        object.__setattr__(self, "_claims_json", canonical)
        # A private, read-only copy, read-only all the way down: the caller's dict may change
        # after the call, and nothing may change this value's claims once it is a cache key.
        object.__setattr__(self, "claims", _frozen(json.loads(canonical)))

    @classmethod
    def of(
        cls,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        assertion: str | None = None,
    ) -> TokenParameters:
        """The parameters of a call that passed them as loose keyword arguments."""
        return cls(subject=subject, scope=scope, claims=claims or {}, assertion=assertion)

    def _identity(self) -> tuple[str | None, str | None, str, str | None]:
        return (self.subject, self.scope, self._claims_json, self.assertion)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenParameters):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        parts = [f"subject={self.subject!r}", f"scope={self.scope!r}", f"claims={self._claims_json}"]
        if self.assertion is not None:
            parts.append("assertion=<hidden>")
        return f"TokenParameters({', '.join(parts)})"

    def claims_copy(self) -> dict[str, Any]:
        """A fresh, mutable copy of :attr:`claims` (plain dicts and lists), e.g. to build a payload."""
        copy: dict[str, Any] = json.loads(self._claims_json)
        return copy

    @property
    def claims_json(self) -> str:
        """The canonical JSON of :attr:`claims` (what cache keys are built from)."""
        return self._claims_json

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for a trigger's kwargs; ``None`` and empty fields are left out.

        A handed-in assertion is a secret and is refused here rather than written to the
        metadata database with the trigger.
        """
        if self.assertion is not None:
            raise JwtBearerConfigError(
                "a handed-in assertion cannot be carried by a trigger (it would be stored in the metadata "
                "database); fetch the token with the hook instead",
                field="assertion",
            )
        values: dict[str, Any] = {"subject": self.subject, "scope": self.scope}
        if self.claims:
            values["claims"] = json.loads(self._claims_json)
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TokenParameters:
        values = dict(values or {})
        unknown = sorted(set(values) - {"subject", "scope", "claims"})
        if unknown:
            raise JwtBearerConfigError(f"unknown token parameter(s): {', '.join(unknown)}", field="token")
        return cls.of(**values)


def _frozen(value: Any) -> Any:
    """JSON data made immutable: objects as read-only mappings, arrays as tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


#: The connection's own token: no per-call choice.
DEFAULT_TOKEN = TokenParameters()
