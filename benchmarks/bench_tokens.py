"""Benchmarks: what the provider's public API costs next to hand-rolled code with the raw libraries.

Only what users call is timed — ``hook.mint_assertion()``, ``hook.get_token()``, ``hook.run()``,
a session from ``hook.get_conn()`` — in sustained runs of thousands of calls in one process, so
that a cost growing per call (a masker keeping every value, a cache that never forgets) shows
as a ratio between the last and the first stretch of the run. Rows:

1. DAG parsing: importing the operator, the sensor or the hook, in fresh interpreters, over
   ``from airflow.sdk import BaseOperator; import requests``; the http provider's
   ``HttpOperator`` as the peer row. Target: at most 30 ms.
2. Minting: ``hook.mint_assertion()`` vs ``jwt.encode`` with an already loaded key. Target ≤ 1.15x.
3. API calls: ``hook.run()`` and a ``get_conn()`` session vs a plain ``requests.Session`` with a
   fixed ``Authorization`` header, against the local API on 127.0.0.1. Target ≤ 1.10x.
4. A token for each API call: ``hook.get_token()`` (cached) vs ``jwt.encode`` + a token POST.
5. Opening the key in a new hook (cached per process) vs loading it again (PKCS#12, JCEKS).
6. Keyless (a projected token file as the assertion): ``hook.get_token()`` (cached) vs reading the
   file + a token POST, and ``hook.run()`` vs a plain session, with the file rotated during the run.

Run: ``.venv/bin/python benchmarks/bench_tokens.py [--quick] [--json PATH]``. Figures depend on the
machine; the ratios are what matter. Exit status 1 when a target is missed. ``--json PATH`` also writes
every row as data (the documentation plots the file recorded in ``docs/benchmarks/``, so its charts
come from a real run, not from numbers typed into a page).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jwt-bench-"))

import jwt  # noqa: E402
import requests  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12  # noqa: E402

from benchmarks.results import json_path, write_results  # noqa: E402
from devserver import keystores as ks  # noqa: E402
from devserver.server import LocalAuthorizationServer  # noqa: E402

PASSWORD = "bench-pass-1"
QUICK = "--quick" in sys.argv
MINTS = 1000 if QUICK else 5000
CALLS = 600 if QUICK else 3000
WINDOW = MINTS // 5
IMPORT_RUNS = 5 if QUICK else 15
BASELINE = "from airflow.sdk import BaseOperator; import requests"
missed: list[str] = []
#: every row printed, as data, for ``--json``
results: list[dict[str, Any]] = []
section = ""


def write_json(path: Path) -> None:
    """The run as data: what was measured, on what, and each row (milliseconds, ratios, targets)."""
    calls = {"mints": MINTS, "api_calls": CALLS, "import_runs": IMPORT_RUNS}
    write_results(path, "bench_tokens", quick=QUICK, calls=calls, missed=missed, rows=results)


def samples(fn: Callable[[], object], count: int) -> list[float]:
    """Seconds of each of ``count`` calls, in order."""
    out = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def drift(values: list[float], window: int) -> float:
    """Median of the last ``window`` calls over the median of the first ``window``."""
    return median(values[-window:]) / median(values[:window])


def row(label: str, provider: float, raw: float, *, target: float | None = None, flat: float | None = None) -> None:
    ratio = provider / raw
    verdict = ""
    if target is not None:
        verdict = f"  target ≤ {target:.2f}x {'ok' if ratio <= target else 'MISSED'}"
        if ratio > target:
            missed.append(f"{label}: {ratio:.3f}x > {target:.2f}x")
    if flat is not None:
        verdict += f"  last/first {flat:.2f}"
    results.append(
        {
            "section": section,
            "label": label.strip(),
            "provider_ms": provider * 1e3,
            "raw_ms": raw * 1e3,
            "ratio": ratio,
            "target": target,
            "last_over_first": flat,
        }
    )
    print(f"{label:<52} provider {provider * 1e3:8.3f} ms  raw {raw * 1e3:8.3f} ms  ratio {ratio:7.3f}x{verdict}")


#: Interpreters for the import rows write and read bytecode here, as an installed package has it
#: (this machine may set PYTHONDONTWRITEBYTECODE, and compiling every module on every import
#: would measure the compiler, not the imports).
_PYCACHE = tempfile.mkdtemp(prefix="jwt-bench-pycache-")


def import_cost(statement: str) -> float:
    """Median seconds ``statement`` adds to the baseline imports, each in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=_PYCACHE, AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR")

    def run(code: str) -> float:
        script = f"import time; {BASELINE}; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
        return float(result.stdout.strip().splitlines()[-1])

    run(statement)  # the first run writes the bytecode cache
    return median([run(statement) for _ in range(IMPORT_RUNS)])


def dag_parsing() -> None:
    global section
    section = "DAG parsing"
    print(f"1. DAG parsing: extra import time over `{BASELINE}` (fresh interpreters, median of {IMPORT_RUNS})")
    for label, statement in (
        ("JwtBearerHttpOperator", "import airflow_jwt_provider.operators.http"),
        ("JwtBearerHttpSensor", "import airflow_jwt_provider.sensors.http"),
        ("JwtBearerHook", "import airflow_jwt_provider.hooks.jwt_bearer"),
        ("peer: the http provider's HttpOperator", "import airflow.providers.http.operators.http"),
    ):
        cost = import_cost(statement)
        target = "" if label.startswith("peer") else f"  target ≤ 30 ms {'ok' if cost <= 0.030 else 'MISSED'}"
        if not label.startswith("peer") and cost > 0.030:
            missed.append(f"import {label}: {cost * 1e3:.1f} ms")
        results.append(
            {
                "section": section,
                "label": label,
                "import_ms": cost * 1e3,
                "target_ms": None if label.startswith("peer") else 30.0,
            }
        )
        print(f"   {label:<49} +{cost * 1e3:7.1f} ms{target}")
    print()


def main() -> int:
    status = run()
    path = json_path(sys.argv)
    if path is not None:
        write_json(path)
    return status


def run() -> int:
    global section
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
    from airflow_jwt_provider.signing.key_files.loader import KEY_CACHE
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE

    print(f"Python {sys.version.split()[0]}; medians; ratio < 1 means the provider is faster\n")
    dag_parsing()

    work = Path(tempfile.mkdtemp(prefix="jwt-bench-keys-"))
    p12 = ks.make_keystore_with_fallback(work, "bench", store_type="pkcs12", store_password=PASSWORD)
    stores = {"pkcs12": p12}
    if ks.have_keytool():
        stores["jceks"] = ks.make_keystore(work, "bench", store_type="jceks", store_password=PASSWORD)

    with LocalAuthorizationServer() as server:
        server.register_client("bench-client", certificate_pem=p12.certificate_pem)

        def connection(conn_id: str, store: ks.Keystore) -> str:
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "jwt_bearer",
                    "login": "bench-client",
                    "host": server.api_url,
                    "extra": {
                        "auth_url": server.token_url,
                        "key_file": str(store.path),
                        "keystore_password": PASSWORD,
                        "subject": "bench-user",
                    },
                }
            )
            return conn_id

        hook = JwtBearerHook(connection("bench_api", p12))
        token = hook.get_token()  # first use: key load, logging set-up
        private_key, _certificate, _chain = pkcs12.load_key_and_certificates(p12.path.read_bytes(), PASSWORD.encode())

        def raw_mint() -> str:
            """What hand-rolled DAG code does: jwt.encode with the claims written out."""
            now = int(time.time())
            claims = {"iss": "bench-client", "sub": "bench-user", "aud": server.token_url}
            claims.update(iat=now, exp=now + 60, jti=str(uuid.uuid4()))
            return jwt.encode(claims, private_key, algorithm="RS256")

        section = "Minting"
        print(f"2. Minting ({MINTS} calls each, one process)")
        provider_mints = samples(hook.mint_assertion, MINTS)
        raw_mints = samples(raw_mint, MINTS)
        row(
            "   hook.mint_assertion() vs jwt.encode",
            median(provider_mints),
            median(raw_mints),
            target=1.15,
            flat=drift(provider_mints, WINDOW),
        )
        print()

        section = "API calls"
        print(f"3. API calls ({CALLS} calls each, GET {server.api_url}/whoami, cached token)")
        raw_session = requests.Session()
        raw_session.headers["Authorization"] = f"Bearer {token.access_token}"
        url = f"{server.api_url}/whoami"

        def raw_call() -> None:
            raw_session.get(url, timeout=30).raise_for_status()

        provider_session = hook.get_conn()

        def session_call() -> None:
            provider_session.get("whoami").raise_for_status()

        # one call of each in turn, so that a change in the machine's load hits all three alike
        run_calls: list[float] = []
        conn_calls: list[float] = []
        raw_calls: list[float] = []
        for _ in range(CALLS):
            run_calls += samples(lambda: hook.run("whoami"), 1)
            conn_calls += samples(session_call, 1)
            raw_calls += samples(raw_call, 1)
        call_window = max(100, CALLS // 5)
        row(
            "   hook.run() vs requests.Session",
            median(run_calls),
            median(raw_calls),
            target=1.10,
            flat=drift(run_calls, call_window),
        )
        row(
            "   hook.get_conn() session vs requests.Session",
            median(conn_calls),
            median(raw_calls),
            target=1.10,
            flat=drift(conn_calls, call_window),
        )
        print()

        section = "A token for each API call"
        print("4. A token for each API call")
        TOKEN_CACHE.invalidate()
        hook.get_token()

        def raw_token() -> None:
            response = requests.post(
                server.token_url,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": raw_mint()},
                timeout=10,
            )
            response.raise_for_status()

        before = len(server.token_requests)
        provider_tokens = samples(hook.get_token, CALLS)
        provider_requests = len(server.token_requests) - before
        raw_tokens = samples(raw_token, CALLS // 10)
        row(
            "   hook.get_token() (cached) vs encode + POST",
            median(provider_tokens),
            median(raw_tokens),
            flat=drift(provider_tokens, call_window),
        )
        print(f"   token requests: provider {provider_requests} for {CALLS} calls, raw one per call")
        print()

        section = "Opening the signing key"
        print("5. Opening the signing key in a new hook (the process caches loaded keys)")
        for kind, store in stores.items():
            conn_id = connection(f"bench_{kind}", store)
            KEY_CACHE.clear()
            JwtBearerHook(conn_id).credentials  # noqa: B018 -- first load, paid once per process
            data = store.path.read_bytes()
            if kind == "pkcs12":

                def raw_open(data: bytes = data) -> None:
                    pkcs12.load_key_and_certificates(data, PASSWORD.encode())
            else:
                import jks

                def raw_open(data: bytes = data) -> None:
                    entry = next(iter(jks.KeyStore.loads(data, PASSWORD).private_keys.values()))
                    load_der_private_key(entry.pkey_pkcs8, None)

            opened = samples(lambda conn_id=conn_id: JwtBearerHook(conn_id).credentials, 30)
            row(
                f"   new hook on a used {kind.upper()} keystore vs a fresh load",
                median(opened),
                median(samples(raw_open, 10)),
            )
        print(f"   key loads (decryptions) in this process: {KEY_CACHE.loads}")
        print()
        keyless(server, call_window)

    if missed:
        print("\nMissed targets:\n  " + "\n  ".join(missed))
        return 1
    print("\nEvery target met.")
    return 0


def keyless(server: LocalAuthorizationServer, call_window: int) -> None:
    """Row 6: a connection without a key, its JWT a Kubernetes-shaped token file the platform rotates."""
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE
    from devserver.platform import LocalPlatform

    global section
    section = "Keyless"
    print(f"6. Keyless: a projected token file as the assertion ({CALLS} calls each)")
    with LocalPlatform() as platform:
        server.register_client("bench-keyless", federated=True)
        server.trust_issuer(platform.url, client_id="bench-keyless")
        work = Path(tempfile.mkdtemp(prefix="jwt-bench-token-"))
        projected = platform.project_service_account(work / "token" / "token", server.issuer)
        os.environ["AIRFLOW_CONN_BENCH_KEYLESS"] = json.dumps(
            {
                "conn_type": "jwt_bearer",
                "host": server.api_url,
                "extra": {
                    "auth_url": server.token_url,
                    "assertion_source": "file",
                    "assertion_file": str(projected.path),
                },
            }
        )
        hook = JwtBearerHook("bench_keyless")
        TOKEN_CACHE.invalidate()
        token = hook.get_token()

        def raw_token() -> None:
            assertion = projected.path.read_text()
            response = requests.post(
                server.token_url,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
                timeout=10,
            )
            response.raise_for_status()

        def provider_token() -> None:
            hook.get_token()

        before = len(server.token_requests)
        provider_tokens: list[float] = []
        for i in range(CALLS):
            if i == CALLS // 2:
                projected.rotate()  # the kubelet renews the file: same identity, the cached token serves on
            provider_tokens += samples(provider_token, 1)
        requests_made = len(server.token_requests) - before
        row(
            "   hook.get_token() (cached) vs file read + POST",
            median(provider_tokens),
            median(samples(raw_token, CALLS // 10)),
            flat=drift(provider_tokens, call_window),
        )
        print(f"   token requests: provider {requests_made} for {CALLS} calls and one rotation, raw one per call")

        raw_session = requests.Session()
        raw_session.headers["Authorization"] = f"Bearer {token.access_token}"
        url = f"{server.api_url}/whoami"
        run_calls: list[float] = []
        raw_calls: list[float] = []
        for _ in range(CALLS):
            run_calls += samples(lambda: hook.run("whoami"), 1)
            raw_calls += samples(lambda: raw_session.get(url, timeout=30).raise_for_status(), 1)
        row(
            "   keyless hook.run() vs requests.Session",
            median(run_calls),
            median(raw_calls),
            target=1.10,
            flat=drift(run_calls, call_window),
        )
        projected.stop()


if __name__ == "__main__":
    sys.exit(main())
