"""The ``local`` signer (the default): a key file or an inline key, loaded and used on the worker.

Registration only (light: the signing code is imported when a key is built). Its settings:
``key_file`` or ``private_key`` (the material), ``keystore_type`` (normally detected),
``keystore_password`` (store password or PEM passphrase) and ``key_password`` (a JKS/JCEKS
entry's own password). Keys are cached per process by content
(:data:`~airflow_jwt_provider.signing.key_files.loader.KEY_CACHE`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import BUILTIN_SIGNER_FIELDS
from airflow_jwt_provider.connection.kinds import KeystoreType
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import KeySelection
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.key_files.source import KeyRequest, KeySource
from airflow_jwt_provider.signing.signers.base import BuiltKey, own_settings


@dataclass(frozen=True)
class LocalSignerSettings:
    """The key material and the secrets that open it (never shown in ``repr``)."""

    source: KeySource
    keystore_type: KeystoreType | None = None
    keystore_password: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)

    @property
    def signer(self) -> str:
        return LOCAL.name

    @property
    def key_field(self) -> str:
        return self.source.field_name

    @property
    def names_token_endpoint(self) -> bool:
        return self.keystore_type is KeystoreType.GOOGLE_JSON

    def describe(self) -> str:
        where = f"key_file {self.source.path!r}" if self.source.path else "the inline private_key"
        return f"signer local, {where}"

    def key_request(self, alias: str | None) -> KeyRequest:
        """What opens entry ``alias`` of the material."""
        return KeyRequest(self.source, self.keystore_type, self.keystore_password, alias, self.key_password)


class LocalSignerType:
    """Registration of the ``local`` signer."""

    name = "local"
    title = "Key file or inline key"
    fields = BUILTIN_SIGNER_FIELDS["local"]
    reads = frozenset({"keystore_password"})

    def parse(self, extras: ExtraReader, keys: KeySelection) -> LocalSignerSettings:
        source = _key_source(extras)
        settings = LocalSignerSettings(
            source=source,
            keystore_type=extras.member("keystore_type", KeystoreType),
            keystore_password=extras.text("keystore_password"),
            key_password=extras.text("key_password"),
        )
        for secret in (settings.keystore_password, settings.key_password, source.inline):
            mask_stable_secret(secret)
        return settings

    def build(self, settings: JwtBearerSettings, name: str | None) -> BuiltKey:
        from airflow_jwt_provider.signing.key_files.loader import load_signing_key
        from airflow_jwt_provider.signing.signers.local.signer import LocalKeySigner

        local = own_settings(settings, LocalSignerSettings)
        key = load_signing_key(local.key_request(name))
        if key.alias is None and len(settings.key_aliases) > 1:
            raise JwtBearerConfigError(
                f"key_alias lists {len(settings.key_aliases)} keys, but the {key.store_type.value} key material holds "
                "one key without aliases; rotating keys takes a keystore with one entry per key (keytool -genkeypair "
                "-alias NAME), or a single key_alias",
                field="key_alias",
            )
        return BuiltKey(
            LocalKeySigner(key, settings.algorithm), key.alias or name, issuer=key.issuer, token_uri=key.token_uri
        )


def _key_source(extras: ExtraReader) -> KeySource:
    path = extras.text("key_file")
    inline = extras.raw("private_key")
    if inline is not None and not isinstance(inline, str):
        if isinstance(inline, Mapping):  # a service-account JSON pasted as an object
            inline = json.dumps(inline)
        else:
            raise extras.error("private_key", "must be text: PEM, base64 keystore bytes or JSON")
    if path and inline:
        raise extras.error("key_file", "and private_key are both set; keep only one key source")
    if not path and not inline:
        raise extras.error(
            "key_file",
            "is not set and neither is private_key; give the path of the keystore or PEM key "
            "in key_file, or paste the key material into private_key",
        )
    return KeySource(path=path) if path else KeySource(inline=inline)


#: The entry point's object (``airflow_jwt_provider.signers`` group, name ``local``).
LOCAL = LocalSignerType()
