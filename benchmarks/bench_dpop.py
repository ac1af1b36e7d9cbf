"""Benchmark: an API call with a DPoP-bound token (a proof per call) next to one with a bearer token, per key.

What users call is timed: ``hook.run(...)`` against the local server on 127.0.0.1, twice per row: to an
endpoint that checks nothing (``/healthz``: what the provider itself adds to a call, the target's
measure) and to ``/api/whoami``, which verifies every proof (signature, ``htu``, ``ath``, the key's
thumbprint against the token's ``jkt``), as a resource server must (end to end, for information). The DPoP key
is one generated for the connection (ES256, EdDSA), or the connection's own signer: a key file (RS256),
SoftHSM2 (ES256, RS256) and the KMS emulator (ES256; a loopback HTTP round trip per proof, not AWS's).
Each row alternates DPoP and bearer calls so that a change in the machine's load hits both alike.

Run: ``.venv/bin/python benchmarks/bench_dpop.py [--quick] [--json PATH]``. Exit status 1 when the
generated ES256 key misses its target (at most 1.2 times bearer). ``--json PATH`` also writes every row
as data (the documentation plots the file recorded in ``docs/benchmarks/``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="jwt-bench-dpop-"))
os.environ.setdefault("AIRFLOW_HOME", str(WORK / "airflow"))

from benchmarks.results import json_path, write_results  # noqa: E402
from devserver import hsm, kms  # noqa: E402
from devserver import keystores as ks  # noqa: E402
from devserver.server import LocalAuthorizationServer  # noqa: E402

QUICK = "--quick" in sys.argv
CALLS = 150 if QUICK else 600
TARGET = 1.2
PASSWORD = "bench-pass-1"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def alternate(first: Callable[[], object], second: Callable[[], object], count: int) -> tuple[list[float], ...]:
    a: list[float] = []
    b: list[float] = []
    for _ in range(count):
        for call, out in ((first, a), (second, b)):
            start = time.perf_counter()
            call()
            out.append(time.perf_counter() - start)
    return a, b


def main() -> int:
    path = json_path(sys.argv)
    rows: list[dict[str, Any]] = []
    status, proofs = run(rows)
    if path is not None:
        write_results(path, "bench_dpop", quick=QUICK, calls=CALLS, target=TARGET, proofs=proofs, rows=rows)
    return status


def run(results: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
    """Print the table; append each row to ``results``; the exit status and the proofs verified."""
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

    print(
        f"Python {sys.version.split()[0]}; medians of {CALLS} calls each; "
        "GET /healthz (provider) and /api/whoami (proof verified) on 127.0.0.1\n"
    )
    store = ks.make_keystore_with_fallback(WORK, "bench", store_type="pkcs12", store_password=PASSWORD)
    token = hsm.create_softhsm(WORK / "softhsm")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    emulator = kms.start_kms_emulator(WORK)
    missed = False
    try:
        kms_key = kms.create_signing_key(emulator.client(), "ECC_NIST_P256")
        os.environ["AIRFLOW_CONN_KMS_BENCH"] = emulator.connection()
        with LocalAuthorizationServer() as server:
            base: dict[str, Any] = {"auth_url": server.token_url, "subject": "bench-user"}
            local = {**base, "key_file": str(store.path), "keystore_password": PASSWORD}
            pkcs11 = {
                **base,
                "signer": "pkcs11",
                "pkcs11_module": token.module_path,
                "pkcs11_token_label": token.token_label,
                "keystore_password": token.user_pin,
            }
            rows: list[tuple[str, str, dict[str, Any], str]] = [
                ("generated key", "ES256", {**local, "dpop": True}, "bench-client"),
                ("generated key", "EdDSA", {**local, "dpop": True, "dpop_algorithm": "EdDSA"}, "bench-client"),
                ("signer: key file", "RS256", {**local, "dpop": True, "dpop_key": "signer"}, "bench-client"),
                (
                    "signer: SoftHSM2",
                    "ES256",
                    {**pkcs11, "key_alias": "ec-signing", "dpop": True, "dpop_key": "signer"},
                    "bench-hsm-ec",
                ),
                (
                    "signer: SoftHSM2",
                    "RS256",
                    {**pkcs11, "key_alias": "rsa-signing", "dpop": True, "dpop_key": "signer"},
                    "bench-hsm-rsa",
                ),
                (
                    "signer: KMS emulator",
                    "ES256",
                    {
                        **base,
                        "signer": "aws_kms",
                        "aws_conn_id": "kms_bench",
                        "key_alias": kms_key["arn"],
                        "dpop": True,
                        "dpop_key": "signer",
                    },
                    "bench-kms",
                ),
            ]
            server.register_client("bench-client", certificate_pem=store.certificate_pem)
            server.register_client("bench-hsm-ec", public_key_pem=token.key("ec-signing").public_key_pem)
            server.register_client("bench-hsm-rsa", public_key_pem=token.key("rsa-signing").public_key_pem)
            server.register_client("bench-kms", public_key_pem=kms_key["public_key_pem"])

            def hook(conn_id: str, login: str, extra: dict[str, Any]) -> JwtBearerHook:
                os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                    {"conn_type": "jwt_bearer", "login": login, "host": server.api_url, "extra": extra}
                )
                made = JwtBearerHook(conn_id)
                made.run("whoami")  # token, key and session ready
                return made

            unchecked = f"{server.url}/healthz"
            print(
                f"{'DPoP key':24} {'alg':6} {'provider: DPoP ms':>17} {'bearer ms':>10} {'ratio':>7}  "
                f"{'verified: DPoP ms':>17} {'bearer ms':>10} {'ratio':>7}  target"
            )
            for index, (kind, alg, extra, login) in enumerate(rows):
                bearer_extra = {k: v for k, v in extra.items() if not k.startswith("dpop")}
                dpop_hook = hook(f"bench_dpop_{index}", login, extra)
                bearer_hook = hook(f"bench_bearer_{index}", login, bearer_extra)
                figures: list[tuple[float, float, float]] = []
                for endpoint in (unchecked, "whoami"):
                    dpop_calls, bearer_calls = alternate(
                        lambda h=dpop_hook, e=endpoint: h.run(e), lambda h=bearer_hook, e=endpoint: h.run(e), CALLS
                    )
                    dpop_ms, bearer_ms = median_ms(dpop_calls), median_ms(bearer_calls)
                    figures.append((dpop_ms, bearer_ms, dpop_ms / bearer_ms))
                target = ""
                if (kind, alg) == ("generated key", "ES256"):
                    ok = figures[0][2] <= TARGET
                    missed = missed or not ok
                    target = f"provider ≤ {TARGET}x {'ok' if ok else 'MISSED'}"
                results.append(
                    {
                        "dpop_key": kind,
                        "algorithm": alg,
                        "provider": {"dpop_ms": figures[0][0], "bearer_ms": figures[0][1], "ratio": figures[0][2]},
                        "verified": {"dpop_ms": figures[1][0], "bearer_ms": figures[1][1], "ratio": figures[1][2]},
                        "target": TARGET if (kind, alg) == ("generated key", "ES256") else None,
                    }
                )
                cells = "  ".join(f"{d:17.2f} {b:10.2f} {r:6.2f}x" for d, b, r in figures)
                print(f"{kind:24} {alg:6} {cells}  {target}")
            verified = [r for r in server.api_requests if r["auth_scheme"] == "DPoP"]
            proofs = {"verified": sum(1 for r in verified if r["dpop_verified"]), "sent": len(verified)}
            print(f"\nproofs the server verified: {proofs['verified']} of {proofs['sent']}")
    finally:
        emulator.stop()
        from airflow_jwt_provider.signing.signers.pkcs11._sessions import close_sessions

        close_sessions()
    return (1 if missed else 0), proofs


if __name__ == "__main__":
    sys.exit(main())
