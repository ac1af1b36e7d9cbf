"""What the conftests of tests/cluster and tests/chaos share: the module-scoped stack and the report section.

Each suite starts the same stack (:class:`~tests.cluster.harness.Cluster`) once per test module,
always stops it, keeps its work directory when a test of the module failed or ``CLUSTER_KEEP=1``,
and writes its timings and findings into its own section at the end of pytest's report.
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


class Report:
    """Lines for one section at the end of pytest's report (shown without ``-s``)."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.lines: list[str] = []

    def write(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section(self.section)
            for line in self.lines:
                terminalreporter.write_line(line)


def module_stack(
    request: pytest.FixtureRequest, report: Report, *, dags: list[Path], authserver_mode: str
) -> Iterator[Cluster]:
    """The stack for ``request.module``, with its ``CONNECTION_EXTRA``, ``EXTRA_CONNECTIONS``, ``*_ENV``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"jwt-{report.section}-"))
    failures_before = request.session.testsfailed
    stack = Cluster(
        workdir,
        extra_dags=dags,
        connection_extra=getattr(request.module, "CONNECTION_EXTRA", {}),
        extra_connections=getattr(request.module, "EXTRA_CONNECTIONS", {}),
        extra_env=getattr(request.module, "EXTRA_ENV", {}),
        worker_env=getattr(request.module, "WORKER_ENV", {}),
        authserver_mode=authserver_mode,
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
        report.lines.append(
            "timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in stack.timings.items())
        )
        if request.session.testsfailed == failures_before and os.environ.get("CLUSTER_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            report.lines.append(f"work directory kept (component logs in logs/): {workdir}")
