"""The ``aws_kms`` signer: the private key is an AWS KMS asymmetric key and never leaves KMS.

Registration only (light: boto3 and the signing code are imported when a key is built). Its
settings: ``key_alias`` (the key id, ARN or ``alias/...``), ``aws_conn_id`` (an Airflow ``aws``
connection: credentials, region, endpoint; default ``aws_default``) and optionally
``certificate_file``. Needs the ``[aws]`` extra. What it calls and why: :mod:`.signer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import BUILTIN_SIGNER_FIELDS
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import KeySelection
from airflow_jwt_provider.signing.signers._device_cache import cached_signer
from airflow_jwt_provider.signing.signers.base import BuiltKey, DeviceSignerSettings, own_settings

DEFAULT_AWS_CONN_ID = "aws_default"
#: Error messages of the signer name the connection's settings, not its constructor's arguments.
FIELD_NAMES: Mapping[str, str] = {"kms_key_id": "key_alias", "aws_conn_id": "aws_conn_id"}


@dataclass(frozen=True)
class AwsKmsSignerSettings(DeviceSignerSettings):
    """Which AWS connection reaches KMS, and the certificate of the key (KMS holds none)."""

    aws_conn_id: str = DEFAULT_AWS_CONN_ID
    certificate_file: str | None = None

    @property
    def signer(self) -> str:
        return AWS_KMS.name

    def describe(self) -> str:
        return f"signer aws_kms, aws connection {self.aws_conn_id!r}"


class AwsKmsSignerType:
    """Registration of the ``aws_kms`` signer."""

    name = "aws_kms"
    title = "AWS KMS key"
    fields = BUILTIN_SIGNER_FIELDS["aws_kms"]
    reads = frozenset({"certificate_file"})

    def parse(self, extras: ExtraReader, keys: KeySelection) -> AwsKmsSignerSettings:
        if not keys.aliases:
            raise extras.error(
                "key_alias",
                "(the KMS key) is required with signer 'aws_kms': the key id, key ARN or alias name "
                "(alias/...) of an asymmetric SIGN_VERIFY key",
            )
        return AwsKmsSignerSettings(
            aws_conn_id=extras.text("aws_conn_id") or DEFAULT_AWS_CONN_ID,
            certificate_file=extras.text("certificate_file"),
        )

    def build(self, settings: JwtBearerSettings, name: str | None) -> BuiltKey:
        kms = own_settings(settings, AwsKmsSignerSettings)
        from airflow_jwt_provider.signing.signers.aws_kms.signer import AwsKmsSigner

        def build_signer() -> AwsKmsSigner:
            return AwsKmsSigner(
                name or "",
                aws_conn_id=kms.aws_conn_id,
                algorithm=settings.algorithm,
                certificate_file=kms.certificate_file,
                field_names=FIELD_NAMES,
            )

        signer = cached_signer(
            self.name,
            name,
            kms.certificate_file,
            build_signer,
            aws_conn_id=kms.aws_conn_id,
            algorithm=settings.algorithm,
        )
        return BuiltKey(signer, name)


#: The entry point's object (``airflow_jwt_provider.signers`` group, name ``aws_kms``).
AWS_KMS = AwsKmsSignerType()
