"""Run the real ``airflow jwt-bearer …`` command in a child process, as a user would.

The child inherits this process's environment: the test ``AIRFLOW_HOME``, the connections
tests define as ``AIRFLOW_CONN_…`` variables, ``SOFTHSM2_CONF`` of the test token, the aws
connection of the KMS emulator. The local authorization server runs in this process on
127.0.0.1 and answers the child's token requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

CLI_TIMEOUT_S = 180


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def jwt_bearer_cli() -> Callable[..., CliResult]:
    """``jwt_bearer_cli("check", "--conn-id", "x", env={...})``: ``airflow jwt-bearer check --conn-id x``."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "airflow", "jwt-bearer", *args],
            # Unit-test mode makes Airflow announce its test configuration on stdout at start-up, before
            # the command runs; a deployment is not in that mode.
            env={**os.environ, "AIRFLOW__CORE__UNIT_TEST_MODE": "False", **(env or {})},
            stdin=subprocess.DEVNULL,  # no terminal: a password prompt cannot happen, only the env var
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run
