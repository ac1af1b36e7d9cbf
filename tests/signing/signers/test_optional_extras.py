"""The signer modules stay importable without their optional dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_modules_import_without_the_extras() -> None:
    """python-pkcs11, boto3/botocore and the amazon provider's hook are imported only when a signer is built."""
    script = textwrap.dedent(
        """
        import sys
        blocked = ("pkcs11", "asn1crypto", "boto3", "botocore", "airflow.providers.amazon.aws.hooks.base_aws")
        for name in blocked:
            sys.modules[name] = None  # any import of these now raises ImportError
        import airflow_jwt_provider.signing.signers.aws_kms.signer as aws_kms
        import airflow_jwt_provider.signing.signers.pkcs11.signer as pkcs11_signer
        loaded = [name for name in blocked if sys.modules.get(name) is not None]
        print("imported", aws_kms.AwsKmsSigner.__name__, pkcs11_signer.Pkcs11Signer.__name__, loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "imported AwsKmsSigner Pkcs11Signer []"
