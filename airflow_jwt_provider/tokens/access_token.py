"""The access token the endpoint returns, with google-auth-like ``valid`` / ``expired`` semantics."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_jwt_provider.signing.dpop import DPoPKey

#: A token endpoint may omit ``expires_in`` (Salesforce does). Such a token is treated as
#: short-lived: it is reused for this long (the ``default_token_lifetime`` setting), and a
#: 401 before then triggers one refresh.
ASSUMED_LIFETIME = timedelta(minutes=5)
#: Refresh ahead of expiry when less than max(30 s, 10 % of the lifetime) remains, but never
#: earlier than half-way: a 20 s token is still reused for 10 s.
MIN_REFRESH_MARGIN = timedelta(seconds=30)
REFRESH_MARGIN_RATIO = 0.10


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, repr=False)
class AccessToken:
    """An OAuth 2.0 access token (RFC 6749 §5.1).

    ``str()`` and ``repr()`` never show the token itself: a token printed by mistake in
    a DAG, or put in an f-string, reveals only its type and expiry.

    :param expires_at: when the server says it expires; ``None`` if it did not say
        (then ``assumed_lifetime`` applies).
    :param assumed_lifetime: how long a token without ``expires_at`` is used.
    :param extra: other fields of the answer (e.g. Salesforce's ``instance_url``).
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: datetime | None = None
    scope: str | None = None
    issued_at: datetime = field(default_factory=_utcnow)
    extra: Mapping[str, Any] = field(default_factory=dict)
    assumed_lifetime: timedelta = ASSUMED_LIFETIME
    #: RFC 8693: what a token exchange issued (``urn:ietf:params:oauth:token-type:access_token``…).
    issued_token_type: str | None = None
    #: RFC 9449: the key a DPoP-bound token is bound to (its proofs are signed with it); never shown.
    dpop_key: DPoPKey | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        expiry = self.expires_at.isoformat() if self.expires_at else "unknown"
        return f"AccessToken(token_type={self.token_type!r}, expires_at={expiry}, scope={self.scope!r})"

    __str__ = __repr__

    @property
    def lifetime(self) -> timedelta:
        """How long the token lives from issue (assumed when the server did not say)."""
        if self.expires_at is None:
            return self.assumed_lifetime
        return self.expires_at - self.issued_at

    @property
    def refresh_at(self) -> datetime:
        """When to fetch a new one: before expiry by max(30 s, 10 % of the lifetime), at most half of it."""
        margin = min(max(MIN_REFRESH_MARGIN, self.lifetime * REFRESH_MARGIN_RATIO), self.lifetime / 2)
        return self.issued_at + self.lifetime - margin

    @property
    def expired(self) -> bool:
        """True once the token is past its (known or assumed) expiry."""
        return _utcnow() >= self.issued_at + self.lifetime

    @property
    def valid(self) -> bool:
        """True while the token can be used without refreshing first."""
        return _utcnow() < self.refresh_at

    @property
    def dpop_bound(self) -> bool:
        """Issued with ``token_type`` DPoP (RFC 9449 §5): usable only with proofs of its key."""
        return self.token_type.lower() == "dpop"

    def with_dpop_key(self, key: DPoPKey) -> AccessToken:
        return dataclasses.replace(self, dpop_key=key)

    @property
    def usable_for_api(self) -> bool:
        """Whether it is an access token (RFC 8693's ``N_A``: a token that is not, e.g. an exchanged ID token)."""
        return self.token_type.lower() != "n_a"

    @property
    def authorization_header(self) -> str:
        """The ``Authorization`` header value (RFC 6750 §2.1 scheme, whatever case the server used).

        Refused for a token that is not an access token (RFC 8693 ``N_A``): the API would answer 401,
        and the token (an ID token, a JWT for another system) was meant to be handed elsewhere.
        """
        if not self.usable_for_api:
            from airflow_jwt_provider.exceptions import JwtBearerConfigError

            raise JwtBearerConfigError(
                f"The token endpoint issued a {self.issued_token_type or 'token'} with token_type N_A: not an "
                "access token (RFC 8693 §2.2.1), so it cannot authorize API calls. Set requested_token_type to "
                "urn:ietf:params:oauth:token-type:access_token, or hand hook.get_token().access_token to the "
                "system it is meant for",
                field="requested_token_type",
            )
        if self.dpop_bound and self.dpop_key is None:
            raise ValueError("a DPoP-bound token is sent with a proof of its key (request_headers), never alone")
        scheme = {"bearer": "Bearer", "dpop": "DPoP"}.get(self.token_type.lower(), self.token_type)
        return f"{scheme} {self.access_token}"
