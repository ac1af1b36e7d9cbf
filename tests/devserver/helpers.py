"""Helpers for the devserver tests: signing keys, assertions and requests made without the provider.

Assertions are signed here with PyJWT directly (not with airflow_jwt_provider), so these tests
check the server on its own; the provider's tests then rely on it. Every refusal test also
checks the error code, so a server that refused everything would fail the positive tests and
one that accepted everything would fail the negative ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from devserver.keystores import Keystore
from devserver.server import CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE, LocalAuthorizationServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BOX_SECRET = "box-secret-value-123"
ENTRA_SECRET = "entra-secret-value-456"
KEY_SPECS: dict[str, dict[str, Any]] = {
    "rsa": {"key_algorithm": "RSA"},
    "other_rsa": {"key_algorithm": "RSA"},
    "p256": {"key_algorithm": "EC", "curve": "secp256r1"},
    "p384": {"key_algorithm": "EC", "curve": "secp384r1"},
    "p521": {"key_algorithm": "EC", "curve": "secp521r1"},
    "ed25519": {"key_algorithm": "Ed25519"},
}

ALGORITHMS = {
    "RS256": "rsa",
    "RS384": "rsa",
    "RS512": "rsa",
    "PS256": "rsa",
    "PS384": "rsa",
    "PS512": "rsa",
    "ES256": "p256",
    "ES384": "p384",
    "ES512": "p521",
    "EdDSA": "ed25519",
}


class SigningKey:
    def __init__(self, store: Keystore) -> None:
        self.store = store
        self.private_key = serialization.load_pem_private_key(store.path.read_bytes(), None)


def assertion(
    server: LocalAuthorizationServer,
    key: SigningKey,
    *,
    iss: str,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
    now: float | None = None,
    **claims: Any,
) -> str:
    """A JWT-bearer assertion with sane defaults; a claim given as None is left out."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": iss,
        "sub": "alice",
        "aud": server.token_url,
        "iat": issued,
        "exp": issued + 60,
        "jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key.private_key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def grant(server: LocalAuthorizationServer, token: str, **form: str) -> requests.Response:
    return requests.post(
        server.token_url, data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": token, **form}, timeout=10
    )


def api(server: LocalAuthorizationServer, path: str, access_token: str | None, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    headers.update(kw.pop("headers", {}))
    return requests.request(kw.pop("method", "GET"), server.api_url + path, headers=headers, timeout=10, **kw)


def refused(response: requests.Response, error: str, description: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert description.lower() in body["error_description"].lower(), body


def token_for(server: LocalAuthorizationServer, keys: dict[str, SigningKey], **claims: Any) -> str:
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa", **claims))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def client_assertion(
    server: LocalAuthorizationServer, key: SigningKey, client_id: str, alg: str = "ES256", **claims: Any
) -> dict[str, str]:
    """private_key_jwt client authentication fields (iss = sub = client_id, Entra's x5t#S256)."""
    headers = {"x5t#S256": key.store.certificate_thumbprint()}
    token = assertion(server, key, alg=alg, headers=headers, **{"iss": client_id, "sub": client_id, **claims})
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": token}


@dataclass
class DevserverProcess:
    """A ``python -m devserver`` child process; ``stdout``/``stderr`` are set once it has stopped."""

    process: subprocess.Popen[str]
    url: str = ""
    stdout: str = ""
    stderr: str = ""

    @property
    def token_url(self) -> str:
        return self.url + "/oauth2/token"


@contextmanager
def devserver_process(tmp_path: Path, *args: str) -> Iterator[DevserverProcess]:
    """``python -m devserver --port 0 --url-file FILE *args`` in its own process, stopped by SIGTERM.

    Runs the server the way docker-compose's ``authserver`` service does, from the repository
    root; yields once the URL file says it listens.
    """
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", "0", *args, "--url-file", str(url_file)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = DevserverProcess(process)
    try:
        deadline = time.monotonic() + 20
        while not url_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "devserver did not start"
            time.sleep(0.05)
        running.url = url_file.read_text().strip()
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        running.stdout, running.stderr = process.communicate(timeout=10)
