"""A signer from another installed package (``tests/plugins/example_signer``), used without touching the provider.

The plugin is installed as a third party would ship it (a wheel built from its ``pyproject.toml``,
one entry point in the ``airflow_jwt_provider.signers`` group) into a folder of its own, which the
processes below get on ``PYTHONPATH``: the project's environment is never changed. Then, in those
processes: the connection form offers ``env_key`` and its connection parses; ``airflow jwt-bearer
check`` goes through every step with it; a DAG run signs with it, synchronously and deferred. The
local server verifies every assertion with the public key the test made, independently of the
provider's code. Without the plugin on the path, the same connection is refused by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import CLIENT_ID, REPO_ROOT

pytestmark = pytest.mark.slow

PLUGIN_SOURCE = REPO_ROOT / "tests" / "plugins" / "example_signer"
KEY_VARIABLE = "JWT_EXAMPLE_PLUGIN_KEY"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin, built (from a copy: a build leaves files behind) and installed into a folder of its own."""
    source = tmp_path_factory.mktemp("plugin-source") / PLUGIN_SOURCE.name
    shutil.copytree(PLUGIN_SOURCE, source)
    target = tmp_path_factory.mktemp("plugin-site")
    uv = Path(sys.executable).with_name("uv")
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "example_signer.py").is_file()
    return target


@pytest.fixture
def plugin_world(
    plugin_path: Path, auth_server: Any, set_connection: Any, dags_folder: Path, airflow_db: Path
) -> dict[str, str]:
    """An EC key in an environment variable, registered with the server, and a connection naming ``env_key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth_server.register_client(CLIENT_ID, public_key_pem=public_pem)
    set_connection(
        "jwt_plugin",
        login=CLIENT_ID,
        host=auth_server.api_url,
        extra={
            "auth_url": auth_server.token_url,
            "subject": "alice",
            "signer": "env_key",
            "signer_options": {"variable": KEY_VARIABLE},
        },
    )
    pythonpath = os.pathsep.join([str(plugin_path), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, KEY_VARIABLE: pem, "PYTHONPATH": pythonpath, "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


FORM_PROBE = """
import json
from airflow.providers_manager import ProvidersManager
from airflow.sdk import BaseHook
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

fields = ProvidersManager().providers["airflow-jwt-provider"].data["connection-types"][0]["conn-fields"]
settings = parse_connection(BaseHook.get_connection("jwt_plugin"))
ok, message = JwtBearerHook("jwt_plugin").test_connection()  # what the form's Test button runs
print(json.dumps({"signers": fields["signer"]["schema"]["enum"], "signer": settings.signer.describe(),
                  "test": [ok, message]}))
"""


def test_the_form_offers_the_plugin_and_the_test_button_works(plugin_world: dict[str, str], auth_server: Any) -> None:
    result = run(plugin_world, "-c", FORM_PROBE)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["signers"] == [None, "local", "pkcs11", "aws_kms", "env_key"]
    assert probe["signer"] == f"signer env_key, the PEM key in ${KEY_VARIABLE}"
    ok, message = probe["test"]
    assert ok, message
    assert "Token obtained from" in message
    assert "ES256" in message
    granted = [r for r in auth_server.token_requests if r["success"]]
    assert granted
    assert all(r["assertion_verified"] and r["assertion_header"]["alg"] == "ES256" for r in granted)


def test_airflow_jwt_bearer_check_goes_through_every_step(plugin_world: dict[str, str]) -> None:
    result = run(plugin_world, "-m", "airflow", "jwt-bearer", "check", "--conn-id", "jwt_plugin")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for step in ("settings", "key", "certificate", "assertion", "token", "clock"):
        assert any(step in line and ("[ OK ]" in line or "[SKIP]" in line) for line in lines), (step, result.stdout)
    assert f"signer env_key, the PEM key in ${KEY_VARIABLE}" in result.stdout


def test_a_dag_run_signs_with_the_plugin(plugin_world: dict[str, str], auth_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = run(plugin_world, "-m", "tests.e2e.dag_runner", "jwt_e2e_plugin_signer", str(out))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    states = json.loads(out.read_text())["states"]
    assert states == {"whoami_sync": "success", "whoami_deferred": "success"}
    granted = [r for r in auth_server.token_requests if r["success"]]
    assert sorted(r["issued_sub"] for r in granted) == ["plugin-deferred", "plugin-sync"]
    assert all(r["assertion_verified"] and r["assertion_header"]["alg"] == "ES256" for r in granted)


def test_without_the_plugin_the_signer_is_refused_by_name(plugin_world: dict[str, str]) -> None:
    env = {**plugin_world, "PYTHONPATH": str(REPO_ROOT)}
    result = run(env, "-m", "airflow", "jwt-bearer", "check", "--conn-id", "jwt_plugin")
    assert result.returncode == 1
    assert "signer is 'env_key'; use one of: local, pkcs11, aws_kms" in result.stdout
