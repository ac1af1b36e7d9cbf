"""Load the signing key (and its certificate) from a keystore, a PEM file or a Google JSON key.

The format is detected from the content, never from the file name: Java 9+ ``keytool``
writes PKCS#12 into ``something.jks`` unless told otherwise. Decrypting a keystore is
slow (JCEKS: ~200 ms, any RSA key: ~30 ms for cryptography's key check), so loaded keys
are cached per process by a digest of the material and the secrets that open it: two
connections, hooks or tasks on the same keystore pay for one decryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.pkcs12_entries import KeyBag, PfxStructureError, iter_key_bags
from airflow_jwt_provider.process_cache import ProcessCache
from airflow_jwt_provider.settings import KeySource
from airflow_jwt_provider.signers.base import (
    ES_CURVES,
    SigningPublicKey,
    describe_public_key,
    public_key_fingerprint,
)

if TYPE_CHECKING:
    from airflow_jwt_provider.settings import JwtBearerSettings

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
#: Opens one key entry when called (decryption is slow: only the selected entry is opened).
KeyOpener = Callable[[], PrivateKeyTypes]

JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"
MIN_RSA_BITS = 2048


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A private key ready to sign, with what the keystore says about it.

    ``issuer``, ``key_id`` and ``token_uri`` are filled from a Google service-account key
    (``client_email``, ``private_key_id``, ``token_uri``); keystores leave them ``None``.
    """

    private_key: SigningPrivateKey
    store_type: str
    alias: str | None = None
    certificate: x509.Certificate | None = None
    issuer: str | None = None
    key_id: str | None = None
    token_uri: str | None = None
    fingerprint: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", public_key_fingerprint(self.public_key))

    def __repr__(self) -> str:
        return (
            f"SigningKey(store_type={self.store_type!r}, alias={self.alias!r}, "
            f"key={self.describe()}, fingerprint={self.fingerprint[:16]}…)"
        )

    @property
    def public_key(self) -> SigningPublicKey:
        return self.private_key.public_key()

    def describe(self) -> str:
        """A short human description, e.g. ``RSA-2048`` or ``EC-secp256r1``."""
        return describe_public_key(self.public_key)

    @property
    def not_after(self) -> datetime | None:
        """When the certificate expires (UTC); ``None`` without a certificate."""
        return self.certificate.not_valid_after_utc if self.certificate is not None else None


@dataclass(frozen=True)
class KeyRequest:
    """What selects and opens a key: the material and its secrets (never shown in ``repr``)."""

    source: KeySource
    keystore_type: str | None = None
    keystore_password: str | None = field(default=None, repr=False)
    key_alias: str | None = None
    key_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: JwtBearerSettings, alias: str | None = None) -> KeyRequest:
        """The request for entry ``alias`` of the connection's key file (default: its first key_alias)."""
        if settings.key_source is None:
            raise KeystoreError(
                f"Connection {settings.conn_id!r} signs with signer {settings.signer!r}, which reads no key file",
                field="signer",
            )
        return cls(
            source=settings.key_source,
            keystore_type=settings.keystore_type,
            keystore_password=settings.keystore_password,
            key_alias=alias if alias is not None else next(iter(settings.key_aliases), None),
            key_password=settings.key_password,
        )


#: Loaded keys by a digest of the material and the secrets that open it.
KEY_CACHE: ProcessCache[SigningKey] = ProcessCache()


def load_signing_key(request: KeyRequest) -> SigningKey:
    """Return the signing key ``request`` designates, from the process cache when possible."""
    material = _read_material(request.source)
    digest = hashlib.sha256()
    for part in (
        material,
        (request.keystore_type or "").encode(),
        (request.keystore_password or "").encode(),
        (request.key_alias or "").lower().encode(),
        (request.key_password or "").encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return KEY_CACHE.get_or_load(digest.hexdigest(), lambda: _KeyLoader(request, material).load())


def load_every_signing_key(request: KeyRequest) -> list[SigningKey]:
    """Every private-key entry of the key material, in the store's order (``key_alias`` is ignored).

    For inspection (``airflow jwt-bearer inspect``): nothing is cached, every entry is decrypted.
    """
    return _KeyLoader(request, _read_material(request.source)).load_every()


def _read_material(source: KeySource) -> bytes:
    if source.path is not None:
        path = Path(source.path).expanduser()
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(
                f"key_file {source.path!r} does not exist on this machine; the path must be readable "
                "by the Airflow worker (and by the api-server for the Test button)",
                field="key_file",
            ) from None
        except OSError as exc:
            raise KeystoreError(
                f"key_file {source.path!r} cannot be read ({exc.strerror}); check its permissions",
                field="key_file",
            ) from None
    text = (source.inline or "").strip()
    if text.startswith(("-----BEGIN", "{")):
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(
            "private_key is neither PEM text, a service-account JSON key nor base64-encoded keystore "
            "bytes; paste the PEM as is, or encode a keystore with `base64 -w0 keystore.p12`",
            field="private_key",
        ) from None


def detect_keystore_type(material: bytes) -> str | None:
    """Name the format of ``material`` from its first bytes, or ``None`` when unknown."""
    if material.startswith(JKS_MAGIC):
        return "jks"
    if material.startswith(JCEKS_MAGIC):
        return "jceks"
    if material[:1] == b"\x30":
        return "pkcs12"
    head = material.lstrip()[:64]
    if head.startswith(b"{"):
        return "google_json"
    if b"-----BEGIN" in material[:4096]:
        return "pem"
    return None


@dataclass(frozen=True)
class _Entry:
    """One private-key entry of the key material, not decrypted yet.

    ``alias`` is ``None`` for formats that hold one key and have no names (PEM, Google JSON).
    ``certificates`` are the candidates for the key's certificate (the one whose public key
    matches is kept). ``issuer``, ``key_id`` and ``token_uri`` come from a Google JSON key.
    """

    alias: str | None
    open: KeyOpener
    store_type: str
    certificates: Callable[[], list[x509.Certificate]] = list
    issuer: str | None = None
    key_id: str | None = None
    token_uri: str | None = None


class _KeyLoader:
    """Turns key material into a :class:`SigningKey`; one reader per format lists its entries."""

    def __init__(self, request: KeyRequest, material: bytes) -> None:
        self.request = request
        self.material = material
        self.field = request.source.field_name
        self.where = f"{self.field} {request.source.path!r}" if request.source.path else "the inline private_key"

    def error(self, problem: str, field_name: str | None = None) -> KeystoreError:
        return KeystoreError(f"{self.where}: {problem}", field=field_name or self.field)

    def load(self) -> SigningKey:
        """The entry ``key_alias`` names (or the only one), decrypted."""
        return self._signing_key(self._select(self._entries()))

    def load_every(self) -> list[SigningKey]:
        """Every entry, decrypted, in the store's order."""
        entries = self._entries()
        if not entries:
            raise self.error("holds no private-key entry; keytool -list shows what it contains")
        return [self._signing_key(entry) for entry in entries]

    def _signing_key(self, entry: _Entry) -> SigningKey:
        private_key = _signing_private_key(entry.open(), self.error)
        key = SigningKey(
            private_key=private_key,
            store_type=entry.store_type,
            alias=entry.alias,
            certificate=_matching_certificate(private_key, entry.certificates()),
            issuer=entry.issuer,
            key_id=entry.key_id,
            token_uri=entry.token_uri,
        )
        _check_key_strength(key, self.error)
        return key

    def _entries(self) -> list[_Entry]:
        detected = detect_keystore_type(self.material)
        if detected is None:
            raise self.error(
                "is not a keystore (JKS, JCEKS, PKCS#12), a PEM private key or a service-account "
                "JSON key; check that the path or pasted value is the key material",
            )
        declared = self.request.keystore_type
        if declared is not None and declared != detected:
            raise self.error(
                f"keystore_type says {declared!r} but the content is {detected!r} (Java 9+ keytool "
                "writes PKCS#12 by default, whatever the file name); remove keystore_type to let "
                f"the provider detect it, or set it to {detected!r}",
                "keystore_type",
            )
        return _READERS[detected](self)

    # -- formats ------------------------------------------------------------------------

    def _read_pkcs12(self) -> list[_Entry]:
        password = _password_bytes(self.request.keystore_password)
        try:
            bundle = pkcs12.load_pkcs12(self.material, password)
        except ValueError:
            raise self.error(
                "cannot be opened: the keystore_password is wrong or the file is damaged "
                "(PKCS#12 cannot tell the two apart)",
                "keystore_password",
            ) from None
        certificates = [c.certificate for c in ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)]
        return [
            _Entry(alias, opener, "pkcs12", lambda: certificates)
            for alias, opener in self._pkcs12_key_entries(password, bundle).items()
        ]

    def _pkcs12_key_entries(
        self, password: bytes | None, bundle: pkcs12.PKCS12KeyAndCertificates
    ) -> dict[str, KeyOpener]:
        """alias → key; every entry when the PFX can be walked, else the one cryptography gives."""
        try:
            bags = list(iter_key_bags(self.material))
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
            raise self.error("holds no private-key entry (only certificates); export the key pair too")
        return {alias: self._lazy_pkcs12_key(value, password) for alias, value in entries.items()}

    def _lazy_pkcs12_key(self, value: PrivateKeyTypes | KeyBag, password: bytes | None) -> KeyOpener:
        if not isinstance(value, KeyBag):
            return lambda: value

        def decrypt() -> PrivateKeyTypes:
            try:
                return serialization.load_der_private_key(value.der, password if value.encrypted else None)
            except (ValueError, TypeError):
                raise self.error(
                    "the key entry cannot be decrypted with the keystore_password", "keystore_password"
                ) from None

        return decrypt

    def _read_java_keystore(self, store_type: str) -> list[_Entry]:
        _import_pyjks(self.where, store_type, self.request.source.path)
        import jks

        try:
            store = jks.KeyStore.loads(self.material, self.request.keystore_password or "", try_decrypt_keys=False)
        except jks.util.KeystoreSignatureException:
            raise self.error(
                f"the {store_type.upper()} keystore cannot be opened: the keystore_password is wrong "
                "or the file is damaged",
                "keystore_password",
            ) from None
        except Exception as exc:  # pyjks raises assorted errors on truncated input
            raise self.error(
                f"is not a readable {store_type.upper()} keystore ({type(exc).__name__}); "
                "the file looks truncated or damaged"
            ) from None
        key_password = self.request.key_password or self.request.keystore_password or ""

        def opener(entry: jks.PrivateKeyEntry) -> KeyOpener:
            def decrypt() -> PrivateKeyTypes:
                try:
                    if not entry.is_decrypted():
                        entry.decrypt(key_password)
                    return serialization.load_der_private_key(entry.pkey_pkcs8, None)
                except jks.util.DecryptionFailureException:
                    raise self.error(
                        f"the key entry {entry.alias!r} cannot be decrypted: set key_password to the "
                        "entry's password (it defaults to the keystore_password)",
                        "key_password",
                    ) from None

            return decrypt

        def chain(entry: jks.PrivateKeyEntry) -> Callable[[], list[x509.Certificate]]:
            return lambda: [x509.load_der_x509_certificate(der) for _type, der in entry.cert_chain]

        return [_Entry(alias, opener(e), store_type, chain(e)) for alias, e in store.private_keys.items()]

    def _read_pem(self) -> list[_Entry]:
        text = self.material
        password = _password_bytes(self.request.keystore_password)
        try:
            loaded = serialization.load_pem_private_key(text, password)
        except TypeError as exc:
            if "encrypted" in str(exc).lower() and password is None:
                problem = "the PEM key is encrypted; set keystore_password to its passphrase"
            else:
                problem = "the PEM key is not encrypted; remove keystore_password"
            raise self.error(problem, "keystore_password") from None
        except ValueError:
            raise self.error(
                "the PEM private key cannot be read: the passphrase in keystore_password is wrong, "
                "or the PEM is damaged or not a private key (a certificate or public key alone cannot sign)",
                "keystore_password",
            ) from None
        except Exception:
            raise self.error("the PEM private key uses an unsupported format or algorithm") from None
        return [_Entry(None, lambda: loaded, "pem", lambda: _pem_certificates(text))]

    def _read_google_json(self) -> list[_Entry]:
        try:
            document = json.loads(self.material)
        except ValueError:
            raise self.error("is not valid JSON (expected a Google service-account key file)") from None
        missing = [k for k in ("private_key", "client_email") if not document.get(k)]
        if not isinstance(document, dict) or missing:
            raise self.error(
                f"is a JSON document without {', '.join(missing) or 'the service-account fields'}; "
                "download a JSON key of the service account from the Google Cloud console"
            )
        try:
            private_key = serialization.load_pem_private_key(document["private_key"].encode(), None)
        except (ValueError, TypeError):
            raise self.error("the private_key inside the service-account JSON cannot be read") from None
        return [
            _Entry(
                None,
                lambda: private_key,
                "google_json",
                issuer=document["client_email"],
                key_id=document.get("private_key_id"),
                token_uri=document.get("token_uri"),
            )
        ]

    # -- entry selection ----------------------------------------------------------------------

    def _select(self, entries: list[_Entry]) -> _Entry:
        """The entry named by key_alias (case-insensitive), or the only one.

        Formats without names (PEM, Google JSON) hold one key, which key_alias does not select.
        """
        if not entries:
            raise self.error("holds no private-key entry; keytool -list shows what it contains")
        if len(entries) == 1 and entries[0].alias is None:
            return entries[0]
        by_alias = {entry.alias or "": entry for entry in entries}
        wanted = self.request.key_alias
        names = ", ".join(sorted(by_alias))
        if wanted is None:
            if len(entries) > 1:
                raise self.error(
                    f"holds several private-key entries ({names}); set key_alias to the one to sign with",
                    "key_alias",
                )
            return entries[0]
        by_folded = {alias.lower(): entry for alias, entry in by_alias.items()}
        found = by_folded.get(wanted.lower())
        if found is None:
            raise self.error(f"has no private-key entry {wanted!r}; its entries are: {names}", "key_alias")
        return found


#: Key material format (as :func:`detect_keystore_type` names it) → the reader that lists its entries.
_READERS: dict[str, Callable[[_KeyLoader], list[_Entry]]] = {
    "pkcs12": _KeyLoader._read_pkcs12,
    "jks": lambda loader: loader._read_java_keystore("jks"),
    "jceks": lambda loader: loader._read_java_keystore("jceks"),
    "pem": _KeyLoader._read_pem,
    "google_json": _KeyLoader._read_google_json,
}


def _import_pyjks(where: str, store_type: str, path: str | None) -> None:
    """Import pyjks (the optional ``[jks]`` extra), or raise the advice to install it or convert the keystore."""
    try:
        import jks  # noqa: F401 -- whether it imports; the caller imports it for use
    except ImportError:
        source = path or "keystore.jks"
        raise KeystoreError(
            f"{where} is a {store_type.upper()} keystore, which needs the optional dependency: "
            "pip install 'airflow-jwt-provider[jks]'. Or convert it to PKCS#12 once (no extra needed): "
            f"keytool -importkeystore -srckeystore {source} -srcstoretype {store_type.upper()} "
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


def _matching_certificate(
    private_key: SigningPrivateKey, certificates: list[x509.Certificate]
) -> x509.Certificate | None:
    """The certificate whose public key is ``private_key``'s (keystores order chains leaf first)."""
    wanted = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for certificate in certificates:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == wanted:
            return certificate
    return None


def _signing_private_key(private_key: PrivateKeyTypes, error: Callable[[str], KeystoreError]) -> SigningPrivateKey:
    """``private_key`` if its type has a JWS algorithm here (RSA, EC, Ed25519); else the error naming those."""
    if isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return private_key
    raise error(f"the key type {type(private_key).__name__} cannot sign a JWT here; use RSA, EC or Ed25519")


def _check_key_strength(key: SigningKey, error: Callable[[str], KeystoreError]) -> None:
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise error(
                f"the RSA key has {private_key.key_size} bits; RFC 7518 requires at least {MIN_RSA_BITS}. "
                "Generate a new key pair (keytool -genkeypair -keyalg RSA -keysize 2048 ...)"
            )
    elif isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name not in ES_CURVES.values():
        raise error(f"the EC key is on curve {private_key.curve.name}; JWS signs with P-256, P-384 or P-521 only")
