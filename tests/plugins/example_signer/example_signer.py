"""``signer: env_key``: a signer that another package registers with airflow-jwt-provider.

The private key is a PEM in an environment variable (as a secrets operator or a CI system
injects it), named in the connection's ``signer_options``::

    {"signer": "env_key", "signer_options": {"variable": "ORDERS_SIGNING_KEY"}, ...}

Everything a plugin needs is here: a settings type (what ``parse`` returns), a :class:`Signer`
(``algorithm``, ``key_id``, ``certificate``, ``public_key``, ``sign``), and the registration
object (``name``, ``title``, ``fields``, ``reads``, ``parse``, ``build``) named by the entry point
``env_key = "example_signer:SIGNER"`` in the ``airflow_jwt_provider.signers`` group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import KeySelection
from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.signing.jws import SigningPublicKey, choose_algorithm, ecdsa_der_to_jws, hash_for
from airflow_jwt_provider.signing.signers.base import BuiltKey, own_settings


@dataclass(frozen=True)
class EnvKeySettings:
    """Which environment variable holds the PEM."""

    variable: str

    @property
    def signer(self) -> str:
        return SIGNER.name

    @property
    def key_field(self) -> str:
        return "signer_options"

    @property
    def names_token_endpoint(self) -> bool:
        return False

    def describe(self) -> str:
        return f"signer env_key, the PEM key in ${self.variable}"


class EnvKeySigner:
    """Signs RS256/384/512 or ES256/384/512 with a key held in this process."""

    def __init__(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str | None) -> None:
        self._key = private_key
        self._algorithm = choose_algorithm(private_key.public_key(), algorithm, key_field="signer_options")
        if self._algorithm.startswith("PS"):
            raise KeystoreError("signer env_key signs RS* and ES* only", field="algorithm")

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def key_id(self) -> str | None:
        return None

    @property
    def certificate(self) -> x509.Certificate | None:
        return None

    @property
    def public_key(self) -> SigningPublicKey:
        return self._key.public_key()

    def sign(self, signing_input: bytes) -> bytes:
        hash_algorithm = hash_for(self._algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(signing_input, padding.PKCS1v15(), hash_algorithm)
        der = self._key.sign(signing_input, ec.ECDSA(hash_algorithm))
        return ecdsa_der_to_jws(der, self._key.curve.key_size)

    def key_holder_secret(self) -> bytes:
        """What the shared token cache seals with: a digest of the private key."""
        der = self._key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"env-key:" + der)
        return digest.finalize()


class EnvKeySignerType:
    """The registration: parses ``signer_options`` and builds the signer."""

    name = "env_key"
    title = "Key in an environment variable (example plugin)"
    fields = ()
    reads = frozenset({"signer_options"})

    def parse(self, extras: ExtraReader, keys: KeySelection) -> EnvKeySettings:
        options = extras.json_object("signer_options")
        variable = options.get("variable")
        if not isinstance(variable, str) or not variable.strip():
            raise extras.error(
                "signer_options",
                'needs "variable" with signer env_key: the environment variable that holds the PEM private key',
            )
        return EnvKeySettings(variable.strip())

    def build(self, settings: JwtBearerSettings, name: str | None) -> BuiltKey:
        options = own_settings(settings, EnvKeySettings)
        pem = os.environ.get(options.variable)
        if not pem:
            raise KeystoreError(
                f"signer_options.variable {options.variable!r} is not set in this process's environment; "
                "set it on every worker and the triggerer",
                field="signer_options",
            )
        try:
            key = serialization.load_pem_private_key(pem.encode(), None)
        except (ValueError, TypeError):
            raise KeystoreError(
                f"${options.variable} does not hold an unencrypted PEM private key", field="signer_options"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeystoreError(f"${options.variable} holds a key that is neither RSA nor EC", field="signer_options")
        return BuiltKey(EnvKeySigner(key, settings.algorithm), name)


SIGNER = EnvKeySignerType()
