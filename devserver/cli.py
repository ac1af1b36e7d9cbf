"""``python -m devserver``: run the local authorization server until SIGTERM/SIGINT.

The demo's docker-compose ``authserver`` service, the Dockerfile and the tests run it; its
options are part of that contract (``tests/test_docker_compose.py`` checks them).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Iterable
from pathlib import Path

from devserver.server import DEFAULT_TOKEN_LIFETIME, LocalAuthorizationServer, load_client_key_material


def _parse_required_claims(specs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``name=v1,v2`` (or bare ``name`` for "present, any value") into register_client's form."""
    required: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if not name:
            raise ValueError(f"--require-claim {spec!r}: expected name=value1,value2")
        required[name] = tuple(v for v in values.split(",") if v)
    return required


def main(argv: list[str] | None = None) -> int:
    """``python -m devserver``: serve until SIGTERM/SIGINT (demo and docker-compose use this)."""
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description="Local OAuth 2.0 JWT-bearer authorization server and protected API (tests/demo only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--client-id", required=True, help="the client's id, i.e. its assertions' iss")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--certificate", help="PEM certificate or PEM public key of the client")
    key.add_argument("--keystore", help="PKCS#12 (or, with pyjks, JKS/JCEKS) holding the client's certificate")
    parser.add_argument(
        "--keystore-password",
        default=os.environ.get("DEVSERVER_KEYSTORE_PASSWORD"),
        help="keystore password (default: $DEVSERVER_KEYSTORE_PASSWORD)",
    )
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("DEVSERVER_CLIENT_SECRET"),
        help="require this client secret too (default: $DEVSERVER_CLIENT_SECRET)",
    )
    parser.add_argument(
        "--require-claim",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="claim the assertion must carry, with its allowed values (repeatable)",
    )
    parser.add_argument(
        "--extra-audience", action="append", default=[], metavar="URL", help="also accepted as aud (repeatable)"
    )
    parser.add_argument("--max-assertion-lifetime", type=int, default=300, metavar="SECONDS")
    parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME, metavar="SECONDS")
    parser.add_argument("--url-file", help="write the base URL here once listening")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a test CA made at start (RFC 8705)")
    parser.add_argument("--ca-file", help="with --tls: write the test CA's certificate (PEM) here")
    parser.add_argument(
        "--tls-name", action="append", default=[], metavar="NAME", help="with --tls: also certify this host name"
    )
    parser.add_argument("--dpop-nonce", action="store_true", help="require DPoP nonces at the token endpoint")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        material = load_client_key_material(args.certificate, args.keystore, args.keystore_password)
        required = _parse_required_claims(args.require_claim)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if not material and not args.client_secret:
        parser.error("give --certificate, --keystore or --client-secret")
    if (args.ca_file or args.tls_name) and not args.tls:
        parser.error("--ca-file and --tls-name need --tls")

    server = LocalAuthorizationServer(
        args.host,
        args.port,
        token_lifetime=args.token_lifetime,
        tls=args.tls,
        tls_names=args.tls_name,
        dpop_nonce=args.dpop_nonce,
    )
    if args.ca_file:
        server.write_ca_file(args.ca_file)
    server.register_client(
        args.client_id,
        client_secret=args.client_secret,
        required_claims=required,
        extra_audiences=args.extra_audience,
        max_assertion_lifetime=args.max_assertion_lifetime,
        **material,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    try:
        if args.url_file:
            target = Path(args.url_file)
            partial = target.with_name(target.name + ".tmp")
            partial.write_text(server.url + "\n", encoding="utf-8")
            partial.replace(target)  # atomic: a reader never sees half a URL
        print(f"devserver listening on {server.url} (token endpoint {server.token_url})", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
