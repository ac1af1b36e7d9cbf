"""Fixtures of tests/cluster: the docker compose stack started as processes (see harness.py).

The stack starts once per test module and is always stopped, failures included. Its work
directory (component logs, task logs, the PostgreSQL cluster) is removed afterwards unless a test
of the module failed or ``CLUSTER_KEEP=1``; its path is printed either way.

``CLUSTER_AUTHSERVER`` chooses how the compose ``authserver`` service runs: ``process`` (the
default: ``python -m devserver`` as the compose command, records read from its ``/_devserver/...``
endpoints) or ``in-process`` (the devserver in the pytest process: records read directly, and the
issued access tokens known, so the log scan looks for them too).

A test module sets ``DAG_FILES`` (paths) to link other DAG files than ``dags/*.py`` of this folder,
``CONNECTION_EXTRA`` (a dict) to add keys to the extra of the compose file's
``jwt_bearer_default`` connection, ``EXTRA_CONNECTIONS`` (connection id → extra keys) to define
more connections like it, and ``EXTRA_ENV`` to add to the environment of every Airflow service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster
from tests.cluster.stack import Report, module_stack

DAGS = Path(__file__).resolve().parent / "dags"
AUTHSERVER_MODE = os.environ.get("CLUSTER_AUTHSERVER", "process")
#: The "cluster" section at the end of pytest's report (timings, token counts).
REPORT = Report("cluster")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    REPORT.write(terminalreporter)


@pytest.fixture(scope="module")
def summary() -> list[str]:
    """Append a line to show in the "cluster" section of pytest's report, even without ``-s``."""
    return REPORT.lines


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    dags = list(getattr(request.module, "DAG_FILES", sorted(DAGS.glob("*.py"))))
    yield from module_stack(request, REPORT, dags=dags, authserver_mode=AUTHSERVER_MODE)
