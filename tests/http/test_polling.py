"""PollSpec: the sensor's condition, and callables the triggerer can import."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.http.polling import PollOutcome, PollSpec, callable_path, import_callable, json_contains
from airflow_jwt_provider.http.wire import response_from_wire
from tests.e2e.checks import job_is_done
from tests.http.test_wire import wire


def test_json_contains_and_poll_outcome() -> None:
    body = {"state": "done", "result": {"code": 0}}
    assert json_contains(body, {"state": "done", "result.code": 0})
    assert not json_contains(body, {"result.missing": None})
    assert not json_contains("text", {"state": "done"})
    spec = PollSpec(interval=1, expected_json={"state": "done"})
    assert spec.outcome(response_from_wire(wire())) is PollOutcome.DONE
    assert spec.outcome(response_from_wire(wire(body=b'{"state": "running"}'))) is PollOutcome.WAIT
    assert spec.outcome(response_from_wire(wire(404))) is PollOutcome.WAIT
    assert spec.outcome(response_from_wire(wire(500))) is PollOutcome.FAIL
    assert spec.outcome(response_from_wire(wire()), lambda response: False) is PollOutcome.WAIT
    assert PollSpec.from_dict(spec.to_dict()) == spec


def test_callable_path_accepts_importable_functions_only() -> None:
    assert callable_path(job_is_done) == "tests.e2e.checks.job_is_done"
    assert callable_path("any.dotted.path") == "any.dotted.path"

    def nested(response: object) -> bool:
        return True

    for func in (nested, lambda response: True):
        with pytest.raises(JwtBearerConfigError, match="cannot run in the triggerer"):
            callable_path(func)


def test_import_callable_refuses_what_cannot_be_called() -> None:
    assert import_callable("tests.e2e.checks.job_is_done") is job_is_done
    with pytest.raises(ImportError, match=r"'tests.e2e.checks.__doc__' is a str, not a function"):
        import_callable("tests.e2e.checks.__doc__")
    with pytest.raises(ImportError, match=r"'tests.e2e.checks.requests' is a module, not a function"):
        import_callable("tests.e2e.checks.requests")
