"""Fixtures for the device signers: a real SoftHSM2 token and a moto KMS server, made per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver import hsm


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


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    return tmp_path
