"""End-to-end fixtures: real ``dag.test()`` runs (SQLite) against the real local authorization server.

``dags/`` and ``tests/dags/`` are linked into the ``DAGS_FOLDER`` that ``tests/conftest.py``
configured (``dag.test()`` only runs DAGs of a configured bundle). Connections are
``AIRFLOW_CONN_*`` environment variables: ``dag.test()`` runs tasks and triggers in this
process, so they see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_ID, DAGS_FOLDER, REPO_ROOT, connection_extra, register
from tests.e2e.results import DagRunResult, collect

DAG_SOURCES = (REPO_ROOT / "dags", REPO_ROOT / "tests" / "dags")
#: A compact JWS (an assertion, or any JWT): three base64url parts, the first two JSON objects.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    """The bundle folder, holding links to every DAG file of ``dags/`` and ``tests/dags/``."""
    for source in DAG_SOURCES:
        for path in sorted(source.glob("*.py")):
            link = DAGS_FOLDER / path.name
            if not link.exists():
                link.symlink_to(path)
    return DAGS_FOLDER


@pytest.fixture
def jwt_connection(
    auth_server: Any, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> Callable[..., dict[str, Any]]:
    """Define a ``jwt_bearer`` connection signing with the default keystore against the server.

    Returns the definition, so that a test can look for its secrets in what the run left.
    """

    def define(conn_id: str = "jwt_bearer_default", *, password: str | None = None, **extra: Any) -> dict[str, Any]:
        store = keystores["default"]
        register(auth_server, store, client_secret=password)
        fields: dict[str, Any] = {
            "conn_type": "jwt_bearer",
            "host": auth_server.api_url,
            "login": CLIENT_ID,
            "extra": connection_extra(store, auth_server, **extra),
        }
        if password is not None:
            fields["password"] = password
        set_connection(conn_id, **fields)
        return fields

    return define


@pytest.fixture
def run_dag(airflow_db: Path, dags_folder: Path, capfd: pytest.CaptureFixture[str]) -> Callable[..., DagRunResult]:
    """Parse the bundle, optionally adjust the DAG, run it with ``dag.test()``, collect what it left.

    ``prepare(dag)`` may change task attributes before the run: ``dag.test()`` executes the
    very operator objects of that DAG (used to revoke tokens in the middle of a run).
    """

    def run(dag_id: str, prepare: Callable[[Any], None] | None = None) -> DagRunResult:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(dags_folder))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags.get(dag_id)
        assert dag is not None, f"{dag_id} not found in {dags_folder}"
        if prepare is not None:
            prepare(dag)
        capfd.readouterr()  # only this run's output
        dag_run = dag.test()
        captured = capfd.readouterr()
        result = collect(dag_run)
        result.output = captured.out + captured.err
        return result

    return run


def dump(value: Any) -> str:
    """Everything in ``value`` (nested containers included) as one searchable string."""
    return repr(value)


@pytest.fixture
def no_secret_in() -> Callable[[str, list[str]], None]:
    """``check(text, secrets)``: none of ``secrets``, and nothing shaped like a JWT, is in ``text``."""

    def check(text: str, secrets: list[str]) -> None:
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:4]}...) leaked"
        found = JWT_PATTERN.search(text)
        assert found is None, f"a JWT leaked: {found.group(0)[:12]}..."

    return check
