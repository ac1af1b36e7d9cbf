"""Signer settings as a typed union: one settings type per signer, parsed by the signer's own registration.

``signer`` names a registration in the ``airflow_jwt_provider.signers`` entry-point group
(:data:`SIGNERS`). The connection layer needs three things of it, listed by
:class:`SignerRegistration`: the extra keys only this signer reads (its form fields), the
shared signer settings it reads (``keystore_password``, ``certificate_file``, ``signer_options``),
and a ``parse`` that turns those into its own frozen settings object. Building the signer from
those settings is the signing layer's business
(:class:`~airflow_jwt_provider.signing.signers.base.SignerType` adds ``build``).

What every signer shares (which key: ``key_alias``; its ``kid``; the JWS ``algorithm``) stays
on :class:`~airflow_jwt_provider.connection.settings.JwtBearerSettings` and is handed to
``parse`` as :class:`KeySelection`, so a signer can check it (a PKCS#11 key id with a
rotation list makes no sense) without parsing it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from airflow_jwt_provider.common.registry import SIGNER_GROUP, Registry
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import BUILTIN_SIGNERS, ExtraField


@dataclass(frozen=True)
class KeySelection:
    """Which key signs, as every signer names it.

    :param aliases: ``key_alias``: the keystore alias, PKCS#11 label, KMS key id...; several during a
        rotation (the first usable one signs).
    :param key_id: the ``kid`` header (the first of ``key_ids`` when one per key is given).
    :param key_ids: one ``kid`` per entry of ``aliases``, when the connection gives a list.
    """

    aliases: tuple[str, ...] = ()
    key_id: str | None = None
    key_ids: tuple[str, ...] = ()


@runtime_checkable
class SignerSettings(Protocol):
    """The settings of one signer (a frozen dataclass of the signer's module).

    * ``signer``: the registered name of the signer these settings are for.
    * ``key_field``: the setting that selects the key, named by errors about the key itself.
    * ``names_token_endpoint``: the key material itself names the token endpoint and the issuer
      (a Google service-account key), so ``auth_url`` and Login may stay empty.
    * ``describe()``: one line for ``airflow jwt-bearer check`` (never a secret).
    """

    @property
    def signer(self) -> str: ...

    @property
    def key_field(self) -> str: ...

    @property
    def names_token_endpoint(self) -> bool: ...

    def describe(self) -> str: ...


@runtime_checkable
class SignerRegistration(Protocol):
    """What a signer registers for the connection layer (its entry point's object).

    * ``name``: the ``signer`` value (the entry point's name).
    * ``title``: how the form and ``check`` call it (``PKCS#11 device``).
    * ``fields``: the extra keys only this signer reads, with their form labels and descriptions (a
      built-in signer's are declared with the form; another package's signer reads ``signer_options``
      and declares none, or declares keys that connections then set in their Extra JSON).
    * ``reads``: the shared signer settings it reads (``keystore_password``, ``certificate_file``,
      ``signer_options``); a shared one it does not list is refused with this signer.
    * ``parse(extras, keys)``: its settings, or a :class:`JwtBearerConfigError` naming the key at fault.
    """

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def fields(self) -> Sequence[ExtraField]: ...

    @property
    def reads(self) -> frozenset[str]: ...

    def parse(self, extras: ExtraReader, keys: KeySelection) -> SignerSettings: ...


#: The default ``signer``.
DEFAULT_SIGNER = "local"

#: Every installed signer, the provider's own ones first.
SIGNERS: Registry[SignerRegistration] = Registry(
    SIGNER_GROUP,
    "signer",
    lambda registration: isinstance(registration, SignerRegistration),
    preferred=BUILTIN_SIGNERS,
)
