"""The CLI page's ``airflow jwt-bearer check`` example, printed by the command's own code at build time.

Why generated: an output pasted into a page shows what the command printed once, with the steps and
wording of that day. This one is the diagnosis the command runs (``cli.diagnosis.diagnose``), printed
line by line the way the command prints it (``step_lines``, ``verdict``), on a connection made for the
page: a PKCS#12 key written to a temporary directory, its certificate 20 days from expiry (so the
certificate step shows the WARN a real check gives weeks before a renewal), registered with the local
authorization server of ``devserver/`` on 127.0.0.1, whose Authlib grant verifies the assertion and
issues the token. Nothing leaves the machine; the temporary paths and the loopback URLs are shown as
example values.

The page's text says which step passes, warns or is skipped; :func:`unexpected_steps` compares the run
with :data:`EXPECTED`, and the build fails when they differ (a step renamed, added or dropped, a
connection that no longer gets a token), as ``tests/docs/test_cli_example.py`` does.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .keys import EXAMPLE_API, EXAMPLE_ISSUER, STORE_PASSWORD, as_example, key_and_certificate, pkcs12

CONN_ID = "etl_api"
CLIENT_ID = "airflow-etl"
#: Each step of the diagnosis and the status the page's example shows for it, in order.
EXPECTED = {
    "settings": "OK",
    "preset rules": "SKIP",
    "key": "OK",
    "certificate": "WARN",
    "assertion": "OK",
    "token": "OK",
    "binding": "SKIP",
    "clock": "OK",
}


@dataclass(frozen=True)
class CheckRun:
    """What ``check`` found: each step's name and status, and the lines it printed (example values)."""

    steps: list[tuple[str, str]]
    lines: list[str]


def run_check(**extra: Any) -> CheckRun:
    """Diagnose the example connection (``extra`` overrides its settings) against a local server."""
    from airflow.sdk import Connection
    from cryptography.hazmat.primitives.serialization import Encoding

    from airflow_jwt_provider.cli.diagnosis import diagnose, step_lines, verdict
    from devserver import LocalAuthorizationServer

    with tempfile.TemporaryDirectory(prefix="jwt-docs-check-") as directory, LocalAuthorizationServer() as server:
        key, certificate = key_and_certificate(kind="rsa", days_left=20, name=CLIENT_ID)
        store = pkcs12(Path(directory) / "etl.p12", (key, certificate))
        server.register_client(CLIENT_ID, certificate_pem=certificate.public_bytes(Encoding.PEM))
        settings = {"auth_url": server.token_url, "key_file": str(store), "keystore_password": STORE_PASSWORD}
        settings.update(subject="etl-reports", scope="reports.read", **extra)
        conn = Connection(
            conn_id=CONN_ID, conn_type="jwt_bearer", login=CLIENT_ID, host=server.api_url, extra=json.dumps(settings)
        )
        steps = list(diagnose(conn))
        printed = [line for step in steps for line in step_lines(step)]
        printed.append(verdict(CONN_ID, any(step.failed for step in steps)))
        servers = [(server.api_url, EXAMPLE_API), (server.url, EXAMPLE_ISSUER)]
        lines = [as_example(line, directory, servers) for line in printed]
    return CheckRun([(step.name, step.status.value) for step in steps], lines)


def unexpected_steps(run: CheckRun) -> list[str]:
    """How ``run`` differs from what the page says about the example (none: the page is right)."""
    found = dict(run.steps)
    wrong = [
        f"{name}: {found.get(name, 'missing')}, not {status}"
        for name, status in EXPECTED.items()
        if found.get(name) != status
    ]
    wrong += [f"{name}: a step the page does not describe" for name in found if name not in EXPECTED]
    if run.lines[-1] != f"Connection {CONN_ID!r}: ready":
        wrong.append(f"the check ends with {run.lines[-1]!r}")
    return wrong


def check_example() -> str:
    """The example as the page shows it: the command line, then its output; a run the page misdescribes fails."""
    run = run_check()
    wrong = unexpected_steps(run)
    if wrong:
        raise RuntimeError("the check example no longer matches its page: " + "; ".join(wrong))
    return "\n".join(["```text", f"$ airflow jwt-bearer check --conn-id {CONN_ID}", *run.lines, "```", ""])
