"""How a sensor tells "not yet" from "done": on the worker when it pokes, in the triggerer when deferred.

The triggerer runs no DAG file, so a condition it evaluates is either data (``expected_json``)
or a function it can import by dotted path (:func:`callable_path` checks that at defer time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import requests

from airflow_jwt_provider.common.imports import import_callable
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.response import response_body, status_accepted


class PollOutcome(Enum):
    """What one poll found (:meth:`PollSpec.outcome`)."""

    #: Not yet: poll again after the interval.
    WAIT = "wait"
    #: The condition holds: the sensor succeeds with this answer.
    DONE = "done"
    #: A status that is neither waiting nor accepted: the wait ends and the task fails with the answer.
    FAIL = "fail"


@dataclass(frozen=True)
class PollSpec:
    """How the sensor tells "not yet" from "done": on the worker when it pokes, in the trigger when deferred.

    Each poll: a status in ``waiting_statuses`` means not yet; a status that is not accepted
    ends the wait (the worker then fails the task with the answer); an accepted answer is done
    when its JSON contains ``expected_json`` and ``response_check`` (a dotted import path,
    resolved in the triggerer) returns true.
    """

    interval: float
    waiting_statuses: tuple[int, ...] = (404,)
    accepted_statuses: tuple[int, ...] | None = None
    expected_json: Mapping[str, Any] | None = None
    response_check: str | None = None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["waiting_statuses"] = list(self.waiting_statuses)
        if self.accepted_statuses is not None:
            values["accepted_statuses"] = list(self.accepted_statuses)
        return values

    def outcome(
        self, response: requests.Response, check: Callable[[requests.Response], Any] | None = None
    ) -> PollOutcome:
        """Whether ``response`` means wait, done, or fail (a status that is neither waiting nor accepted)."""
        if response.status_code in self.waiting_statuses:
            return PollOutcome.WAIT
        if not status_accepted(response.status_code, self.accepted_statuses):
            return PollOutcome.FAIL
        if not json_contains(response_body(response), self.expected_json):
            return PollOutcome.WAIT
        if check is not None and not check(response):
            return PollOutcome.WAIT
        return PollOutcome.DONE

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PollSpec:
        values = dict(values)
        values["waiting_statuses"] = tuple(values.get("waiting_statuses") or ())
        if values.get("accepted_statuses") is not None:
            values["accepted_statuses"] = tuple(values["accepted_statuses"])
        return cls(**values)


#: What :func:`json_value` finds where the path leads nowhere.
MISSING: Any = object()


def json_value(body: object, path: str) -> Any:
    """The value at ``path`` in a JSON answer, or :data:`MISSING`.

    ``a.b`` reaches into objects; in a list, a number picks an item (``items.0.id``) and ``*``
    every item (``items.*.id``: the list of their ids, items without one left out).
    """
    value: object = body
    parts = str(path).split(".")
    for index, part in enumerate(parts):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part == "*":
            rest = ".".join(parts[index + 1 :])
            found = [json_value(item, rest) if rest else item for item in value]
            return [item for item in found if item is not MISSING]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def json_contains(body: object, expected: Mapping[str, Any] | None) -> bool:
    """Whether ``body[key] == value`` for every item of ``expected``; keys are :func:`json_value` paths."""
    if not expected:
        return True
    for path, wanted in expected.items():
        value = json_value(body, path)
        if value is MISSING or value != wanted:
            return False
    return True


def callable_path(func: Callable[..., Any] | str, argument: str = "response_check") -> str:
    """The dotted import path of ``func``, checked to import back to the same object.

    ``argument`` is the parameter errors name (``response_check`` of the sensor, ``condition`` of the
    event trigger).

    The triggerer runs no DAG file: a condition it evaluates must be importable from an
    installed module or the plugins folder. Lambdas, nested functions and functions defined
    in a DAG file are refused here, at defer time, with advice, rather than in the triggerer.
    """
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    problem = None
    if not module or "<" in qualname:
        problem = "lambdas and nested functions cannot be imported by the triggerer"
    elif module.startswith("unusual_prefix_") or module == "__main__":
        problem = "functions defined in a DAG file cannot be imported by the triggerer"
    else:
        try:
            found = import_callable(f"{module}.{qualname}")
        except (ImportError, AttributeError):
            found = None
        if found is not func:
            problem = f"{module}.{qualname} does not import back to this function"
    if problem:
        raise JwtBearerConfigError(
            f"{argument} {qualname or func!r} cannot run in the triggerer: {problem}. Define it in an "
            "installed module or the plugins folder and pass it (or its dotted path)"
            + (", or use expected_json, or deferrable=False" if argument == "response_check" else ""),
            field=argument,
        )
    return f"{module}.{qualname}"
