"""``assertion_source: aws_sts``: a JWT AWS STS signs for the workload's AWS identity (``GetWebIdentityToken``).

IAM outbound identity federation: a role (an EKS pod identity, an EC2 instance profile, an ECS task
role, or credentials an Airflow ``aws`` connection holds) asks STS for a JWT naming it, for an
audience, signed RS256 or ES384; the authorization server trusts the account's issuer and its JWKS.
Credentials, region and endpoint come from the Airflow ``aws`` connection in
``assertion_aws_conn_id`` (default ``aws_default``), through the amazon provider's ``AwsBaseHook``
(the ``[aws]`` extra). The token lives ``lifetime`` seconds (60 to 3600), and is asked for again when it
nears expiry. The caller needs ``sts:GetWebIdentityToken``, and the account must have outbound web
identity federation enabled; STS's global endpoint does not offer the call (a regional one does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_jwt_provider.assertions.base import PlatformSource, SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.exceptions import AssertionSourceError

DEFAULT_AWS_CONN_ID = "aws_default"
ALGORITHMS = ("RS256", "ES384")
INSTALL_HINT = "pip install 'airflow-jwt-provider[aws]'"
_ADVICE = {
    "AccessDenied": "the identity of the aws connection may not call sts:GetWebIdentityToken",
    "AccessDeniedException": "the identity of the aws connection may not call sts:GetWebIdentityToken",
    "OutboundWebIdentityFederationDisabledException": (
        "outbound web identity federation is not enabled for the account (IAM → Account settings)"
    ),
    "SessionDurationEscalationException": "lifetime is longer than the session may grant; lower it",
    "JWTPayloadSizeExceededException": "the token would be too large",
}


@dataclass(frozen=True)
class AwsStsSettings:
    audience: str
    aws_conn_id: str = DEFAULT_AWS_CONN_ID
    signing_algorithm: str = "RS256"
    prefix: str = "assertion"

    @property
    def source(self) -> str:
        return AWS_STS.name

    @property
    def needs_key(self) -> bool:
        return False

    def describe(self) -> str:
        return (
            f"{self.prefix}_source aws_sts: GetWebIdentityToken for {self.audience!r}, {self.signing_algorithm}, "
            f"aws connection {self.aws_conn_id!r}"
        )


class AwsStsAssertions(PlatformSource):
    def __init__(self, settings: AwsStsSettings, context: SourceContext) -> None:
        super().__init__(context, "aws_sts")
        self.settings = settings
        self._client: Any = None

    def describe(self) -> str:
        return f"AWS STS GetWebIdentityToken for {self.settings.audience!r}"

    def _sts(self) -> Any:
        if self._client is None:
            try:
                from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            except ImportError:
                raise AssertionSourceError(
                    f"{self.context.setting('source')} aws_sts needs the optional dependency "
                    f"apache-airflow-providers-amazon: {INSTALL_HINT}",
                    field=self.context.setting("source"),
                ) from None
            self._client = AwsBaseHook(aws_conn_id=self.settings.aws_conn_id, client_type="sts").get_conn()
        return self._client

    def fetch(self) -> ExternalJwt:
        import botocore.exceptions

        lifetime = min(max(self.context.lifetime, 60), 3600)
        try:
            answer = self._sts().get_web_identity_token(
                Audience=[self.settings.audience],
                SigningAlgorithm=self.settings.signing_algorithm,
                DurationSeconds=lifetime,
            )
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Error"))
            advice = _ADVICE.get(code, "see the AWS error code")
            raise AssertionSourceError(
                f"AWS STS refused GetWebIdentityToken ({code}) for aws connection {self.settings.aws_conn_id!r}: "
                f"{advice}",
                field=self.context.setting("aws_conn_id"),
            ) from None
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError):
            raise AssertionSourceError(
                f"aws connection {self.settings.aws_conn_id!r} gives STS no credentials: the connection does not "
                "exist or holds no keys or role, and the default chain (environment, instance or pod identity) "
                "found none; create it, or run where the workload has an AWS identity",
                field=self.context.setting("aws_conn_id"),
            ) from None
        except botocore.exceptions.NoRegionError:
            raise AssertionSourceError(
                f"aws connection {self.settings.aws_conn_id!r} names no region: set region_name in its extra (STS "
                "offers GetWebIdentityToken at regional endpoints only)",
                field=self.context.setting("aws_conn_id"),
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise AssertionSourceError(
                f"AWS STS cannot be reached for GetWebIdentityToken ({type(exc).__name__}) with aws connection "
                f"{self.settings.aws_conn_id!r}: check its region and endpoint (not the global STS endpoint)",
                field=self.context.setting("aws_conn_id"),
            ) from None
        token = answer.get("WebIdentityToken")
        if not isinstance(token, str):
            raise AssertionSourceError(
                "AWS STS answered GetWebIdentityToken without a WebIdentityToken", field=self.context.setting("source")
            )
        return ExternalJwt.parse(token, where=self.describe(), field_name=self.context.setting("source"))

    def check(self, jwt: ExternalJwt) -> None:
        jwt.check_usable(
            where=self.describe(), field_name=self.context.setting("audience"), audience=self.settings.audience
        )


class AwsStsSourceType:
    name = "aws_sts"
    title = "AWS STS GetWebIdentityToken"
    suffixes = frozenset({"audience", "aws_conn_id", "signing_algorithm"})

    def parse(self, extras: ExtraReader, prefix: str) -> AwsStsSettings:
        audience = extras.required_text(
            f"{prefix}_audience",
            "is required with source 'aws_sts': the audience STS puts in the token (what the authorization "
            "server trusts)",
        )
        return AwsStsSettings(
            audience=audience,
            aws_conn_id=extras.text(f"{prefix}_aws_conn_id") or DEFAULT_AWS_CONN_ID,
            signing_algorithm=extras.choice(f"{prefix}_signing_algorithm", ALGORITHMS) or "RS256",
            prefix=prefix,
        )

    def build(self, settings: AwsStsSettings, context: SourceContext) -> AwsStsAssertions:
        return AwsStsAssertions(settings, context)


AWS_STS = AwsStsSourceType()
