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
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster

DAGS = Path(__file__).resolve().parent / "dags"
AUTHSERVER_MODE = os.environ.get("CLUSTER_AUTHSERVER", "process")
#: Lines for the "cluster" section at the end of pytest's report (timings, token counts).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("cluster")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def summary() -> list[str]:
    """Append a line to show in the "cluster" section of pytest's report, even without ``-s``."""
    return SUMMARY


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="jwt-cluster-"))
    failures_before = request.session.testsfailed
    stack = Cluster(
        workdir,
        extra_dags=list(getattr(request.module, "DAG_FILES", sorted(DAGS.glob("*.py")))),
        connection_extra=getattr(request.module, "CONNECTION_EXTRA", {}),
        extra_connections=getattr(request.module, "EXTRA_CONNECTIONS", {}),
        extra_env=getattr(request.module, "EXTRA_ENV", {}),
        authserver_mode=AUTHSERVER_MODE,
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
