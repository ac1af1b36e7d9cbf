"""Typed reading of a connection's extras: one method per kind of value, each error naming the key.

A connection saved from the Airflow 3 form stores every declared field, ``null`` when left
empty: ``None`` and ``""`` mean *unset*. Connections defined as URIs carry every extra as a
string, so numbers, booleans and objects are also accepted in their string form. Both the
settings parser and each signer's registration (which parses its own settings) read through
an :class:`ExtraReader`, so every value is checked the same way and every message has the same
shape: ``Connection 'x': <key> <problem>.``
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from airflow_jwt_provider.common.seconds import finite_seconds
from airflow_jwt_provider.exceptions import JwtBearerConfigError

#: Older Airflow forms prefixed extras with ``extra__<conn_type>__``; both spellings are accepted.
FORM_PREFIX = "extra__jwt_bearer__"

E = TypeVar("E", bound=Enum)


class ExtraReader:
    """The set extras of one connection, read as typed values.

    :param conn_id: named in every error.
    :param extra: the connection's extra (already a mapping); unset values are dropped.
    """

    def __init__(self, conn_id: str, extra: Mapping[str, Any]) -> None:
        self.conn_id = conn_id
        self.values: dict[str, Any] = {k.removeprefix(FORM_PREFIX): v for k, v in extra.items() if not is_unset(v)}
        #: What the connection itself sets (a preset's defaults may be added to ``values`` later).
        self.given = frozenset(self.values)

    def error(self, field_name: str, problem: str) -> JwtBearerConfigError:
        """``Connection 'x': <field> <problem>.`` as an error whose ``field`` is ``field_name``."""
        end = "" if problem.endswith((".", "?")) else "."
        return JwtBearerConfigError(f"Connection {self.conn_id!r}: {field_name} {problem}{end}", field=field_name)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def text(self, key: str) -> str | None:
        """A string (numbers converted, surrounding blanks removed); ``None`` when unset."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {type(value).__name__}")
        return clean(value)

    def required_text(self, key: str, problem: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.error(key, problem)
        return value

    def url(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not value.startswith(("https://", "http://")):
            raise self.error(key, f"must be an absolute http(s) URL, got {value!r}")
        return value

    def choice(self, key: str, allowed: Iterable[str]) -> str | None:
        """One of ``allowed`` (matched without regard to case, returned as spelled in ``allowed``)."""
        value = self.text(key)
        if value is None:
            return None
        allowed = tuple(allowed)
        chosen = {a.lower(): a for a in allowed}.get(value.lower())
        if chosen is None:
            raise self.error(key, f"is {value!r}; use one of: {', '.join(allowed)}")
        return chosen

    def member(self, key: str, kind: type[E]) -> E | None:
        """A member of the enumeration ``kind`` named by its value (without regard to case)."""
        value = self.choice(key, [str(member.value) for member in kind])
        return kind(value) if value is not None else None

    def seconds(self, key: str, default: float, *, maximum: float, whole: bool = False) -> float:
        """A number of seconds: finite, above zero, at most ``maximum`` (URI strings converted).

        JSON allows ``1e400`` (infinity once parsed) and URI strings ``"inf"``/``"nan"``; such a
        value is refused here, by name, rather than crashing a request much later.
        """
        value = self.values.get(key)
        if value is None:
            return default
        number = finite_seconds(value)
        kind = "a whole number of seconds" if whole else "a number of seconds"
        if number is None or (whole and number != int(number)):
            raise self.error(key, f"must be {kind}, got {value!r}")
        if not 0 < number <= maximum:
            raise self.error(key, f"must be above 0 and at most {maximum:g} seconds, got {value!r}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            raise self.error(key, f"must be true or false, got {value!r}")
        return parsed

    def json_value(self, key: str) -> Any:
        """The value, with a JSON object or list given as text parsed."""
        value = self.values.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                return json.loads(value)
            except ValueError:
                raise self.error(key, "is not valid JSON") from None
        return value

    def json_object(self, key: str) -> dict[str, Any]:
        value = self.json_value(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, 'must be a JSON object, e.g. {"name": "value"}')
        return dict(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.json_object(key)
        for name, item in value.items():
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise self.error(f"{key}.{name}", "must be a string or a number")
        return {name: str(item) for name, item in value.items()}

    def name_list(self, key: str) -> tuple[str, ...]:
        """One name or several: comma-separated, or a JSON list of strings; duplicates refused."""
        value = self.json_value(key)
        if value is None:
            return ()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, 'must be a name, several comma-separated, or a JSON list like ["new", "old"]')
        names = tuple(v.strip() for v in value if v.strip())
        if len(set(names)) != len(names):
            raise self.error(key, f"lists a key twice: {', '.join(names)}")
        return names


def is_unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def clean(value: str | None) -> str | None:
    """``value`` without surrounding blanks; ``None`` for nothing left."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_bool(value: object) -> bool | None:
    """``True``/``False`` from a boolean, ``0``/``1`` or their usual words; ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in ("true", "1", "yes", "on"):
            return True
        if folded in ("false", "0", "no", "off"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None
