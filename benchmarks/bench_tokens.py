"""Benchmarks: what the provider costs next to hand-rolled code with the raw libraries.

Prints ratios (provider / raw) for:
  1. opening the signing key: a second hook on the same keystore vs. loading it again with
     cryptography (PKCS#12) or pyjks (JCEKS), as hand-rolled DAG code does in every task;
  2. minting an assertion: provider vs. ``jwt.encode`` with an already loaded key;
  3. getting a token for each API call: provider (cached) vs. requests + jwt.encode per call,
     against the local authorization server on 127.0.0.1.

Run: ``.venv/bin/python benchmarks/bench_tokens.py`` (needs keytool for the JCEKS store).
Figures depend on the machine; the ratios are what matter.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jwt-bench-"))

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

from airflow_jwt_provider.keys import KEY_CACHE
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer

PASSWORD = "bench-pass-1"


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def row(label: str, provider: float, raw: float) -> None:
    print(f"{label:<58} provider {provider * 1e3:9.3f} ms   raw {raw * 1e3:9.3f} ms   ratio {provider / raw:8.4f}")


def main() -> None:
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
    from airflow_jwt_provider.token_cache import TOKEN_CACHE

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

        print(f"Python {sys.version.split()[0]}; medians; ratio < 1 means the provider is faster\n")

        # 1. opening the key
        for kind, store in stores.items():
            conn_id = connection(f"bench_{kind}", store)
            KEY_CACHE.clear()
            JwtBearerHook(conn_id).credentials  # noqa: B018 -- first load, paid once per process

            def provider_open(conn_id: str = conn_id) -> None:
                JwtBearerHook(conn_id).credentials  # noqa: B018

            data = store.path.read_bytes()
            if kind == "pkcs12":

                def raw_open(data: bytes = data) -> None:
                    pkcs12.load_key_and_certificates(data, PASSWORD.encode())
            else:
                import jks  # type: ignore[import-untyped]

                def raw_open(data: bytes = data) -> None:
                    entry = next(iter(jks.KeyStore.loads(data, PASSWORD).private_keys.values()))
                    load_der_private_key(entry.pkey_pkcs8, None)

            row(f"open the {kind.upper()} key in a new hook (cached)", timed(provider_open, 30), timed(raw_open, 10))

        # 2. minting
        hook = JwtBearerHook(connection("bench_mint", p12))
        private_key, _certificate, _chain = pkcs12.load_key_and_certificates(p12.path.read_bytes(), PASSWORD.encode())

        def raw_mint() -> str:
            """What hand-rolled DAG code does: jwt.encode with the claims written out."""
            now = int(time.time())
            claims = {"iss": "bench-client", "sub": "bench-user", "aud": server.token_url}
            claims.update(iat=now, exp=now + 60, jti=str(uuid.uuid4()))
            return jwt.encode(claims, private_key, algorithm="RS256")

        credentials = hook.credentials  # the hook's public mint_assertion also masks the result
        row("mint one RS256 assertion", timed(credentials.mint_assertion, 300), timed(raw_mint, 300))

        # 3. a token per API call
        TOKEN_CACHE.invalidate()
        hook.get_token()

        def raw_token() -> None:
            assertion = raw_mint()
            response = requests.post(
                server.token_url,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
                timeout=10,
            )
            response.raise_for_status()

        before = len(server.token_requests)
        provider_time = timed(hook.get_token, 200)
        raw_time = timed(raw_token, 50)
        row("token for one API call (provider: cached)", provider_time, raw_time)
        provider_requests = 0  # the cached calls made no request
        raw_requests = len(server.token_requests) - before
        print(f"\ntoken requests made: provider {provider_requests} for 200 calls, raw {raw_requests} for 50 calls")
        print(f"key loads (decryptions) in this process: {KEY_CACHE.loads}")


if __name__ == "__main__":
    main()
