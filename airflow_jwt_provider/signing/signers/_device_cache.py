"""Device signers cached per process: an HSM login, or a boto3 client and a ``GetPublicKey`` round trip, once.

Building a device signer costs a round trip to the device (about 55 ms for KMS), and every hook
builds credentials, so signers are kept by a keyed digest of what selects and opens the key. A
PIN enters that digest only through an HMAC with a per-process random key, so no comparable
form of it is kept. The cache does not notice a changed ``aws`` connection (new credentials) in
a running process: the signer keeps the client it was built with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from airflow_jwt_provider.common.process_cache import ProcessCache
from airflow_jwt_provider.signing.signers.base import Signer

#: Device signers by a keyed digest of their settings.
SIGNER_CACHE: ProcessCache[Signer] = ProcessCache(max_entries=32)
_DIGEST_KEY = secrets.token_bytes(32)


def keyed(secret: str) -> str:
    """A per-process keyed digest of ``secret`` (a PIN), for a cache digest."""
    return hmac.new(_DIGEST_KEY, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def cached_signer(
    signer: str, name: str | None, certificate_file: str | None, build: Callable[[], Signer], **parts: Any
) -> Signer:
    """The signer ``build`` makes, from the process cache when the same key was built before.

    :param parts: what else selects and opens the key (module, token, a keyed PIN, the aws connection...).
    """
    return SIGNER_CACHE.get_or_load(_digest(signer, name, certificate_file, parts), build)


def _digest(signer: str, name: str | None, certificate_file: str | None, parts: dict[str, Any]) -> str:
    """A keyed digest of what selects and opens a device key (the certificate file by its stat too)."""
    certificate: tuple[str, int, int] | None = None
    if certificate_file:
        path = os.path.expanduser(certificate_file)
        try:
            stat = os.stat(path)
            certificate = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
        except OSError:
            certificate = (path, -1, -1)  # the signer reports the unreadable file
    canonical = json.dumps(
        {"signer": signer, "name": name, "certificate": certificate, **parts}, sort_keys=True, default=str
    )
    return hmac.new(_DIGEST_KEY, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
