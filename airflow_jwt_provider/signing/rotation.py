"""Which key signs: key rotation over the keys a connection lists, each built by its signer type.

``signer`` says where the private key lives (``local``, ``pkcs11``, ``aws_kms``, or a registered
plugin) and
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
random key. Local keys are cached by content in :data:`airflow_jwt_provider.signing.key_files.loader.KEY_CACHE`.
The cache does not notice a changed ``aws`` connection (new credentials) in a running
process: the signer keeps the client it was built with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError, JwtBearerError, KeystoreError
from airflow_jwt_provider.signing.certificates import (
    CertificateStatus,
    certificate_status,
    certificate_warning,
    check_certificate,
)
from airflow_jwt_provider.signing.signers.base import BuiltKey, Signer, signer_type

__all__ = ["BuiltKey", "KeyCandidate", "SigningChoice", "build_key", "choose_key", "every_key"]


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
        if status.state.preferred:
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
            only.key.signer.certificate,
            only.key.name,
            now,
            conn_id=settings.conn_id,
            field=settings.signer.key_field if settings.signer else "signer",
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
        return _kid(settings, index, signer_type(settings).build(settings, name))
    except (KeystoreError, JwtBearerConfigError) as exc:
        raise _in_connection(exc, settings.conn_id) from None


def _kid(settings: JwtBearerSettings, index: int | None, key: BuiltKey) -> BuiltKey:
    """``key`` with the kid its assertions carry (the connection's for this key, else the key's own)."""
    if settings.key_ids:  # one kid per listed key; a key the connection does not list has none of them
        kid = settings.key_ids[index] if index is not None else key.signer.key_id
    else:
        kid = settings.key_id or key.signer.key_id
    return BuiltKey(key.signer, key.name, kid, key.issuer, key.token_uri)


def _in_connection(exc: KeystoreError | JwtBearerConfigError, conn_id: str) -> KeystoreError | JwtBearerConfigError:
    """The same error, its message prefixed with the connection (unless it already names it)."""
    message = str(exc)
    if message.startswith("Connection "):
        return exc
    return type(exc)(f"Connection {conn_id!r}: {message}", field=exc.field)
