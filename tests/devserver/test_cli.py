"""devserver.cli: `python -m devserver` serves the way docker-compose and the demo run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import requests

from devserver.server import JWT_BEARER_GRANT_TYPE
from tests.devserver.helpers import REPO_ROOT, SigningKey, refused


def test_cli_serves_until_sigterm(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(keys["rsa"].store.certificate_pem)
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devserver",
            "--port",
            "0",
            "--client-id",
            "cli-client",
            "--certificate",
            str(cert_file),
            "--require-claim",
            "box_sub_type=enterprise,user",
            "--url-file",
            str(url_file),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not url_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "devserver did not start"
            time.sleep(0.05)
        base_url = url_file.read_text().strip()
        token_url = base_url + "/oauth2/token"
        now = int(time.time())
        claims = {"iss": "cli-client", "aud": token_url, "iat": now, "exp": now + 60}

        def post(extra: dict[str, Any]) -> requests.Response:
            token = jwt.encode(
                {**claims, "jti": str(uuid.uuid4()), **extra}, keys["rsa"].private_key, algorithm="RS256"
            )  # type: ignore[arg-type]
            return requests.post(token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token}, timeout=10)

        refused(post({}), "invalid_grant", "box_sub_type")
        assert post({"box_sub_type": "user"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "listening on http://127.0.0.1:" in stdout
