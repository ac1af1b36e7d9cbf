"""A real PKCS#11 token for tests and demos: SoftHSM2, initialised at run time.

Nothing is committed: each run writes its own ``softhsm2.conf`` and token directory into a
folder it is given, initialises a token with ``softhsm2-util --init-token`` (as an HSM
administrator would) and generates key pairs *inside* the token with python-pkcs11, the
private halves marked sensitive and non-extractable, as a production HSM key would be.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised (``C_Initialize``), once
per process: :meth:`SoftHsm.activate` sets it in ``os.environ`` and must run before the first
use of the library in the process. A process that needs another configuration (another
mechanism set, another token directory) has to be a new process: :meth:`SoftHsm.env`.

The certificate story: the private key never leaves the token, so a certificate for it is
issued the way an enterprise PKI issues one for an HSM key: a certificate authority (here a
throw-away CA key made with ``cryptography`` for the session) signs a certificate for the
*exported public key*. That certificate can be stored on the token as a certificate object
(same ``CKA_ID`` and label as the key, as ``pkcs11-tool`` and most HSM tools do) or handed
out as a file. The authorization server verifies assertions with the public key or that
certificate (:attr:`HsmKey.public_key_pem`, :attr:`HsmKey.certificate_pem`).

``python -m devserver.hsm DIR`` creates a token with the default keys in ``DIR`` and prints a
JSON description (module path, conf file, token label, PINs, keys) for scripts and demos.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devserver.certificates import TestCa

__all__ = [
    "DEFAULT_KEYS",
    "HsmKey",
    "KeySpec",
    "SoftHsm",
    "SoftHsmError",
    "create_softhsm",
    "find_softhsm_module",
    "have_softhsm",
]

#: Where Debian's ``softhsm2`` package puts the PKCS#11 module (the first is a symlink to the second).
SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
_CURVE_OIDS = {"secp256r1": "secp256r1", "secp384r1": "secp384r1", "secp521r1": "secp521r1"}
_SOFTHSM_UTIL_TIMEOUT_S = 60


class SoftHsmError(RuntimeError):
    """SoftHSM2 is missing or ``softhsm2-util`` failed (the message never carries a PIN)."""


@dataclass(frozen=True)
class KeySpec:
    """A key pair to generate in the token.

    :param label: ``CKA_LABEL`` of both halves (and of the certificate object, if any).
    :param object_id: ``CKA_ID`` in hex; several keys may share a label but not an id.
    :param key_type: ``RSA`` or ``EC``.
    :param size: RSA modulus bits (``RSA``) — ignored for EC.
    :param curve: ``secp256r1``/``secp384r1``/``secp521r1`` (``EC``).
    :param certificate_object: also store a CA-issued certificate for the key on the token.
    """

    label: str
    object_id: str
    key_type: str = "RSA"
    size: int = 2048
    curve: str = "secp256r1"
    certificate_object: bool = False


#: What the tests use: an RSA key with a certificate object, EC P-256 and P-384 keys without,
#: and two EC keys that share a label (to exercise selection by id).
DEFAULT_KEYS: tuple[KeySpec, ...] = (
    KeySpec("rsa-signing", "01", "RSA", 2048, certificate_object=True),
    KeySpec("ec-signing", "02", "EC", curve="secp256r1"),
    KeySpec("ec384-signing", "03", "EC", curve="secp384r1"),
    KeySpec("shared-label", "0a", "EC", curve="secp256r1"),
    KeySpec("shared-label", "0b", "EC", curve="secp256r1"),
)


@dataclass(frozen=True)
class HsmKey:
    """A key pair generated in the token: what a client and an authorization server need to know."""

    label: str
    object_id: str
    key_type: str
    public_key_pem: str
    #: The CA-issued certificate of the key (always made; stored on the token only if asked).
    certificate_pem: str
    certificate_object: bool

    @property
    def public_key(self) -> Any:
        return serialization.load_pem_public_key(self.public_key_pem.encode("ascii"))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))

    def write_certificate(self, path: Path, *, der: bool = False) -> Path:
        """Write the certificate to ``path`` (PEM, or DER) for a ``certificate_file`` setting."""
        certificate = self.certificate
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        path.write_bytes(certificate.public_bytes(encoding))
        return path


@dataclass(frozen=True)
class SoftHsm:
    """An initialised SoftHSM2 token in its own directory."""

    directory: Path
    conf_path: Path
    module_path: str
    token_label: str
    user_pin: str = field(repr=False)
    so_pin: str = field(repr=False)
    keys: Mapping[tuple[str, str], HsmKey] = field(default_factory=dict)
    ca_certificate_pem: str = ""

    def key(self, label: str, object_id: str | None = None) -> HsmKey:
        """The key with ``label`` (and ``object_id`` when the label is shared)."""
        matches = [k for (lbl, oid), k in self.keys.items() if lbl == label and object_id in (None, oid)]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} keys match label {label!r} id {object_id!r}")
        return matches[0]

    def env(self, base: Mapping[str, str] | None = None, *, conf_path: Path | None = None) -> dict[str, str]:
        """An environment for a child process that uses this token (optionally another conf file)."""
        env = dict(os.environ if base is None else base)
        env["SOFTHSM2_CONF"] = str(conf_path or self.conf_path)
        return env

    def activate(self) -> None:
        """Point this process's SoftHSM2 at the token (before the library is first initialised)."""
        os.environ["SOFTHSM2_CONF"] = str(self.conf_path)

    def write_conf(self, name: str, *, disabled_mechanisms: Iterable[str] = ()) -> Path:
        """Another conf file on the same token directory, hiding ``disabled_mechanisms`` (``CKM_…`` names).

        SoftHSM2's ``slots.mechanisms`` hides mechanisms from the token, as a more limited HSM
        would lack them; the conf only takes effect in a process that starts with it.
        """
        disabled = list(disabled_mechanisms)
        # SoftHSM2 2.6.1 skips the first name after the minus sign: an unknown placeholder goes
        # first (unknown names are ignored).
        mechanisms = "-CKM_PLACEHOLDER," + ",".join(disabled) if disabled else "ALL"
        path = self.directory / name
        path.write_text(_conf_text(self.directory / "tokens", mechanisms))
        return path

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (includes the PINs: a test token's, meant for scripts)."""
        return {
            "module_path": self.module_path,
            "conf_path": str(self.conf_path),
            "token_label": self.token_label,
            "user_pin": self.user_pin,
            "so_pin": self.so_pin,
            "keys": [
                {
                    "label": k.label,
                    "object_id": k.object_id,
                    "key_type": k.key_type,
                    "certificate_object": k.certificate_object,
                    "public_key_pem": k.public_key_pem,
                    "certificate_pem": k.certificate_pem,
                }
                for k in self.keys.values()
            ],
        }


def find_softhsm_module() -> str | None:
    """The SoftHSM2 PKCS#11 module on this machine, or ``None``."""
    override = os.environ.get("SOFTHSM2_MODULE")
    for candidate in ((override,) if override else ()) + SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return os.path.realpath(candidate)  # one spelling: PKCS#11 libraries are loaded once per path
    return None


def have_softhsm() -> bool:
    """Whether ``softhsm2-util`` and the module are installed (Debian: ``softhsm2``)."""
    return shutil.which("softhsm2-util") is not None and find_softhsm_module() is not None


def _conf_text(token_dir: Path, mechanisms: str = "ALL") -> str:
    return (
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        f"slots.mechanisms = {mechanisms}\n"
        "library.reset_on_fork = false\n"
    )


def create_softhsm(
    directory: Path,
    *,
    token_label: str = "jwt-signing",
    user_pin: str = "4321-user",
    so_pin: str = "8765-officer",
    keys: Iterable[KeySpec] = DEFAULT_KEYS,
    activate: bool = True,
) -> SoftHsm:
    """Initialise a token in ``directory`` and generate ``keys`` in it.

    With ``activate`` (the default) ``SOFTHSM2_CONF`` is set in this process, which then
    generates the keys through python-pkcs11 (so the library is initialised here with this
    conf). Without it, key generation runs in a child process and this one stays untouched.
    """
    if not have_softhsm():
        raise SoftHsmError(
            "SoftHSM2 is not installed (softhsm2-util and libsofthsm2.so); run scripts/install-system-deps "
            "or apt-get install softhsm2"
        )
    module_path = find_softhsm_module()
    assert module_path is not None
    directory = Path(directory)
    token_dir = directory / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True)
    conf_path = directory / "softhsm2.conf"
    conf_path.write_text(_conf_text(token_dir))
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    # The PINs go on softhsm2-util's command line (it has no other way to take them without a
    # terminal); they are a throw-away test token's, and kept out of any error message.
    result = subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            token_label,
            "--so-pin",
            so_pin,
            "--pin",
            user_pin,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=_SOFTHSM_UTIL_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(user_pin, "***").replace(so_pin, "***")
        raise SoftHsmError(f"softhsm2-util --init-token failed ({result.returncode}): {output.strip()}")

    ca = TestCa.create("devserver test HSM CA")
    specs = list(keys)
    if activate:
        os.environ["SOFTHSM2_CONF"] = str(conf_path)
        public_pems = _generate_keys(module_path, token_label, user_pin, specs, ca)
    else:
        public_pems = _generate_keys_in_child(env, module_path, token_label, user_pin, specs, ca)
    hsm_keys = {}
    for spec, (public_pem, certificate_pem) in zip(specs, public_pems, strict=True):
        hsm_keys[(spec.label, spec.object_id)] = HsmKey(
            label=spec.label,
            object_id=spec.object_id,
            key_type=spec.key_type,
            public_key_pem=public_pem,
            certificate_pem=certificate_pem,
            certificate_object=spec.certificate_object,
        )
    return SoftHsm(
        directory=directory,
        conf_path=conf_path,
        module_path=module_path,
        token_label=token_label,
        user_pin=user_pin,
        so_pin=so_pin,
        keys=hsm_keys,
        ca_certificate_pem=ca.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def _generate_keys(
    module_path: str,
    token_label: str,
    user_pin: str,
    specs: list[KeySpec],
    ca: TestCa,
) -> list[tuple[str, str]]:
    """Generate the key pairs in the token; return (public key PEM, certificate PEM) per key."""
    import pkcs11
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    from airflow_jwt_provider.signing.signers.pkcs11._objects import public_key_from_token_object

    # Private halves as a production HSM keeps them: never readable, never exportable.
    private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True}
    results: list[tuple[str, str]] = []
    token = pkcs11.lib(module_path).get_token(token_label=token_label)
    with token.open(rw=True, user_pin=user_pin) as session:
        for spec in specs:
            object_id = bytes.fromhex(spec.object_id)
            if spec.key_type == "RSA":
                public, _private = session.generate_keypair(
                    KeyType.RSA,
                    spec.size,
                    id=object_id,
                    label=spec.label,
                    store=True,
                    private_template=private_template,
                )
            elif spec.key_type == "EC":
                parameters = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[spec.curve])},
                    local=True,
                )
                public, _private = parameters.generate_keypair(
                    id=object_id, label=spec.label, store=True, private_template=private_template
                )
            else:
                raise ValueError(f"unsupported key type {spec.key_type!r}")
            public_key = public_key_from_token_object(public)
            certificate = ca.issue(public_key, f"hsm key {spec.label}")
            if spec.certificate_object:
                session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.CERTIFICATE,
                        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                        Attribute.TOKEN: True,
                        Attribute.ID: object_id,
                        Attribute.LABEL: spec.label,
                        Attribute.SUBJECT: certificate.subject.public_bytes(),
                        Attribute.ISSUER: certificate.issuer.public_bytes(),
                        Attribute.SERIAL_NUMBER: certificate.serial_number.to_bytes(20, "big").lstrip(b"\0"),
                        Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                    }
                )
            public_pem = public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii")
            results.append((public_pem, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")))
    return results


def _generate_keys_in_child(
    env: dict[str, str],
    module_path: str,
    token_label: str,
    user_pin: str,
    specs: list[KeySpec],
    ca: TestCa,
) -> list[tuple[str, str]]:
    request = {
        "module_path": module_path,
        "token_label": token_label,
        "user_pin": user_pin,
        "specs": [spec.__dict__ for spec in specs],
        "ca_key": ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        "ca_certificate": ca.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "devserver.hsm", "--generate-from-stdin"],
        input=json.dumps(request),
        env=env,
        capture_output=True,
        text=True,
        timeout=_SOFTHSM_UTIL_TIMEOUT_S,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if result.returncode != 0:
        raise SoftHsmError(f"key generation failed: {result.stderr.replace(user_pin, '***').strip()[-2000:]}")
    return [tuple(pair) for pair in json.loads(result.stdout)]  # type: ignore[misc]


def _generate_from_stdin() -> None:
    request = json.loads(sys.stdin.read())
    ca_key = serialization.load_pem_private_key(request["ca_key"].encode("ascii"), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_certificate = x509.load_pem_x509_certificate(request["ca_certificate"].encode("ascii"))
    specs = [KeySpec(**spec) for spec in request["specs"]]
    ca = TestCa(key=ca_key, certificate=ca_certificate)
    pairs = _generate_keys(request["module_path"], request["token_label"], request["user_pin"], specs, ca)
    print(json.dumps(pairs))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--generate-from-stdin"]:
        _generate_from_stdin()
        return 0
    if len(args) != 1:
        print("usage: python -m devserver.hsm DIR  (creates a SoftHSM2 token with test keys in DIR)", file=sys.stderr)
        return 2
    hsm = create_softhsm(Path(args[0]), activate=False)
    print(json.dumps(hsm.describe(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
