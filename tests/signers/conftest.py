"""Fixtures for the device signers: a real SoftHSM2 token and a moto KMS server, made per run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from devserver import hsm, kms


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hsm.SoftHsm]:
    """A SoftHSM2 token with RSA-2048, EC P-256/P-384 keys generated inside it (non-extractable).

    ``SOFTHSM2_CONF`` is set for the whole test process: SoftHSM2 reads it once, when the
    library is first initialised, so every test in the process shares this one token.
    """
    if not hsm.have_softhsm():
        pytest.fail("SoftHSM2 is required by the PKCS#11 tests: run scripts/install-system-deps (Debian: softhsm2)")
    token = hsm.create_softhsm(tmp_path_factory.mktemp("softhsm"))
    yield token
    from airflow_jwt_provider.signers.pkcs11 import close_sessions

    close_sessions()


@pytest.fixture(scope="session")
def kms_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kms.KmsEmulator]:
    """moto's KMS server as a separate process on a free 127.0.0.1 port, for the whole session."""
    # boto3 must never look for instance credentials (169.254.169.254) from a test run.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    emulator = kms.start_kms_emulator(tmp_path_factory.mktemp("kms"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def kms_keys(kms_emulator: kms.KmsEmulator) -> dict[str, dict[str, Any]]:
    """SIGN_VERIFY keys created with boto3 (public keys read back independently of the signer)."""
    client = kms_emulator.client()
    return {
        "rsa": kms.create_signing_key(client, "RSA_2048", alias="alias/jwt-signing-rsa"),
        "ec": kms.create_signing_key(client, "ECC_NIST_P256", alias="alias/jwt-signing-ec"),
        "ec384": kms.create_signing_key(client, "ECC_NIST_P384"),
    }


@pytest.fixture
def aws_conn_id(kms_emulator: kms.KmsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow ``aws`` connection (``AIRFLOW_CONN_…``) with the emulator's endpoint_url and dummy keys."""
    monkeypatch.setenv("AIRFLOW_CONN_KMS_TEST", kms_emulator.connection())
    return "kms_test"
