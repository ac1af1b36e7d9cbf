"""devserver.cli: `python -m devserver` serves the way the docker-compose authserver service runs it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import requests

from devserver.server import JWT_BEARER_GRANT_TYPE
from tests.devserver.helpers import SigningKey, devserver_process, refused


def test_cli_serves_until_sigterm(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(keys["rsa"].store.certificate_pem)
    cli_args = ["--client-id", "cli-client", "--certificate", str(cert_file)]
    with devserver_process(tmp_path, *cli_args, "--require-claim", "box_sub_type=enterprise,user") as devserver:
        token_url = devserver.token_url
        now = int(time.time())
        claims = {"iss": "cli-client", "sub": "cli-client", "aud": token_url, "iat": now, "exp": now + 60}

        def post(extra: dict[str, Any]) -> requests.Response:
            token = jwt.encode(
                {**claims, "jti": str(uuid.uuid4()), **extra}, keys["rsa"].private_key, algorithm="RS256"
            )  # type: ignore[arg-type]
            return requests.post(token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token}, timeout=10)

        refused(post({}), "invalid_grant", "box_sub_type")
        assert post({"box_sub_type": "user"}).status_code == 200
    assert devserver.process.returncode == 0, devserver.stderr
    assert "listening on http://127.0.0.1:" in devserver.stdout
