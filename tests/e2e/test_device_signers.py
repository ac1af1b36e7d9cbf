"""dag.test() runs whose assertions are signed in a SoftHSM2 token and by the KMS emulator.

The local server verifies every assertion with the public key the test read out of the device
(or KMS) itself, independently of the provider's code.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jwt_provider.signing.signers._device_cache import SIGNER_CACHE
from devserver.hsm import SoftHsm
from tests.conftest import CLIENT_ID, kms_extra, pkcs11_extra

pytestmark = pytest.mark.slow

TASKS = {"whoami_sync": "device-sync", "whoami_deferred": "device-deferred"}


def assert_run_signed_by_the_device(
    result: Any, logs: str, server: Any, algorithm: str, no_secret_in: Any, secrets: list[str]
) -> None:
    assert result.states == dict.fromkeys(TASKS, "success"), result.output[-3000:]
    for task_id, subject in TASKS.items():
        assert result.xcom(task_id) == {"sub": subject, "client_id": CLIENT_ID, "scope": None}
    granted = [r for r in server.token_requests if r["success"]]
    assert sorted(r["issued_sub"] for r in granted) == sorted(TASKS.values())
    assert all(r["assertion_verified"] and r["assertion_header"]["alg"] == algorithm for r in granted)
    assert "Connection 'jwt_device': signing with key" in logs  # the task log says which key signs
    no_secret_in(result.output + logs, secrets)


@pytest.mark.parametrize(("label", "algorithm"), [("rsa-signing", "PS256"), ("ec384-signing", "ES384")])
def test_dag_signs_in_a_pkcs11_token(
    label: str,
    algorithm: str,
    softhsm: SoftHsm,
    auth_server: Any,
    set_connection: Any,
    run_dag: Any,
    no_secret_in: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    SIGNER_CACHE.clear()
    auth_server.register_client(CLIENT_ID, public_key_pem=softhsm.key(label).public_key_pem)
    extra = pkcs11_extra(softhsm, auth_server, label, algorithm=algorithm if algorithm.startswith("PS") else None)
    set_connection("jwt_device", login=CLIENT_ID, host=auth_server.api_url, extra=extra)
    result = run_dag("jwt_e2e_device_signer")
    assert_run_signed_by_the_device(result, caplog.text, auth_server, algorithm, no_secret_in, [softhsm.user_pin])
    assert f"signing with key '{label}'" in caplog.text


@pytest.mark.parametrize(("key", "algorithm"), [("rsa", "RS256"), ("ec", "ES256")])
def test_dag_signs_with_a_kms_key(
    key: str,
    algorithm: str,
    kms_keys: dict[str, dict[str, Any]],
    aws_conn_id: str,
    auth_server: Any,
    set_connection: Any,
    run_dag: Any,
    no_secret_in: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from devserver.kms import SECRET_ACCESS_KEY

    SIGNER_CACHE.clear()
    kms_key = kms_keys[key]
    auth_server.register_client(CLIENT_ID, public_key_pem=kms_key["public_key_pem"])
    extra = kms_extra(kms_key["arn"], aws_conn_id, auth_server)
    set_connection("jwt_device", login=CLIENT_ID, host=auth_server.api_url, extra=extra)
    result = run_dag("jwt_e2e_device_signer")
    assert_run_signed_by_the_device(result, caplog.text, auth_server, algorithm, no_secret_in, [SECRET_ACCESS_KEY])
    assert f"signing with key '{kms_key['arn']}'" in caplog.text
