"""Key material and example values for the pages' generated examples, made at build time.

Nothing here is committed: certificates expire, so the keys, keystores and platform JWTs the examples
need are written into a temporary directory at every build. What an example then prints names that
directory and a loopback server with a random port; :func:`as_example` puts example values in their
place (``/keys/…``, ``https://login.example.com``) so that a page reads like a deployment's and stays
the same from one build to the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The store password of every keystore made here (it must never appear in a page).
STORE_PASSWORD = "docs-store-pass-4711"
EXAMPLE_ISSUER = "https://login.example.com"
EXAMPLE_TOKEN_URL = f"{EXAMPLE_ISSUER}/oauth2/token"
EXAMPLE_API = "https://api.example.com"


def as_example(text: str, directory: str | Path, servers: Iterable[tuple[str, str]] = ()) -> str:
    """``text`` with the temporary ``directory`` shown as ``/keys`` and each server URL as its example URL.

    ``servers`` pairs a real base URL with the example one; the longest real URLs are replaced first,
    so that an API under a server's URL (``http://127.0.0.1:4711/api``) keeps its own example value.
    """
    for real, example in sorted(servers, key=lambda pair: -len(pair[0])):
        text = text.replace(real, example)
    return text.replace(str(Path(directory).resolve()), "/keys").replace(str(directory), "/keys")


def key_and_certificate(
    *, kind: str = "ec", days_left: int = 365, lifetime_days: int = 365, name: str = "airflow docs example"
) -> tuple[Any, Any]:
    """A new key and its self-signed certificate, valid until ``days_left`` from now (negative: expired)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from devserver.keystores import self_signed_certificate

    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    starts_in_days = days_left - lifetime_days
    return key, self_signed_certificate(key, name, lifetime_days, None, starts_in_days, organization=None)


def pkcs12(path: Path, entry: tuple[Any, Any] | None = None, *, expired: bool = False) -> Path:
    """A PKCS#12 keystore with one entry, ``signing`` (``entry``'s key and certificate, else new ones)."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption
    from cryptography.hazmat.primitives.serialization import pkcs12 as pkcs12_format

    key, cert = entry or key_and_certificate(days_left=-35 if expired else 365)
    encryption = BestAvailableEncryption(STORE_PASSWORD.encode())
    path.write_bytes(pkcs12_format.serialize_key_and_certificates(b"signing", key, cert, None, encryption))
    return path


def pem(path: Path) -> Path:
    """An unencrypted PKCS#8 EC key followed by its certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key, certificate = key_and_certificate()
    path.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()) + certificate.public_bytes(Encoding.PEM)
    )
    return path


def jks(path: Path, aliases: Iterable[str]) -> Path:
    """A JKS keystore (written by pyjks, the ``[jks]`` extra) with one EC key entry per alias."""
    import jks as pyjks
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    entries = []
    for alias in aliases:
        key, certificate = key_and_certificate()
        der_key = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        entries.append(pyjks.PrivateKeyEntry.new(alias, [certificate.public_bytes(Encoding.DER)], der_key))
    path.write_bytes(pyjks.KeyStore.new("jks", entries).saves(STORE_PASSWORD))
    return path


def platform_jwt(*, expired: bool = False) -> str:
    """A Kubernetes-like service-account JWT for ``https://login.example.com``, signed by a throw-away key."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    issued = now - 3720 if expired else now - 60
    claims = {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:airflow:worker"}
    claims.update(aud=EXAMPLE_ISSUER, iat=issued, exp=issued + 3600)
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
