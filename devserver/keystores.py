"""Test keystores, generated at run time.

Nothing here is committed to the repository: certificates expire, and a committed private key
is a committed secret. Tests and the demo call these functions to write fresh keystores into a
temporary directory instead.

Keystores are made with the JDK's ``keytool`` on purpose: our client must read the files that
real users hand it, and those come out of ``keytool``. Two facts about Java 17 that shaped this
module (both checked by ``tests/devserver/test_keystores.py``):

* ``keytool -genkeypair`` writes **PKCS#12** when no ``-storetype`` is given, whatever the file
  is called (``x.jks`` included). :func:`make_keystore` therefore reports the type it finds in
  the file's first bytes, not the one the name suggests.
* keytool stores aliases in lower case in PKCS#12, JKS and JCEKS alike, so
  :attr:`Keystore.aliases` holds the lower-cased names while :attr:`Keystore.alias` keeps the
  spelling that was asked for (a user may well type ``MyKey`` in a connection form).

A JVM start costs about half a second, so each store takes one ``keytool -genkeypair`` per key
entry plus a single ``keytool -exportcert``; nothing else.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = [
    "CertificateValidity",
    "Keystore",
    "KeytoolError",
    "detect_store_type",
    "have_keytool",
    "make_google_service_account_json",
    "make_keystore",
    "make_keystore_with_fallback",
    "make_pem_key",
]

#: Store types :func:`make_keystore` can ask keytool for.
KEYTOOL_STORE_TYPES = ("pkcs12", "jks", "jceks")
#: Curves keytool (``-groupname``) and JOSE (ES256/384/512) both know.
EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_SUFFIXES = {None: ".jks", "pkcs12": ".p12", "jks": ".jks", "jceks": ".jceks"}
_CRYPTOGRAPHY_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
# Passwords reach keytool through the environment (``-storepass:env``), not the command line,
# so they do not show up in ``ps`` output or in the error message of a failed call.
_STOREPASS_ENV = "DEVSERVER_KEYTOOL_STOREPASS"
_KEYPASS_ENV = "DEVSERVER_KEYTOOL_KEYPASS"
_KEYTOOL_TIMEOUT_S = 120

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeytoolError(RuntimeError):
    """keytool exited with an error; the message carries its output (never a password)."""


@dataclass(frozen=True)
class CertificateValidity:
    """When one entry's self-signed certificate is valid: what a key rotation test needs.

    :param days: how long the certificate is valid (keytool ``-validity``).
    :param starts_in_days: when its validity starts, relative to now (keytool ``-startdate``);
        negative for a certificate issued in the past, so that ``starts_in_days=-40, days=30``
        is a certificate that expired ten days ago.
    """

    days: int
    starts_in_days: int = 0


@dataclass(frozen=True)
class Keystore:
    """What a test needs to know about a generated key file.

    ``alias`` is the spelling given to keytool; ``aliases`` lists every private-key entry as the
    store actually holds it (keytool lower-cases them), the primary alias first. PEM files and
    Google JSON key files have no aliases: ``alias`` is ``""`` for PEM, and the
    ``private_key_id`` for Google (it is what a client puts in the ``kid`` header).
    """

    path: Path
    store_type: str
    store_password: str | None = field(repr=False)
    key_password: str | None = field(repr=False)
    alias: str
    key_algorithm: str
    certificate_pem: str
    aliases: tuple[str, ...] = field(default=())
    #: The certificate of every private-key entry, by lower-cased alias (PEM); the primary's is
    #: :attr:`certificate_pem`.
    certificates: Mapping[str, str] = field(default_factory=dict)

    def certificate(self) -> x509.Certificate:
        """The certificate as a cryptography object."""
        return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))

    def certificate_pem_of(self, alias: str) -> str:
        """The PEM certificate of entry ``alias`` (any case), to register that key with a server."""
        return self.certificates[alias.lower()]

    def public_key_pem(self) -> str:
        """The SubjectPublicKeyInfo PEM of the certificate's key.

        Servers are often configured with the public key rather than the certificate; taking it
        from the certificate (not from the private key) checks what a server would be given.
        """
        return (
            self.certificate()
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def certificate_thumbprint(self, algorithm: str = "sha256") -> str:
        """base64url (no padding) digest of the DER certificate: ``x5t#S256`` or (``sha1``) ``x5t``.

        Lets a test compare the thumbprint a client puts in its JWS header with one computed
        independently of the client's code.
        """
        der = self.certificate().public_bytes(serialization.Encoding.DER)
        digest = hashlib.new(algorithm, der).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def have_keytool() -> bool:
    """Whether a ``keytool`` executable is on PATH (the demo must also run without Java)."""
    return shutil.which("keytool") is not None


def make_keystore(
    directory: str | os.PathLike[str],
    name: str,
    *,
    store_type: str | None = None,
    key_algorithm: str = "RSA",
    key_size: int = 2048,
    curve: str | None = None,
    alias: str = "signing",
    store_password: str = "changeit",
    key_password: str | None = None,
    validity_days: int = 365,
    extra_aliases: Iterable[str] = (),
    validity: Mapping[str, CertificateValidity] | None = None,
) -> Keystore:
    """Generate a keystore with keytool: one private key + self-signed certificate per alias.

    ``store_type=None`` lets keytool choose (PKCS#12 on Java 9+); the returned
    :attr:`Keystore.store_type` is read back from the file. ``name`` without a suffix gets one
    from the store type (``.p12``, ``.jks``, ``.jceks``; ``.jks`` too when the type is left to
    keytool, as users of old guides name their files, so ``make_keystore(d, "legacy")`` shows
    what Java really writes into a ``.jks`` file). A name with a suffix is used as is. An
    existing file of that name is replaced.

    ``key_password`` differing from ``store_password`` is only possible for JKS and JCEKS:
    for PKCS#12 keytool prints a warning and silently uses the store password for the key, so
    such a request is refused here with :class:`ValueError` rather than producing a store that
    does not match its description. keytool also refuses passwords shorter than 6 characters.

    ``extra_aliases`` adds further private-key entries (each its own key of the same algorithm),
    to exercise a client's alias selection. ``validity`` gives an entry (by alias, any case)
    its own certificate validity instead of ``validity_days`` from now: several keys expiring
    at different times, or an expired one, as during a key rotation. Every entry's certificate
    is exported (:attr:`Keystore.certificates`; one more JVM start per extra alias).
    """
    store_type = _normalise_store_type(store_type)
    algorithm = _normalise_algorithm(key_algorithm)
    curve = _normalise_curve(algorithm, curve)
    extras = tuple(extra_aliases)
    _check_passwords(store_type, store_password, key_password, extras, alias)
    per_alias = {name.lower(): value for name, value in (validity or {}).items()}
    unknown = sorted(set(per_alias) - {a.lower() for a in (alias, *extras)})
    if unknown:
        raise ValueError(f"validity names aliases the store does not have: {', '.join(unknown)}")
    path = _target_path(directory, name, store_type)
    if not have_keytool():
        raise KeytoolError("keytool is not on PATH; use make_keystore_with_fallback() or install a JRE")

    env = dict(os.environ)
    env[_STOREPASS_ENV] = store_password
    # JKS/JCEKS prompt for a key password when -keypass is missing; PKCS#12 ignores it with a
    # warning. So pass it exactly when the store type keeps a separate key password.
    effective_type = store_type or "pkcs12"
    if effective_type in ("jks", "jceks"):
        env[_KEYPASS_ENV] = key_password if key_password is not None else store_password

    for entry_alias in (alias, *extras):
        entry_validity = per_alias.get(entry_alias.lower(), CertificateValidity(validity_days))
        args = [
            "-genkeypair",
            "-keystore",
            str(path),
            "-alias",
            entry_alias,
            "-keyalg",
            algorithm,
            "-dname",
            f"CN={_escape_dn(entry_alias)}, O=airflow-jwt-provider tests",
            "-validity",
            str(entry_validity.days),
            "-storepass:env",
            _STOREPASS_ENV,
        ]
        if entry_validity.starts_in_days:
            args += ["-startdate", f"{entry_validity.starts_in_days:+d}d"]
        if algorithm == "RSA":
            args += ["-keysize", str(key_size)]
        elif algorithm == "EC":
            args += ["-groupname", curve or "secp256r1"]
        if store_type is not None:
            args += ["-storetype", store_type.upper()]
        if _KEYPASS_ENV in env:
            args += ["-keypass:env", _KEYPASS_ENV]
        _run_keytool(args, env)

    certificates = {
        entry_alias.lower(): _export_certificate(path, entry_alias, store_type, env) for entry_alias in (alias, *extras)
    }
    return Keystore(
        path=path,
        store_type=detect_store_type(path),
        store_password=store_password,
        key_password=key_password,
        alias=alias,
        key_algorithm=algorithm,
        certificate_pem=certificates[alias.lower()],
        aliases=tuple(a.lower() for a in (alias, *extras)),
        certificates=certificates,
    )


def _export_certificate(path: Path, alias: str, store_type: str | None, env: dict[str, str]) -> str:
    """The PEM certificate of entry ``alias``, as ``keytool -exportcert -rfc`` prints it."""
    export = ["-exportcert", "-rfc", "-keystore", str(path), "-alias", alias, "-storepass:env", _STOREPASS_ENV]
    if store_type is not None:
        export += ["-storetype", store_type.upper()]
    output = _run_keytool(export, env)
    begin = output.find("-----BEGIN CERTIFICATE-----")
    if begin < 0:
        raise KeytoolError(f"keytool -exportcert printed no certificate:\n{output}")
    return output[begin:].strip() + "\n"


def make_keystore_with_fallback(directory: str | os.PathLike[str], name: str, **kw: object) -> Keystore:
    """:func:`make_keystore` when keytool exists, else an equivalent PKCS#12 from cryptography.

    The demo has to run on machines without Java. The fallback writes what keytool would have
    written by default: a PKCS#12 with one key entry whose friendlyName is the lower-cased
    alias, a self-signed certificate, and the store password protecting both. It cannot write
    JKS/JCEKS nor several key entries (cryptography serialises a single key), and asking for
    those without keytool raises :class:`ValueError` instead of quietly returning something else.
    """
    if have_keytool():
        return make_keystore(directory, name, **kw)  # type: ignore[arg-type]
    return _make_pkcs12_with_cryptography(directory, name, **kw)  # type: ignore[arg-type]


def make_pem_key(
    directory: str | os.PathLike[str],
    name: str,
    *,
    key_algorithm: str = "RSA",
    curve: str | None = None,
    passphrase: str | None = None,
    pkcs1: bool = False,
    with_certificate: bool = True,
    key_size: int = 2048,
    validity_days: int = 365,
) -> Keystore:
    """Write a PEM private key (and, by default, its self-signed certificate after it).

    PKCS#8 (``BEGIN PRIVATE KEY`` / ``BEGIN ENCRYPTED PRIVATE KEY``) by default; ``pkcs1=True``
    writes the traditional OpenSSL ``BEGIN RSA PRIVATE KEY`` form (with ``Proc-Type``/``DEK-Info``
    headers when encrypted) that older tools and many service consoles still hand out. The
    certificate is always generated and kept in :attr:`Keystore.certificate_pem`, so a server
    can be registered with it even when the file holds the key alone.
    """
    algorithm = _normalise_algorithm(key_algorithm)
    curve = _normalise_curve(algorithm, curve)
    if pkcs1 and algorithm != "RSA":
        raise ValueError("PKCS#1 ('BEGIN RSA PRIVATE KEY') exists for RSA keys only")
    key = _generate_private_key(algorithm, key_size, curve)
    certificate = self_signed_certificate(key, name, validity_days, curve)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    private_format = serialization.PrivateFormat.TraditionalOpenSSL if pkcs1 else serialization.PrivateFormat.PKCS8
    key_pem = key.private_bytes(serialization.Encoding.PEM, private_format, encryption).decode("ascii")
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    path = _target_path(directory, name, None, default_suffix=".pem")
    path.write_text(key_pem + (certificate_pem if with_certificate else ""), encoding="ascii")
    path.chmod(0o600)
    return Keystore(
        path=path,
        store_type="pem",
        store_password=passphrase,
        key_password=None,
        alias="",
        key_algorithm=algorithm,
        certificate_pem=certificate_pem,
        aliases=(),
    )


def make_google_service_account_json(
    directory: str | os.PathLike[str],
    name: str,
    *,
    client_email: str = "svc@project.iam.gserviceaccount.com",
    token_uri: str,
) -> tuple[Path, Keystore]:
    """Write a Google Cloud service-account key file for a fresh RSA key.

    Same fields as the JSON the Google console downloads, with ``token_uri`` pointing wherever
    the test wants (the local server), because clients are expected to post their assertion to
    ``token_uri`` and to use it as the ``aud`` claim. The returned :class:`Keystore` describes
    the key's certificate (Google publishes one per key at ``client_x509_cert_url``); its
    ``alias`` is the ``private_key_id``, which clients send as ``kid``.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = self_signed_certificate(key, client_email, 365, None)
    private_key_id = secrets.token_hex(20)
    project_id = client_email.split("@", 1)[1].split(".", 1)[0] if "@" in client_email else "project"
    document = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": private_key_id,
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        "client_email": client_email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email),
        "universe_domain": "googleapis.com",
    }
    path = _target_path(directory, name, None, default_suffix=".json")
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    keystore = Keystore(
        path=path,
        store_type="google_json",
        store_password=None,
        key_password=None,
        alias=private_key_id,
        key_algorithm="RSA",
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        aliases=(private_key_id,),
        certificates={private_key_id: certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")},
    )
    return path, keystore


def detect_store_type(path: str | os.PathLike[str]) -> str:
    """Tell a keystore's format from its first bytes, since its file name proves nothing.

    JKS starts with ``FEEDFEED``, JCEKS with ``CECECECE``, PKCS#12 with a DER SEQUENCE (``0x30``).
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"\xfe\xed\xfe\xed":
        return "jks"
    if head == b"\xce\xce\xce\xce":
        return "jceks"
    if head[:1] == b"\x30":
        return "pkcs12"
    raise ValueError(f"{path}: not a JKS, JCEKS or PKCS#12 keystore (starts with {head.hex()})")


# --------------------------------------------------------------------------- internals


def _run_keytool(args: list[str], env: dict[str, str]) -> str:
    """Run keytool non-interactively; return stdout, raise :class:`KeytoolError` on failure.

    stdin is closed so a prompt (a missing password) fails instead of hanging the test run, and
    ``user.language=en`` keeps messages stable for the error text.
    """
    keytool = shutil.which("keytool")
    if keytool is None:
        raise KeytoolError("keytool is not on PATH")
    command = [keytool, "-J-Duser.language=en", "-noprompt", *args]
    completed = subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_KEYTOOL_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise KeytoolError(f"keytool {args[0]} failed (exit {completed.returncode}): {output}")
    return completed.stdout


def _escape_dn(value: str) -> str:
    """Escape an RFC 4514 attribute value, so an alias like ``a,b`` cannot break ``-dname``."""
    return "".join("\\" + ch if ch in ',+="\\<>;#' else ch for ch in value)


def _normalise_store_type(store_type: str | None) -> str | None:
    if store_type is None:
        return None
    lowered = store_type.lower().replace("#", "")
    if lowered == "p12":
        lowered = "pkcs12"
    if lowered not in KEYTOOL_STORE_TYPES:
        raise ValueError(f"store_type must be one of {KEYTOOL_STORE_TYPES} or None, not {store_type!r}")
    return lowered


def _normalise_algorithm(key_algorithm: str) -> str:
    canonical = {"rsa": "RSA", "ec": "EC", "ecdsa": "EC", "ed25519": "Ed25519"}
    try:
        return canonical[key_algorithm.lower()]
    except KeyError:
        raise ValueError(f"key_algorithm must be RSA, EC or Ed25519, not {key_algorithm!r}") from None


def _normalise_curve(algorithm: str, curve: str | None) -> str | None:
    if algorithm != "EC":
        if curve is not None:
            raise ValueError(f"curve applies to EC keys only, not {algorithm}")
        return None
    curve = (curve or "secp256r1").lower()
    aliases = {"p-256": "secp256r1", "p-384": "secp384r1", "p-521": "secp521r1"}
    curve = aliases.get(curve, curve)
    if curve not in EC_CURVES:
        raise ValueError(f"curve must be one of {EC_CURVES}, not {curve!r}")
    return curve


def _check_passwords(
    store_type: str | None,
    store_password: str,
    key_password: str | None,
    extras: tuple[str, ...],
    alias: str,
) -> None:
    if len(store_password) < 6:
        raise ValueError("keytool refuses store passwords shorter than 6 characters")
    if key_password is not None and len(key_password) < 6:
        raise ValueError("keytool refuses key passwords shorter than 6 characters")
    if (store_type or "pkcs12") == "pkcs12" and key_password not in (None, store_password):
        raise ValueError(
            "PKCS#12 keystores made by keytool use the store password for every key "
            "(keytool ignores -keypass with a warning); use store_type='jks' or 'jceks' "
            "for a separate key password"
        )
    lowered = [a.lower() for a in (alias, *extras)]
    if len(set(lowered)) != len(lowered):
        raise ValueError("aliases must be distinct, ignoring case (keytool lower-cases them)")


def _target_path(
    directory: str | os.PathLike[str], name: str, store_type: str | None, default_suffix: str | None = None
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.suffix:
        path = path.with_name(path.name + (default_suffix or _SUFFIXES[store_type]))
    # keytool would add an entry to an existing store; every call here means a fresh one.
    path.unlink(missing_ok=True)
    return path


def _generate_private_key(algorithm: str, key_size: int, curve: str | None) -> PrivateKey:
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if algorithm == "EC":
        return ec.generate_private_key(_CRYPTOGRAPHY_CURVES[curve or "secp256r1"]())
    return ed25519.Ed25519PrivateKey.generate()


def self_signed_certificate(
    key: PrivateKey,
    common_name: str,
    validity_days: int,
    curve: str | None,
    starts_in_days: int = 0,
    organization: str | None = "airflow-jwt-provider tests",
) -> x509.Certificate:
    """A minimal self-signed certificate, as keytool would make (backdated a minute for skew)."""
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(names)
    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=starts_in_days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(minutes=1))
        .not_valid_after(start + datetime.timedelta(days=validity_days))
    )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm: hashes.HashAlgorithm | None = None
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = _CURVE_HASHES[curve or "secp256r1"]()
    else:
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm)


def _make_pkcs12_with_cryptography(
    directory: str | os.PathLike[str],
    name: str,
    *,
    store_type: str | None = None,
    key_algorithm: str = "RSA",
    key_size: int = 2048,
    curve: str | None = None,
    alias: str = "signing",
    store_password: str = "changeit",
    key_password: str | None = None,
    validity_days: int = 365,
    extra_aliases: Iterable[str] = (),
    validity: Mapping[str, CertificateValidity] | None = None,
) -> Keystore:
    """Write the PKCS#12 keytool would have written, without Java (see make_keystore_with_fallback)."""
    store_type = _normalise_store_type(store_type)
    if store_type not in (None, "pkcs12"):
        raise ValueError(f"writing a {store_type.upper()} keystore needs keytool, which is not on PATH")
    extras = tuple(extra_aliases)
    if extras:
        raise ValueError("several key entries in one store need keytool (cryptography writes one key)")
    algorithm = _normalise_algorithm(key_algorithm)
    curve = _normalise_curve(algorithm, curve)
    _check_passwords(store_type, store_password, key_password, extras, alias)
    unknown = sorted({name.lower() for name in validity or {}} - {alias.lower()})
    if unknown:
        raise ValueError(f"validity names aliases the store does not have: {', '.join(unknown)}")
    own = {name.lower(): value for name, value in (validity or {}).items()}.get(
        alias.lower(), CertificateValidity(validity_days)
    )
    key = _generate_private_key(algorithm, key_size, curve)
    certificate = self_signed_certificate(key, alias, own.days, curve, own.starts_in_days)
    data = pkcs12.serialize_key_and_certificates(
        alias.lower().encode("utf-8"),
        key,
        certificate,
        None,
        serialization.BestAvailableEncryption(store_password.encode("utf-8")),
    )
    path = _target_path(directory, name, store_type)
    path.write_bytes(data)
    path.chmod(0o600)
    return Keystore(
        path=path,
        store_type="pkcs12",
        store_password=store_password,
        key_password=key_password,
        alias=alias,
        key_algorithm=algorithm,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        aliases=(alias.lower(),),
        certificates={alias.lower(): certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")},
    )
