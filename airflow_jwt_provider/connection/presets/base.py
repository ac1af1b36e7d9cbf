"""A vendor profile: what it fills in, how it derives ``aud``, and the rules it checks before any request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.presets.rules import (
    Algorithms,
    CheckedSettings,
    Keyless,
    Rule,
    Severity,
    Source,
)

#: Makes the error for (setting, problem): the parser's, which names the connection. (Typed as a plain
#: exception: the provider info reads the presets while Airflow itself imports, so no Airflow here.)
ErrorFactory = Callable[[str, str], Exception]


@dataclass(frozen=True)
class Preset:
    """A vendor profile.

    :param page: the vendor page the preset follows as a whole (each rule names its own).
    :param defaults: extra keys filled in when the connection leaves them unset.
    :param source_defaults: more defaults per ``assertion_source`` (the one the connection sets, else the
        preset's): an audience to ask the platform for, the file the platform writes. Per source, since a
        setting of one source is refused with another.
    :param audience: derives ``aud`` from (token URL, client id) when the connection sets no
        ``audience``; ``None`` means the token URL itself (RFC 7523).
    :param auth_url_from_host: derives the token URL from the connection's host (ServiceNow
        instances each have their own).
    :param subject_defaults_to_issuer: whether an assertion without a subject setting carries ``sub`` = ``iss``
        (RFC 7523 §3); false where the vendor documents no such ``sub`` (Google service accounts name one only
        for domain-wide delegation; DocuSign's application tokens must carry none).
    :param register: how the vendor learns the key, for the presets page's registration table.
    """

    name: str
    title: str
    page: Source
    rules: tuple[Rule, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    grant_type: GrantType = GrantType.JWT_BEARER
    scope_in_assertion: bool = False
    audience: Callable[[str, str | None], str] | None = None
    audience_rule: str = "the token endpoint URL (RFC 7523)"
    auth_url_from_host: Callable[[str], str] | None = None
    subject_defaults_to_issuer: bool = True
    register: str = ""

    @property
    def doc_url(self) -> str:
        return self.page.url

    def fill(self, extras: dict[str, Any]) -> None:
        """Add the defaults the connection's ``extras`` leave unset (those of its assertion source included)."""
        for key, value in self.defaults.items():
            extras.setdefault(key, value)
        source = extras.get("assertion_source")
        for key, value in self.source_defaults.get(str(source).strip().lower(), {}).items():
            extras.setdefault(key, value)

    def check(self, settings: CheckedSettings, error: ErrorFactory) -> tuple[str, ...]:
        """Raise, through ``error(field, problem)``, the first refusing rule ``settings`` breaks; the warnings.

        Each message names the vendor and the page the rule comes from.
        """
        warnings = []
        for rule in self.rules:
            problem = rule.problem(settings)
            if problem is None:
                continue
            text = f"{problem} ({self._where(rule)})"
            if rule.severity is Severity.REFUSE:
                raise error(rule.field, text)
            warnings.append(f"{rule.field} {text}")
        return tuple(warnings)

    def check_source(self, source: object, error: ErrorFactory) -> None:
        """The :class:`~.rules.Keyless` rules alone, on the parsed assertion source, before the key is looked for:
        a keyless flow left on ``sign`` is told to pick a platform source, not to add a key file."""
        view = SimpleNamespace(source=source)
        for rule in self.rules:
            if isinstance(rule, Keyless) and rule.severity is Severity.REFUSE:
                problem = rule.problem(cast(CheckedSettings, view))
                if problem is not None:
                    raise error(rule.field, f"{problem} ({self._where(rule)})")

    def key_problem(self, algorithm: str, key: str) -> tuple[str, str] | None:
        """``(field, problem)`` when the built key signs with an algorithm the vendor refuses, else ``None``."""
        for rule in self.rules:
            if isinstance(rule, Algorithms) and rule.severity is Severity.REFUSE:
                problem = rule.key_problem(algorithm, key)
                if problem is not None:
                    return rule.field, f"{problem} ({self._where(rule)})"
        return None

    def audience_for(self, token_url: str, client_id: str | None) -> str:
        return self.audience(token_url, client_id) if self.audience else token_url

    def _where(self, rule: Rule) -> str:
        source = rule.source
        if source is None:
            return f"preset {self.name!r}: no {self.title} page states this; a warning, not a refusal"
        return f"preset {self.name!r}: {source.title}, {source.url}"
