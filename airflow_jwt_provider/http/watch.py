"""What an event trigger watching an endpoint looks for: a condition on the answer, and the answer's identity.

The condition says when the watched resource is "ready"; the identity says which state of it the
answer shows, so that the trigger fires once per state. Both are parsed once, when the trigger is
built, into typed values, and evaluated on each answer with the sensor's own JSON paths
(:func:`~airflow_jwt_provider.http.polling.json_value`). Nothing here imports Airflow.

The condition (``condition``):

* ``None``: every new state fires;
* a dotted import path (or an importable function): ``check(response) -> bool``, imported once
  per trigger, in the triggerer (which runs no DAG file);
* ``{"path": "status", "equals": "ready"}``: the JSON value at ``path`` equals the given value;
* ``{"path": "export.url", "present": true}``: the value exists and is not ``null``
  (``false``: it does not).

The identity (:func:`answer_identity`): the ``ETag`` header when the answer has one, else the JSON
value at ``identity_path`` (a cursor, a version, ``items.*.id``: the list of item ids), else a
SHA-256 digest of the body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import requests

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.polling import MISSING, callable_path, json_value
from airflow_jwt_provider.http.response import response_body

#: An identity longer than this (a long list of ids) is replaced by its SHA-256 digest in events.
MAX_IDENTITY_LENGTH = 200
_DOTTED_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+")
_SHORTHAND_KEYS = ("path", "equals", "present")


class ConditionKind(Enum):
    """How a :class:`WatchCondition` judges an answer."""

    #: No condition: every new state of the resource fires.
    ALWAYS = "always"
    #: A function imported by dotted path: ``check(response) -> bool``.
    CALLABLE = "callable"
    #: The JSON value at ``path`` equals ``expected``.
    EQUALS = "equals"
    #: The JSON value at ``path`` exists and is not ``null`` (``expected`` true), or does not (false).
    PRESENT = "present"


@dataclass(frozen=True)
class WatchCondition:
    """When the watched resource counts as ready; see the module docstring for the forms it is written in."""

    kind: ConditionKind
    #: The JSON path (``EQUALS``, ``PRESENT``) or the dotted import path (``CALLABLE``).
    path: str | None = None
    expected: Any = None

    @classmethod
    def parse(cls, value: object) -> WatchCondition:
        """The condition ``value`` describes; :class:`JwtBearerConfigError` naming ``condition`` otherwise."""
        if value is None:
            return cls(ConditionKind.ALWAYS)
        if callable(value) and not isinstance(value, str):
            value = callable_path(value, argument="condition")
        if isinstance(value, str):
            if not _DOTTED_PATH.fullmatch(value):
                raise JwtBearerConfigError(
                    f"condition {value!r} is not a dotted import path (package.module.function); pass an "
                    'importable function, its dotted path, or a shorthand such as {"path": "status", "equals": '
                    '"ready"}',
                    field="condition",
                )
            return cls(ConditionKind.CALLABLE, value)
        if isinstance(value, Mapping):
            return cls._parse_shorthand(value)
        raise JwtBearerConfigError(
            f"condition must be a function, its dotted import path or a dict such as "
            f'{{"path": "status", "equals": "ready"}}, not {type(value).__name__}',
            field="condition",
        )

    @classmethod
    def _parse_shorthand(cls, value: Mapping[Any, Any]) -> WatchCondition:
        unknown = sorted(str(key) for key in value if key not in _SHORTHAND_KEYS)
        path = value.get("path")
        problem = None
        if unknown:
            problem = f"unknown key(s) {', '.join(unknown)}"
        elif not isinstance(path, str) or not path.strip("."):
            problem = "path must be a JSON path such as 'status' or 'export.state'"
        elif ("equals" in value) == ("present" in value):
            problem = "give exactly one of equals and present"
        elif "present" in value and not isinstance(value["present"], bool):
            problem = "present must be true or false"
        if problem is not None:
            raise JwtBearerConfigError(
                f"condition {dict(value)!r}: {problem}; write "
                '{"path": "status", "equals": "ready"} or {"path": "export.url", "present": true}',
                field="condition",
            )
        if "equals" in value:
            return cls(ConditionKind.EQUALS, str(path), value["equals"])
        return cls(ConditionKind.PRESENT, str(path), value["present"])

    def to_value(self) -> str | dict[str, Any] | None:
        """The form :meth:`parse` reads back (the trigger's serialized ``condition``)."""
        if self.kind is ConditionKind.ALWAYS:
            return None
        if self.kind is ConditionKind.CALLABLE:
            return self.path
        key = "equals" if self.kind is ConditionKind.EQUALS else "present"
        return {"path": self.path, key: self.expected}

    def holds(self, response: requests.Response, check: Callable[[requests.Response], Any] | None = None) -> bool:
        """Whether ``response`` satisfies the condition (``check``: the imported function of ``CALLABLE``)."""
        if self.kind is ConditionKind.ALWAYS:
            return True
        if self.kind is ConditionKind.CALLABLE:
            if check is None:
                raise RuntimeError("a CALLABLE condition is evaluated with its imported function")
            return bool(check(response))
        value = json_value(response_body(response), str(self.path))
        if self.kind is ConditionKind.EQUALS:
            return value is not MISSING and bool(value == self.expected)
        present = value is not MISSING and value is not None
        return present is bool(self.expected)


class IdentitySource(Enum):
    """Where an answer's identity comes from (:func:`answer_identity`)."""

    ETAG = "etag"
    JSON_PATH = "json_path"
    DIGEST = "digest"


@dataclass(frozen=True)
class AnswerIdentity:
    """Which state of the resource an answer shows: equal identities, same state."""

    value: str
    source: IdentitySource


def answer_identity(response: requests.Response, identity_path: str | None = None) -> AnswerIdentity:
    """The ``ETag`` header, else the JSON value at ``identity_path``, else ``sha256:<digest of the body>``.

    A value at ``identity_path`` that is not a string (a number, a list of ids) is written as compact,
    sorted JSON; one longer than :data:`MAX_IDENTITY_LENGTH` as the digest of that JSON.
    """
    etag = response.headers.get("ETag")
    if etag:
        return AnswerIdentity(etag, IdentitySource.ETAG)
    if identity_path:
        value = json_value(response_body(response), identity_path)
        if value is not MISSING and value is not None:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
            if len(text) > MAX_IDENTITY_LENGTH:
                text = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
            return AnswerIdentity(text, IdentitySource.JSON_PATH)
    return AnswerIdentity("sha256:" + hashlib.sha256(response.content or b"").hexdigest(), IdentitySource.DIGEST)
