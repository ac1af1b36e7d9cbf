"""Fixtures of tests/chaos: the tests/cluster stack (same harness), with what fault injection needs.

The authorization server runs in the pytest process (``in-process``): the test switches its
failure modes (an outage of the token endpoint, jobs that stay unfinished) at chosen moments and
knows every access token it issued, so the log scan looks for them. The stack starts once per
module and is always stopped; its work directory is kept when a test failed or ``CLUSTER_KEEP=1``.

Sizes and durations come from the environment so that development runs stay small on a small
machine (see :mod:`tests.chaos.dags.jwt_chaos` and :mod:`tests.chaos.test_faults`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster
from tests.cluster.stack import Report, module_stack

DAGS = Path(__file__).resolve().parent / "dags"
#: The "chaos" section at the end of pytest's report (the outcome table).
REPORT = Report("chaos")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    REPORT.write(terminalreporter)


@pytest.fixture(scope="module")
def summary() -> list[str]:
    """Append a line to show in the "chaos" section of pytest's report, even without ``-s``."""
    return REPORT.lines


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from module_stack(request, REPORT, dags=sorted(DAGS.glob("*.py")), authserver_mode="in-process")
