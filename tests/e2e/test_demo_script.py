"""The one-command demo: ``scripts/demo`` (wrapper) and ``scripts/demo.py`` in a subprocess, as a user runs them.

``.ci/run`` runs ``./scripts/demo`` after the tests, on a machine with Java; the test here covers
the keystore fallback for machines without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

DEMO = REPO_ROOT / "scripts" / "demo"
DEMO_PY = REPO_ROOT / "scripts" / "demo.py"


def clean_env(**overrides: str) -> dict[str, str]:
    """The user's environment: none of the test session's Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update(overrides)
    return env


def test_demo_runs_the_demo_dag_and_reports_without_java(tmp_path: Path) -> None:
    """CI runs ``./scripts/demo`` itself (with Java); this runs it where keytool is not on PATH."""
    env = clean_env(PATH=str(Path(sys.executable).parent))  # python only: no keytool
    result = subprocess.run(
        [sys.executable, str(DEMO_PY)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "(pkcs12, by cryptography)" in output
    assert "DAG jwt_bearer_demo: success" in output
    for task in ("whoami", "list_items", "post_result", "wait_for_job", "list_items_deferred", "whoami_as[2]"):
        assert f"  {task} " in output
    assert "Token requests: 3 (3 tokens issued:" in output
    assert "Items fetched: 23 in 3 pages" in output
    for subject in ("alice", "bob", "carol"):
        assert f"/api/whoami                    {subject}" in output
    assert output.rstrip().endswith("OK")


def test_wrapper_reuses_a_ready_virtualenv_and_passes_arguments() -> None:
    assert os.access(DEMO, os.X_OK), "scripts/demo must be executable"
    result = subprocess.run(
        [str(DEMO), "--help"],
        capture_output=True,
        text=True,
        env=clean_env(DEMO_VENV=sys.prefix),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Setting up" not in result.stdout  # nothing installed
    assert "--keep" in result.stdout
