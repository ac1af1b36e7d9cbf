"""Measure what a signature costs with each signer: a key in memory, SoftHSM2, moto's KMS.

Run with the project's venv: ``.venv/bin/python scripts/measure_signers.py [--rounds N]``.
It makes a SoftHSM2 token and starts the KMS emulator in a temporary folder (both on this
machine only), times signer construction once and ``sign()`` N times per algorithm, verifies
one signature of each, and removes everything it made. The numbers are for the report, not a
test: they depend on the machine, and the emulator's are a loopback HTTP round trip, not AWS's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def timed(function: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median and 95th percentile in milliseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory(prefix="measure-signers-")
    # Airflow (under the signers) writes a config into AIRFLOW_HOME on import: keep it in the scratch folder.
    os.environ.setdefault("AIRFLOW_HOME", str(Path(workdir.name) / "airflow"))
    with workdir as tmp:
        measure(args.rounds, tmp)
    return 0


def measure(rounds: int, tmp: str) -> None:
    from devserver import hsm, kms
    from tests.signing.signers.jws_checks import signing_input, verify_with_cryptography

    rows: list[tuple[str, str, float, float, float]] = []
    data = {alg: signing_input(alg) for alg in ("RS256", "PS256", "ES256")}

    # A key in memory, as the keystore signer holds it (cryptography), for comparison.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    local = {
        "RS256": lambda: rsa_key.sign(data["RS256"], padding.PKCS1v15(), hashes.SHA256()),
        "PS256": lambda: rsa_key.sign(
            data["PS256"], padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
        ),
        "ES256": lambda: ec_key.sign(data["ES256"], ec.ECDSA(hashes.SHA256())),
    }
    for alg, sign in local.items():
        rows.append(("in memory (cryptography)", alg, 0.0, *timed(sign, rounds)))

    token = hsm.create_softhsm(Path(tmp) / "softhsm")
    from airflow_jwt_provider.signing.signers.pkcs11._sessions import close_sessions
    from airflow_jwt_provider.signing.signers.pkcs11.signer import Pkcs11Signer

    for alg, label in (("RS256", "rsa-signing"), ("PS256", "rsa-signing"), ("ES256", "ec-signing")):
        start = time.perf_counter()
        signer = Pkcs11Signer(token.module_path, token.token_label, token.user_pin, key_label=label, algorithm=alg)
        built = (time.perf_counter() - start) * 1000
        verify_with_cryptography(signer.public_key, alg, data[alg], signer.sign(data[alg]))
        rows.append(
            (
                f"SoftHSM2 ({signer.mechanism})",
                alg,
                built,
                *timed(lambda s=signer, m=data[alg]: s.sign(m), rounds),
            )
        )
    close_sessions()

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    emulator = kms.start_kms_emulator(Path(tmp))
    try:
        client = emulator.client()
        keys = {
            "RSA": kms.create_signing_key(client, "RSA_2048"),
            "EC": kms.create_signing_key(client, "ECC_NIST_P256"),
        }
        os.environ["AIRFLOW_CONN_KMS_MEASURE"] = emulator.connection()
        from airflow_jwt_provider.signing.signers.aws_kms.signer import AwsKmsSigner

        kms_rounds = max(20, rounds // 4)
        for alg, key in (("RS256", "RSA"), ("PS256", "RSA"), ("ES256", "EC")):
            start = time.perf_counter()
            signer = AwsKmsSigner(keys[key]["key_id"], aws_conn_id="kms_measure", algorithm=alg)
            built = (time.perf_counter() - start) * 1000
            verify_with_cryptography(signer.public_key, alg, data[alg], signer.sign(data[alg]))
            rows.append(
                (
                    "moto KMS over loopback HTTP",
                    alg,
                    built,
                    *timed(lambda s=signer, m=data[alg]: s.sign(m), kms_rounds),
                )
            )
    finally:
        emulator.stop()

    print(f"{'signer':34} {'alg':6} {'build ms':>9} {'sign median ms':>15} {'sign p95 ms':>12}")
    for name, alg, built, median, p95 in rows:
        print(f"{name:34} {alg:6} {built:9.1f} {median:15.3f} {p95:12.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
