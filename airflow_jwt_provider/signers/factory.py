"""From a connection's settings to the signer that signs its assertions: build, rotate, cache.

``signer`` says where the private key lives (``local``, ``pkcs11``, ``aws_kms``) and
``key_alias`` names the key there: a keystore alias, a PKCS#11 key label, a KMS key id, ARN
or alias. During a key rotation ``key_alias`` lists several keys, and :func:`choose_key`
applies one policy for every signer:

1. the first key whose certificate is valid and not within the warning window signs (a key
   without a certificate counts as valid: nothing says when it stops being trusted);
2. else the first key whose certificate is still valid signs, with a warning naming the
   connection, the key and the days left;
3. else nothing signs: the error lists each key and why it cannot.

Keys are only built as far as the policy needs (a valid first key costs one build). The
choice is made each time credentials are built (once per hook), so a process starts signing
with the next key as soon as the first one enters the window; tokens obtained with the
previous key stay in the token cache, under their own key fingerprint, until they expire.

Device signers are cached per process (:data:`SIGNER_CACHE`: an HSM login, or a boto3
client and a ``GetPublicKey`` round trip, about 55 ms, per build) by a keyed digest of what
selects and opens the key; the PIN enters that digest only through an HMAC with a per-process
random key. Local keys are cached by content in :data:`airflow_jwt_provider.keys.KEY_CACHE`.
The cache does not notice a changed ``aws`` connection (new credentials) in a running
process: the signer keeps the client it was built with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_jwt_provider.certificates import (
    CertificateStatus,
    certificate_status,
    certificate_warning,
    check_certificate,
)
from airflow_jwt_provider.exceptions import JwtBearerConfigError, JwtBearerError, KeystoreError
from airflow_jwt_provider.keys import KeyRequest, load_signing_key
from airflow_jwt_provider.process_cache import ProcessCache
from airflow_jwt_provider.settings import JwtBearerSettings
from airflow_jwt_provider.signers.base import Signer, describe_public_key, public_key_fingerprint
from airflow_jwt_provider.signers.local import LocalKeySigner

__all__ = [
    "SIGNER_CACHE",
    "BuiltKey",
    "KeyCandidate",
    "SigningChoice",
    "build_key",
    "choose_key",
    "every_key",
]

#: Error messages of the device signers name the connection's settings, not their own arguments.
PKCS11_FIELDS: Mapping[str, str] = {
    "module_path": "pkcs11_module",
    "token_label": "pkcs11_token_label",
    "pin": "keystore_password",
    "key_label": "key_alias",
    "key_object_id": "pkcs11_key_id",
}
KMS_FIELDS: Mapping[str, str] = {"kms_key_id": "key_alias", "aws_conn_id": "aws_conn_id"}

#: Device signers by a keyed digest of their settings (see the module notes).
SIGNER_CACHE: ProcessCache[Signer] = ProcessCache(max_entries=32)
_DIGEST_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class BuiltKey:
    """One key of the connection, ready to sign.

    :param name: the key as the connection names it (keystore alias as the store spells it,
        PKCS#11 label, KMS key id); ``None`` for a PEM or JSON key.
    :param key_id: the ``kid`` its assertions carry: the connection's kid for this key, else the
        key's own (a Google ``private_key_id``), else none.
    :param issuer: ``iss`` the key material names (a Google key's ``client_email``).
    :param token_uri: the token endpoint the key material names (a Google key's ``token_uri``).
    """

    signer: Signer
    name: str | None
    key_id: str | None = None
    issuer: str | None = None
    token_uri: str | None = None

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.signer.public_key)

    def describe(self) -> str:
        """``key 'new' (kid 'k2', RSA-2048, RS256, SHA-256 3f2a…)``: what a log line says about it."""
        name = f"key {self.name!r}" if self.name else "the key"
        kid = f"kid {self.key_id!r}" if self.key_id else "no kid"
        public_key = describe_public_key(self.signer.public_key)
        return f"{name} ({kid}, {public_key}, {self.signer.algorithm}, SHA-256 {self.fingerprint[:16]}…)"


@dataclass(frozen=True)
class KeyCandidate:
    """One ``key_alias`` entry and what became of it: built (with its certificate status) or why not."""

    name: str | None
    key: BuiltKey | None = None
    status: CertificateStatus | None = None
    problem: str | None = None

    def describe(self) -> str:
        shown = repr(self.name) if self.name else "the key"
        if self.key is None or self.status is None:
            return f"{shown}: {self.problem}"
        return f"{shown}: certificate {self.status.describe()}"


@dataclass(frozen=True)
class SigningChoice:
    """The key that signs, the warning to give about it, and the keys looked at before it."""

    key: BuiltKey
    warning: str | None = None
    passed_over: tuple[KeyCandidate, ...] = ()

    @property
    def signer(self) -> Signer:
        return self.key.signer

    def describe(self) -> str:
        """One line for the task log: which key signs, and which were passed over and why."""
        text = f"signing with {self.key.describe()}"
        if self.passed_over:
            text += "; passed over " + "; ".join(c.describe() for c in self.passed_over)
        return text


def choose_key(settings: JwtBearerSettings, *, now: datetime | None = None) -> SigningChoice:
    """The key that signs for ``settings`` now, by the rotation policy of the module notes.

    :raises KeystoreError: no listed key can sign (each one and why), or the only key's
        certificate has expired.
    :raises JwtBearerConfigError: a setting does not fit the only key (algorithm...).
    """
    names: tuple[str | None, ...] = settings.key_aliases or (None,)
    looked_at: list[KeyCandidate] = []
    for index, name in enumerate(names):
        try:
            key = build_key(settings, name, index)
        except JwtBearerError as exc:
            if len(names) == 1:
                raise
            looked_at.append(KeyCandidate(name, problem=str(exc).removeprefix(f"Connection {settings.conn_id!r}: ")))
            continue
        status = certificate_status(key.signer.certificate, now)
        if status.state in ("none", "valid"):
            return SigningChoice(key, passed_over=tuple(looked_at))
        looked_at.append(KeyCandidate(name, key, status))

    usable = [c for c in looked_at if c.key is not None and c.status is not None and c.status.usable]
    if usable:
        chosen = usable[0]
        assert chosen.key is not None
        warning = certificate_warning(chosen.key.signer.certificate, chosen.key.name, now, conn_id=settings.conn_id)
        if len(names) > 1:
            warning = f"{warning}. No other key in key_alias is valid beyond the warning window"
        return SigningChoice(chosen.key, warning, tuple(c for c in looked_at if c is not chosen))
    if len(names) == 1:
        only = looked_at[0]
        assert only.key is not None
        check_certificate(
            only.key.signer.certificate, only.key.name, now, conn_id=settings.conn_id, field=_key_field(settings)
        )
    raise KeystoreError(
        f"Connection {settings.conn_id!r}: no key in key_alias can sign: "
        + "; ".join(c.describe() for c in looked_at)
        + ". Add a valid key (register its certificate with the authorization server) and list it first in key_alias",
        field="key_alias",
    )


def every_key(settings: JwtBearerSettings, *, now: datetime | None = None) -> list[KeyCandidate]:
    """Every key the connection lists, built, with its certificate status or why it cannot be used.

    For inspection and export (``airflow jwt-bearer check`` / ``export``); signing uses :func:`choose_key`.
    """
    candidates = []
    for index, name in enumerate(settings.key_aliases or (None,)):
        try:
            key = build_key(settings, name, index)
        except JwtBearerError as exc:
            candidates.append(KeyCandidate(name, problem=str(exc).removeprefix(f"Connection {settings.conn_id!r}: ")))
            continue
        candidates.append(KeyCandidate(name, key, certificate_status(key.signer.certificate, now)))
    return candidates


def build_key(settings: JwtBearerSettings, name: str | None, index: int | None = 0) -> BuiltKey:
    """The key ``name`` (entry ``index`` of key_alias; ``None``: a key the connection does not list).

    Errors are the signer's own (a :class:`KeystoreError` or :class:`JwtBearerConfigError`
    naming the connection setting at fault), prefixed with the connection.
    """
    try:
        if settings.signer == "pkcs11":
            return _kid(settings, index, BuiltKey(_pkcs11_signer(settings, name), name))
        if settings.signer == "aws_kms":
            return _kid(settings, index, BuiltKey(_kms_signer(settings, name or ""), name))
        return _kid(settings, index, _local_key(settings, name))
    except (KeystoreError, JwtBearerConfigError) as exc:
        raise _in_connection(exc, settings.conn_id) from None


# --- one builder per signer -----------------------------------------------------------------------


def _local_key(settings: JwtBearerSettings, name: str | None) -> BuiltKey:
    key = load_signing_key(KeyRequest.from_settings(settings, name))
    if key.alias is None and len(settings.key_aliases) > 1:
        raise JwtBearerConfigError(
            f"key_alias lists {len(settings.key_aliases)} keys, but the {key.store_type} key material holds one "
            "key without aliases; rotating keys takes a keystore with one entry per key (keytool -genkeypair "
            "-alias NAME), or a single key_alias",
            field="key_alias",
        )
    return BuiltKey(
        LocalKeySigner(key, settings.algorithm), key.alias or name, issuer=key.issuer, token_uri=key.token_uri
    )


def _pkcs11_signer(settings: JwtBearerSettings, name: str | None) -> Signer:
    from airflow_jwt_provider.signers.pkcs11 import Pkcs11Signer

    # The settings require all three; an empty one is reported by the signer, naming the setting.
    module, token, pin = (
        settings.pkcs11_module or "",
        settings.pkcs11_token_label or "",
        settings.keystore_password or "",
    )
    digest = _digest(
        settings,
        name,
        module=os.path.realpath(os.path.expanduser(module)),
        token=token,
        key_object_id=settings.pkcs11_key_id,
        pin=hmac.new(_DIGEST_KEY, pin.encode("utf-8"), hashlib.sha256).hexdigest(),
    )
    return SIGNER_CACHE.get_or_load(
        digest,
        lambda: Pkcs11Signer(
            module,
            token,
            pin,
            key_label=name,
            key_object_id=settings.pkcs11_key_id,
            algorithm=settings.algorithm,
            certificate_file=settings.certificate_file,
            field_names=PKCS11_FIELDS,
        ),
    )


def _kms_signer(settings: JwtBearerSettings, name: str) -> Signer:
    from airflow_jwt_provider.signers.aws_kms import AwsKmsSigner

    digest = _digest(settings, name, aws_conn_id=settings.aws_conn_id)
    return SIGNER_CACHE.get_or_load(
        digest,
        lambda: AwsKmsSigner(
            name,
            aws_conn_id=settings.aws_conn_id,
            algorithm=settings.algorithm,
            certificate_file=settings.certificate_file,
            field_names=KMS_FIELDS,
        ),
    )


# --- helpers ---------------------------------------------------------------------------------------


def _digest(settings: JwtBearerSettings, name: str | None, **parts: Any) -> str:
    """A keyed digest of what selects and opens a device key (the certificate file by its stat too)."""
    certificate: tuple[str, int, int] | None = None
    if settings.certificate_file:
        path = os.path.expanduser(settings.certificate_file)
        try:
            stat = os.stat(path)
            certificate = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
        except OSError:
            certificate = (path, -1, -1)  # the signer reports the unreadable file
    canonical = json.dumps(
        {
            "signer": settings.signer,
            "name": name,
            "algorithm": settings.algorithm,
            "certificate": certificate,
            **parts,
        },
        sort_keys=True,
    )
    return hmac.new(_DIGEST_KEY, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def _kid(settings: JwtBearerSettings, index: int | None, key: BuiltKey) -> BuiltKey:
    """``key`` with the kid its assertions carry (the connection's for this key, else the key's own)."""
    if settings.key_ids:  # one kid per listed key; a key the connection does not list has none of them
        kid = settings.key_ids[index] if index is not None else key.signer.key_id
    else:
        kid = settings.key_id or key.signer.key_id
    return BuiltKey(key.signer, key.name, kid, key.issuer, key.token_uri)


def _key_field(settings: JwtBearerSettings) -> str:
    if settings.signer == "local":
        return "key_file" if settings.key_source and settings.key_source.path else "private_key"
    return "certificate_file" if settings.certificate_file else "key_alias"


def _in_connection(exc: KeystoreError | JwtBearerConfigError, conn_id: str) -> KeystoreError | JwtBearerConfigError:
    """The same error, its message prefixed with the connection (unless it already names it)."""
    message = str(exc)
    if message.startswith("Connection "):
        return exc
    return type(exc)(f"Connection {conn_id!r}: {message}", field=exc.field)
