"""The ``pkcs11`` signer: the private key stays in a PKCS#11 device (an HSM, a smart card, SoftHSM2).

Registration only (light: python-pkcs11 and the signing code are imported when a key is built).
Its settings: ``pkcs11_module`` (the vendor's library on every worker and the triggerer),
``pkcs11_token_label``, ``key_alias`` (the key's label) or ``pkcs11_key_id`` (its CKA_ID),
``keystore_password`` (the user PIN; Airflow masks that field by name) and optionally
``certificate_file``. Needs the ``[pkcs11]`` extra. How sessions, locks, forks and mechanisms
work: :mod:`.signer`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import BUILTIN_SIGNER_FIELDS
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import KeySelection
from airflow_jwt_provider.signing.signers._device_cache import cached_signer, keyed
from airflow_jwt_provider.signing.signers.base import BuiltKey, DeviceSignerSettings, own_settings

#: Error messages of the signer name the connection's settings, not its constructor's arguments.
FIELD_NAMES: Mapping[str, str] = {
    "module_path": "pkcs11_module",
    "token_label": "pkcs11_token_label",
    "pin": "keystore_password",
    "key_label": "key_alias",
    "key_object_id": "pkcs11_key_id",
}


@dataclass(frozen=True)
class Pkcs11SignerSettings(DeviceSignerSettings):
    """Which device, which token, which key; the PIN is never shown in ``repr``."""

    module: str
    token_label: str
    pin: str = field(repr=False)
    key_object_id: str | None = None
    certificate_file: str | None = None

    @property
    def signer(self) -> str:
        return PKCS11.name

    def describe(self) -> str:
        return f"signer pkcs11, module {self.module!r}, token {self.token_label!r}"


class Pkcs11SignerType:
    """Registration of the ``pkcs11`` signer."""

    name = "pkcs11"
    title = "PKCS#11 device (HSM, smart card)"
    fields = BUILTIN_SIGNER_FIELDS["pkcs11"]
    reads = frozenset({"keystore_password", "certificate_file"})

    def parse(self, extras: ExtraReader, keys: KeySelection) -> Pkcs11SignerSettings:
        module = extras.required_text(
            "pkcs11_module",
            "is required with signer 'pkcs11': the path of the HSM vendor's PKCS#11 library, "
            "e.g. /usr/lib/softhsm/libsofthsm2.so",
        )
        token_label = extras.required_text(
            "pkcs11_token_label", "is required with signer 'pkcs11': the label of the token holding the key"
        )
        key_object_id = extras.text("pkcs11_key_id")
        pin = extras.required_text(
            "keystore_password",
            "(the user PIN of the PKCS#11 token with signer 'pkcs11') is empty; enter the PIN there "
            "(Airflow masks that field in logs, the UI and REST answers)",
        )
        mask_stable_secret(pin)
        if not keys.aliases and key_object_id is None:
            raise extras.error(
                "key_alias",
                "(the PKCS#11 key label) is empty and so is pkcs11_key_id; set the label of the private key "
                "in key_alias, or its CKA_ID in hex in pkcs11_key_id",
            )
        if len(keys.aliases) > 1 and key_object_id is not None:
            raise extras.error(
                "pkcs11_key_id",
                f"selects one key, but key_alias lists {len(keys.aliases)} labels for a rotation; "
                "remove pkcs11_key_id or keep a single label",
            )
        return Pkcs11SignerSettings(module, token_label, pin, key_object_id, extras.text("certificate_file"))

    def build(self, settings: JwtBearerSettings, name: str | None) -> BuiltKey:
        device = own_settings(settings, Pkcs11SignerSettings)

        def build_signer() -> Pkcs11Signer:
            return Pkcs11Signer(
                device.module,
                device.token_label,
                device.pin,
                key_label=name,
                key_object_id=device.key_object_id,
                algorithm=settings.algorithm,
                certificate_file=device.certificate_file,
                field_names=FIELD_NAMES,
            )

        from airflow_jwt_provider.signing.signers.pkcs11.signer import Pkcs11Signer

        signer = cached_signer(
            self.name,
            name,
            device.certificate_file,
            build_signer,
            module=os.path.realpath(os.path.expanduser(device.module)),
            token=device.token_label,
            key_object_id=device.key_object_id,
            pin=keyed(device.pin),
            algorithm=settings.algorithm,
        )
        return BuiltKey(signer, name)


#: The entry point's object (``airflow_jwt_provider.signers`` group, name ``pkcs11``).
PKCS11 = Pkcs11SignerType()
