"""One reader per key-material format: each lists the private-key entries it holds, not decrypted yet.

Decrypting is slow (JCEKS: ~200 ms, any RSA key: ~30 ms for cryptography's key check), so a
reader gives each entry an opener, and only the entry that ``key_alias`` selects is opened.
PKCS#12 files with several keys are walked by :mod:`.pkcs12_entries` (``cryptography`` returns
one key only); JKS and JCEKS need the optional ``[jks]`` extra (pyjks).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from airflow_jwt_provider.connection.kinds import KeystoreType
from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.signing.key_files.pkcs12_entries import KeyBag, PfxStructureError, iter_key_bags
from airflow_jwt_provider.signing.key_files.source import KeyRequest

#: Opens one key entry when called (decryption is slow: only the selected entry is opened).
KeyOpener = Callable[[], PrivateKeyTypes]


@dataclass(frozen=True)
class FormatContext:
    """What a reader reads: the material, the request (passwords), and how to word an error."""

    material: bytes
    request: KeyRequest
    where: str
    error: Callable[..., KeystoreError]


@dataclass(frozen=True)
class Entry:
    """One private-key entry of the key material, not decrypted yet.

    ``alias`` is ``None`` for formats that hold one key and have no names (PEM, Google JSON).
    ``certificates`` are the candidates for the key's certificate (the one whose public key
    matches is kept). ``issuer``, ``key_id`` and ``token_uri`` come from a Google JSON key.
    """

    alias: str | None
    open: KeyOpener
    store_type: KeystoreType
    certificates: Callable[[], list[x509.Certificate]] = list
    issuer: str | None = None
    key_id: str | None = None
    token_uri: str | None = None


def read_pkcs12(ctx: FormatContext) -> list[Entry]:
    password = _password_bytes(ctx.request.keystore_password)
    try:
        bundle = pkcs12.load_pkcs12(ctx.material, password)
    except ValueError:
        raise ctx.error(
            "cannot be opened: the keystore_password is wrong or the file is damaged "
            "(PKCS#12 cannot tell the two apart)",
            "keystore_password",
        ) from None
    certificates = [c.certificate for c in ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)]
    return [
        Entry(alias, opener, KeystoreType.PKCS12, lambda: certificates)
        for alias, opener in _pkcs12_key_entries(ctx, password, bundle).items()
    ]


def _pkcs12_key_entries(
    ctx: FormatContext, password: bytes | None, bundle: pkcs12.PKCS12KeyAndCertificates
) -> dict[str, KeyOpener]:
    """alias → key; every entry when the PFX can be walked, else the one cryptography gives."""
    try:
        bags = list(iter_key_bags(ctx.material))
    except (PfxStructureError, StopIteration, IndexError):
        bags = []
    # cryptography already decrypted the key that goes with its first certificate: reuse it.
    loaded_key = bundle.key
    loaded_alias = bundle.cert.friendly_name if bundle.cert and loaded_key is not None else None
    entries: dict[str, PrivateKeyTypes | KeyBag] = {}
    for index, bag in enumerate(bags):
        alias = bag.alias or f"#{index + 1}"
        known = loaded_alias is not None and bag.alias == loaded_alias.decode("utf-8", "replace")
        # the key cryptography opened, or the bag: decrypted only if selected
        entries[alias] = loaded_key if known and loaded_key is not None else bag
    if not entries and bundle.key is not None:
        name = bundle.cert.friendly_name.decode() if bundle.cert and bundle.cert.friendly_name else "#1"
        entries[name] = bundle.key
    if not entries:
        raise ctx.error("holds no private-key entry (only certificates); export the key pair too")
    return {alias: _lazy_pkcs12_key(ctx, value, password) for alias, value in entries.items()}


def _lazy_pkcs12_key(ctx: FormatContext, value: PrivateKeyTypes | KeyBag, password: bytes | None) -> KeyOpener:
    if not isinstance(value, KeyBag):
        return lambda: value

    def decrypt() -> PrivateKeyTypes:
        try:
            return serialization.load_der_private_key(value.der, password if value.encrypted else None)
        except (ValueError, TypeError):
            raise ctx.error(
                "the key entry cannot be decrypted with the keystore_password", "keystore_password"
            ) from None

    return decrypt


def read_java_keystore(ctx: FormatContext, store_type: KeystoreType) -> list[Entry]:
    _import_pyjks(ctx.where, store_type, ctx.request.source.path)
    import jks

    try:
        store = jks.KeyStore.loads(ctx.material, ctx.request.keystore_password or "", try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException:
        raise ctx.error(
            f"the {store_type.value.upper()} keystore cannot be opened: the keystore_password is wrong "
            "or the file is damaged",
            "keystore_password",
        ) from None
    except Exception as exc:  # pyjks raises assorted errors on truncated input
        raise ctx.error(
            f"is not a readable {store_type.value.upper()} keystore ({type(exc).__name__}); "
            "the file looks truncated or damaged"
        ) from None
    key_password = ctx.request.key_password or ctx.request.keystore_password or ""

    def opener(entry: jks.PrivateKeyEntry) -> KeyOpener:
        def decrypt() -> PrivateKeyTypes:
            try:
                if not entry.is_decrypted():
                    entry.decrypt(key_password)
                return serialization.load_der_private_key(entry.pkey_pkcs8, None)
            except jks.util.DecryptionFailureException:
                raise ctx.error(
                    f"the key entry {entry.alias!r} cannot be decrypted: set key_password to the "
                    "entry's password (it defaults to the keystore_password)",
                    "key_password",
                ) from None

        return decrypt

    def chain(entry: jks.PrivateKeyEntry) -> Callable[[], list[x509.Certificate]]:
        return lambda: [x509.load_der_x509_certificate(der) for _type, der in entry.cert_chain]

    return [Entry(alias, opener(e), store_type, chain(e)) for alias, e in store.private_keys.items()]


def read_pem(ctx: FormatContext) -> list[Entry]:
    text = ctx.material
    password = _password_bytes(ctx.request.keystore_password)
    try:
        loaded = serialization.load_pem_private_key(text, password)
    except TypeError as exc:
        if "encrypted" in str(exc).lower() and password is None:
            problem = "the PEM key is encrypted; set keystore_password to its passphrase"
        else:
            problem = "the PEM key is not encrypted; remove keystore_password"
        raise ctx.error(problem, "keystore_password") from None
    except ValueError:
        raise ctx.error(
            "the PEM private key cannot be read: the passphrase in keystore_password is wrong, "
            "or the PEM is damaged or not a private key (a certificate or public key alone cannot sign)",
            "keystore_password",
        ) from None
    except Exception:
        raise ctx.error("the PEM private key uses an unsupported format or algorithm") from None
    return [Entry(None, lambda: loaded, KeystoreType.PEM, lambda: _pem_certificates(text))]


def read_google_json(ctx: FormatContext) -> list[Entry]:
    try:
        document = json.loads(ctx.material)
    except ValueError:
        raise ctx.error("is not valid JSON (expected a Google service-account key file)") from None
    missing = [k for k in ("private_key", "client_email") if not document.get(k)]
    if not isinstance(document, dict) or missing:
        raise ctx.error(
            f"is a JSON document without {', '.join(missing) or 'the service-account fields'}; "
            "download a JSON key of the service account from the Google Cloud console"
        )
    try:
        private_key = serialization.load_pem_private_key(document["private_key"].encode(), None)
    except (ValueError, TypeError):
        raise ctx.error("the private_key inside the service-account JSON cannot be read") from None
    return [
        Entry(
            None,
            lambda: private_key,
            KeystoreType.GOOGLE_JSON,
            issuer=document["client_email"],
            key_id=document.get("private_key_id"),
            token_uri=document.get("token_uri"),
        )
    ]


#: Key material format → the reader that lists its entries.
READERS: dict[KeystoreType, Callable[[FormatContext], list[Entry]]] = {
    KeystoreType.PKCS12: read_pkcs12,
    KeystoreType.JKS: lambda ctx: read_java_keystore(ctx, KeystoreType.JKS),
    KeystoreType.JCEKS: lambda ctx: read_java_keystore(ctx, KeystoreType.JCEKS),
    KeystoreType.PEM: read_pem,
    KeystoreType.GOOGLE_JSON: read_google_json,
}


def _import_pyjks(where: str, store_type: KeystoreType, path: str | None) -> None:
    """Import pyjks (the optional ``[jks]`` extra), or raise the advice to install it or convert the keystore."""
    try:
        import jks  # noqa: F401 -- whether it imports; the caller imports it for use
    except ImportError:
        source = path or "keystore.jks"
        raise KeystoreError(
            f"{where} is a {store_type.value.upper()} keystore, which needs the optional dependency: "
            "pip install 'airflow-jwt-provider[jks]'. Or convert it to PKCS#12 once (no extra needed): "
            f"keytool -importkeystore -srckeystore {source} -srcstoretype {store_type.value.upper()} "
            f"-destkeystore {Path(source).stem}.p12 -deststoretype PKCS12",
            field="keystore_type",
        ) from None


def _password_bytes(password: str | None) -> bytes | None:
    return password.encode("utf-8") if password else None


def _pem_certificates(text: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in text:
        return []
    try:
        return x509.load_pem_x509_certificates(text)
    except ValueError:
        return []
