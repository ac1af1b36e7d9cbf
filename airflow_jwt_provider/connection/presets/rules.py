"""What a preset checks: one :class:`Rule` per vendor requirement, each with the vendor page it comes from.

A rule that a vendor page states is a refusal: the connection is refused before any request,
naming the setting, the vendor's limit and the page. A rule that no vendor page backs (found in
third-party copies only, or a recommendation) is a warning: the task log and ``airflow jwt-bearer
check`` say it, and the request goes ahead. A rule without a source cannot refuse.

Rules read the settings through :class:`CheckedSettings`; the algorithm rule also judges the key
once it is built (:meth:`Algorithms.key_problem`), since the algorithm follows from the key when the
connection names none.

This module (and every preset) imports nothing of Airflow: the provider info lists the presets
while Airflow itself is being imported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit

#: When the vendor pages below were read.
READ_ON = "2026-12-04"


@dataclass(frozen=True)
class Source:
    """A vendor page and the sentence a rule rests on."""

    title: str
    url: str
    quote: str = ""

    def quoting(self, quote: str) -> Source:
        """The same page, for a rule that rests on another of its sentences."""
        return Source(self.title, self.url, quote)


class Severity(Enum):
    REFUSE = "refuse"
    WARN = "warn"


class CheckedSettings(Protocol):
    """The settings rules read (a :class:`~airflow_jwt_provider.connection.settings.JwtBearerSettings` has them)."""

    @property
    def lifetime(self) -> int: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def scope(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def client_secret(self) -> str | None: ...
    @property
    def claims(self) -> Mapping[str, Any]: ...
    @property
    def algorithm(self) -> str | None: ...
    @property
    def audience(self) -> str | tuple[str, ...] | None: ...
    @property
    def auth_url(self) -> str | None: ...


@dataclass(frozen=True)
class Rule:
    """One requirement of a vendor; subclasses say what they check in :meth:`problem`.

    :param id: stable name (``box.lifetime``): tests and the presets page's rules tables refer to it.
    :param field: the setting a broken rule names.
    :param source: the vendor page; ``None`` when none was found (the rule can then only warn).
    :param severity: refuse (the vendor page says so) or warn (a recommendation, or no vendor page).
    """

    id: str
    field: str
    source: Source | None
    severity: Severity = Severity.REFUSE

    def __post_init__(self) -> None:
        if self.source is None and self.severity is Severity.REFUSE:
            raise ValueError(f"rule {self.id}: a rule that no vendor page backs may only warn")

    @property
    def describe(self) -> str:
        """What the rule requires, for the presets page's rules tables."""
        raise NotImplementedError

    def problem(self, settings: CheckedSettings) -> str | None:
        """What is wrong with ``settings`` (the text after the field name), or ``None``."""
        raise NotImplementedError


@dataclass(frozen=True)
class MaxLifetime(Rule):
    seconds: int = 0

    @property
    def describe(self) -> str:
        return f"assertion lifetime at most {self.seconds} s"

    def problem(self, settings: CheckedSettings) -> str | None:
        if settings.lifetime <= self.seconds:
            return None
        return f"is {settings.lifetime} s but the vendor accepts at most {self.seconds} s; lower it"


@dataclass(frozen=True)
class Required(Rule):
    """A setting that must be set; ``what`` says what to put there."""

    what: str = ""

    @property
    def describe(self) -> str:
        return f"`{self.field}` set: {self.what}"

    def problem(self, settings: CheckedSettings) -> str | None:
        value = _setting(settings, self.field)
        return None if value else f"is required: set it to {self.what}"


@dataclass(frozen=True)
class Absent(Rule):
    """A setting the vendor wants left out."""

    why: str = ""

    @property
    def describe(self) -> str:
        return f"no `{self.field}`: {self.why}"

    def problem(self, settings: CheckedSettings) -> str | None:
        return f"must be empty: {self.why}" if _setting(settings, self.field) else None


@dataclass(frozen=True)
class ClaimIn(Rule):
    """A claim that must be present with one of ``allowed``."""

    allowed: tuple[str, ...] = ()

    @property
    def claim(self) -> str:
        return self.field.removeprefix("claims.")

    @property
    def describe(self) -> str:
        return f"claim `{self.claim}` one of {', '.join(self.allowed)}"

    def problem(self, settings: CheckedSettings) -> str | None:
        value = settings.claims.get(self.claim)
        if value is None:
            return f"is required: add it to the claims object, one of {', '.join(self.allowed)}"
        if value not in self.allowed:
            return f"is {value!r} but the vendor accepts {', '.join(self.allowed)}"
        return None


@dataclass(frozen=True)
class ScopeContains(Rule):
    """A scope the vendor needs among the requested ones."""

    scope_value: str = ""

    @property
    def describe(self) -> str:
        return f"scope includes `{self.scope_value}`"

    def problem(self, settings: CheckedSettings) -> str | None:
        scopes = (settings.scope or "").split()
        if not scopes or any(self.scope_value in s for s in scopes):
            return None  # an empty scope is the Required rule's business
        return f"is {settings.scope!r} and does not include {self.scope_value!r}"


@dataclass(frozen=True)
class ScopeSuffix(Rule):
    """Every requested scope ends with ``suffix``."""

    suffix: str = ""

    @property
    def describe(self) -> str:
        return f"each scope ends with `{self.suffix}`"

    def problem(self, settings: CheckedSettings) -> str | None:
        odd = [s for s in (settings.scope or "").split() if not s.endswith(self.suffix)]
        return f"has {', '.join(repr(s) for s in odd)}, not ending with {self.suffix!r}" if odd else None


@dataclass(frozen=True)
class UrlShape(Rule):
    """A URL setting whose shape the vendor documents (``pattern`` is a regular expression)."""

    pattern: str = ""
    shape: str = ""

    @property
    def describe(self) -> str:
        return f"`{self.field}` is {self.shape}"

    def problem(self, settings: CheckedSettings) -> str | None:
        value = _setting(settings, self.field)
        values = value if isinstance(value, tuple) else (value,) if value else ()
        odd = [v for v in values if not re.fullmatch(self.pattern, str(v))]
        return f"is {odd[0]!r}, not {self.shape}" if odd else None


@dataclass(frozen=True)
class Algorithms(Rule):
    """The JWS algorithms the vendor accepts.

    Checked on the ``algorithm`` setting when the connection names one, and on the key once it is
    built (:meth:`key_problem`), since an EC or Ed25519 key signs with its own algorithm.
    """

    allowed: tuple[str, ...] = ()

    @property
    def describe(self) -> str:
        return f"signed with {', '.join(self.allowed)}"

    def problem(self, settings: CheckedSettings) -> str | None:
        if settings.algorithm is None or settings.algorithm in self.allowed:
            return None
        return f"is {settings.algorithm}, but the vendor accepts {', '.join(self.allowed)}"

    def key_problem(self, algorithm: str, key: str) -> str | None:
        """The problem with signing with ``algorithm`` and a key described as ``key`` (``EC-secp256r1``)."""
        if algorithm in self.allowed:
            return None
        if all(a[:2] in ("RS", "PS") for a in self.allowed) and not key.startswith("RSA"):
            return (
                f"the key is {key}, which signs {algorithm}, but the vendor accepts {', '.join(self.allowed)} "
                "(an RSA key): use an RSA key of 2048 bits or more"
            )
        return f"the key is {key} and signs {algorithm}, but the vendor accepts {', '.join(self.allowed)}"


@dataclass(frozen=True)
class Guaranteed(Rule):
    """A vendor rule every assertion meets by construction (tests check the minted assertion)."""

    requirement: str = ""

    @property
    def describe(self) -> str:
        return f"{self.requirement} (every assertion meets it)"

    def problem(self, settings: CheckedSettings) -> str | None:
        return None


#: Settings whose parsed value lives elsewhere than an attribute of their own name: the path to it.
_PATHS: Mapping[str, tuple[str, ...]] = {
    "login": ("client_id",),
    "password": ("client_secret",),
    "assertion_source": ("source", "source"),
    "assertion_audience": ("source", "audience"),
    "exchange_audience": ("token_exchange", "audiences"),
    "subject_token_type": ("token_exchange", "subject_token_type"),
    "requested_token_type": ("token_exchange", "requested_token_type"),
    "service_account_impersonation_url": ("token_exchange", "impersonation_url"),
}


def _setting(settings: CheckedSettings, name: str) -> Any:
    """A setting by the name users know it by (``login`` is the client id, ``exchange_audience`` the exchange's
    audiences...); ``None`` when the group it belongs to is absent (no token exchange) or the source has no such
    setting."""
    value: Any = settings
    for attribute in _PATHS.get(name, (name,)):
        value = getattr(value, attribute, None)
        if value is None:
            return None
    return value


@dataclass(frozen=True)
class OneOf(Rule):
    """A setting that, when set (or filled by the preset), must be one of ``allowed``."""

    allowed: tuple[str, ...] = ()

    @property
    def describe(self) -> str:
        return f"`{self.field}` one of {', '.join(f'`{v}`' for v in self.allowed)}"

    def problem(self, settings: CheckedSettings) -> str | None:
        value = _setting(settings, self.field)
        values = value if isinstance(value, tuple) else (value,) if value else ()
        odd = [v for v in values if v not in self.allowed]
        if not odd:
            return None
        return f"is {', '.join(repr(v) for v in odd)} but the vendor expects {', '.join(self.allowed)}"


@dataclass(frozen=True)
class Keyless(Rule):
    """The flow has no key of the connection: the JWT is the platform's (``assertion_source`` other than sign)."""

    instead: str = ""

    @property
    def describe(self) -> str:
        return "`assertion_source` a platform's JWT (not `sign`)"

    def problem(self, settings: CheckedSettings) -> str | None:
        source = _setting(settings, "assertion_source")
        if source != "sign":
            return None
        return (
            "is sign (the default), but this flow takes the platform's JWT, not a key of the connection: set it to "
            f"file (a token file such as a Kubernetes projected token), github_actions, gcp_metadata, aws_sts or "
            f"callable; or {self.instead}"
        )


def origin(url: str) -> str:
    """``https://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
