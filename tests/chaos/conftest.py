"""Fixtures of tests/chaos: the tests/cluster stack (same harness), with what fault injection needs.

The authorization server runs in the pytest process (``in-process``): the test switches its
failure modes (an outage of the token endpoint, jobs that stay unfinished) at chosen moments and
knows every access token it issued, so the log scan looks for them. The stack starts once per
module and is always stopped; its work directory is kept when a test failed or ``CLUSTER_KEEP=1``.

Sizes and durations come from the environment so that development runs stay small on a small
machine (see :mod:`tests.chaos.dags.jwt_chaos` and :mod:`tests.chaos.test_faults`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster

DAGS = Path(__file__).resolve().parent / "dags"
#: Lines for the "chaos" section at the end of pytest's report (the outcome table).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("chaos")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def summary() -> list[str]:
    """Append a line to show in the "chaos" section of pytest's report, even without ``-s``."""
    return SUMMARY


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="jwt-chaos-"))
    failures_before = request.session.testsfailed
    stack = Cluster(
        workdir,
        extra_dags=sorted(DAGS.glob("*.py")),
        connection_extra=getattr(request.module, "CONNECTION_EXTRA", {}),
        extra_env=getattr(request.module, "EXTRA_ENV", {}),
        worker_env=getattr(request.module, "WORKER_ENV", {}),
        authserver_mode="in-process",
    )
    started = time.monotonic()
    try:
        try:
            stack.start()
        except Exception as exc:
            pytest.fail(f"the cluster did not start: {exc!r}\n\n{stack.log_tails()}", pytrace=False)
        stack.timings["start (total)"] = time.monotonic() - started
        yield stack
    finally:
        stopping = time.monotonic()
        stack.stop()
        stack.timings["stop"] = time.monotonic() - stopping
        SUMMARY.append("timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in stack.timings.items()))
        if request.session.testsfailed == failures_before and os.environ.get("CLUSTER_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            SUMMARY.append(f"work directory kept (component logs in logs/): {workdir}")
