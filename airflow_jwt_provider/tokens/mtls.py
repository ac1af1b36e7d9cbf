"""Mutual TLS (RFC 8705): the connection's key and certificate in the TLS handshake, for token and API calls.

The client authenticates with its certificate (``tls_client_auth``, ``self_signed_tls_client_auth``)
and the server binds tokens to it (``cnf.x5t#S256``); the API then checks that each call comes over a
TLS connection with the same certificate (§3), so one :class:`ssl.SSLContext` serves both.

Python's ``ssl`` loads a key only from a file. The key is written, encrypted with a password used once,
to an anonymous memory file (``memfd_create``, Linux) or else to a file in a private temporary folder,
loaded, and the file is gone before anything else runs: no key material stays on disk. A key in an HSM
or KMS cannot be used by Python's TLS stack at all; such a connection is refused by name.

:class:`ContextAdapter` pins the context on a ``requests`` session: it alone decides trust and the
client certificate (a per-request ``verify`` or ``REQUESTS_CA_BUNDLE`` would otherwise be loaded into
the shared context, and ``verify=False`` would fail), with TCP keep-alive options when given.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import tempfile
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from requests.adapters import HTTPAdapter

from airflow_jwt_provider.common.process_cache import ProcessCache
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.certificates import certificate_thumbprint
from airflow_jwt_provider.signing.signers.base import Signer

#: TLS contexts by key, certificate and trust: building one costs a key encryption and a load.
_CONTEXTS: ProcessCache[ssl.SSLContext] = ProcessCache(max_entries=32)


def certificate_binding(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1 ``cnf.x5t#S256``: base64url SHA-256 of the certificate's DER."""
    return certificate_thumbprint(certificate, hashes.SHA256())


def client_tls_context_for(settings: JwtBearerSettings, signer: Signer | None) -> ssl.SSLContext:
    """The connection's mTLS context: its local key and certificate; a device key or no certificate refused by name."""
    private_key = getattr(getattr(signer, "key", None), "private_key", None)
    why = "client_auth " + settings.client_auth.value if settings.client_auth.uses_tls_certificate else "mtls"
    if signer is None or private_key is None:
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: {why} presents the connection's key in the TLS handshake, which "
            "Python's TLS can do with a key file only (signer local): a key in an HSM or KMS cannot be used; "
            "use a key file for mTLS",
            field="mtls" if why == "mtls" else "client_auth",
        )
    if signer.certificate is None:
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: {why} needs the key's certificate, and the key material has none; "
            "use a keystore entry with its certificate, or append the certificate to the PEM key",
            field="key_file",
        )
    return client_tls_context(private_key, signer.certificate, settings.http.verify)


def client_tls_context(private_key: Any, certificate: x509.Certificate, verify: bool | str) -> ssl.SSLContext:
    """A client context presenting ``certificate`` with ``private_key``; trust from ``verify`` (a CA bundle path,
    ``True`` for the system's, ``False`` for none). One per key, certificate and trust in a process."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    digest = f"{certificate_binding(certificate)}\x00{verify!r}"  # the certificate names its key pair
    return _CONTEXTS.get_or_load(digest, lambda: _build_context(private_key, der, verify))


def _build_context(private_key: Any, certificate_der: bytes, verify: bool | str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    password = secrets.token_bytes(32)
    encrypted = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password)
    )
    certificate_pem = ssl.DER_cert_to_PEM_cert(certificate_der).encode("ascii")
    _load_from_memory(context, encrypted + b"\n" + certificate_pem, password)
    return context


def _load_from_memory(context: ssl.SSLContext, blob: bytes, password: bytes) -> None:
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("jwt-bearer-mtls", os.MFD_CLOEXEC)
        try:
            os.write(fd, blob)
            context.load_cert_chain(f"/proc/self/fd/{fd}", password=password)
        finally:
            os.close(fd)
        return
    folder = tempfile.mkdtemp(prefix="jwt-bearer-mtls-")  # 0700
    try:
        path = os.path.join(folder, "client.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
        context.load_cert_chain(path, password=password)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class ContextAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections use one TLS context (if any) and socket options (if any)."""

    def __init__(
        self, context: ssl.SSLContext | None = None, socket_options: list[tuple[int, int, int]] | None = None
    ) -> None:
        self._context = context
        self._socket_options = socket_options
        self._cert_reqs = "CERT_NONE" if context is not None and context.verify_mode == ssl.CERT_NONE else None
        super().__init__()

    def _pool_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        if self._socket_options is not None:
            kwargs["socket_options"] = self._socket_options
        return kwargs

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **self._pool_options(kwargs))

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, **self._pool_options(proxy_kwargs))

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        if self._context is None:
            return super().build_connection_pool_key_attributes(request, verify, cert)
        host, pool = super().build_connection_pool_key_attributes(request, True, None)
        pool["ssl_context"] = self._context
        if self._cert_reqs:
            pool["cert_reqs"] = self._cert_reqs
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self._context is None:
            super().cert_verify(conn, url, verify, cert)
            return
        conn.cert_reqs = self._cert_reqs or "CERT_REQUIRED"  # no CA file: never loaded into the shared context
