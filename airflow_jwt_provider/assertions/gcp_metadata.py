"""``assertion_source: gcp_metadata``: an identity token of the instance's service account, from the metadata server.

On Compute Engine, GKE with Workload Identity Federation, Cloud Run and Cloud Functions, the metadata
server signs an OIDC identity token for the workload's service account for any audience:
``GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity
?audience=AUD&format=full`` with ``Metadata-Flavor: Google``. ``GCE_METADATA_HOST`` names another host,
as Google's client libraries accept (an emulator, a sidecar). The token lives an hour.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

import requests

from airflow_jwt_provider.assertions.base import PlatformSource, SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.exceptions import AssertionSourceError

DEFAULT_HOST = "metadata.google.internal"
HOST_VARIABLE = "GCE_METADATA_HOST"
_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"


@dataclass(frozen=True)
class GcpMetadataSettings:
    audience: str
    prefix: str = "assertion"

    @property
    def source(self) -> str:
        return GCP_METADATA.name

    @property
    def needs_key(self) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.prefix}_source gcp_metadata: the service account's identity token for {self.audience!r}"


class GcpMetadataAssertions(PlatformSource):
    def __init__(self, settings: GcpMetadataSettings, context: SourceContext) -> None:
        super().__init__(context, "gcp_metadata")
        self.settings = settings

    def describe(self) -> str:
        return f"the GCP metadata server's identity token for {self.settings.audience!r}"

    def fetch(self) -> ExternalJwt:
        host = os.environ.get(HOST_VARIABLE) or DEFAULT_HOST
        url = f"http://{host}{_PATH}?audience={quote(self.settings.audience, safe='')}&format=full"
        try:
            response = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=self.context.http.timeout)
        except requests.RequestException as exc:
            raise AssertionSourceError(
                f"the GCP metadata server ({host}) cannot be reached ({type(exc).__name__}): the task does not run on "
                f"Google Cloud (Compute Engine, GKE with Workload Identity, Cloud Run), or {HOST_VARIABLE} is wrong",
                field=self.context.setting("source"),
            ) from None
        if response.status_code != 200:
            raise AssertionSourceError(
                f"the GCP metadata server ({host}) answered HTTP {response.status_code} for an identity token: is "
                "a service account attached to the workload, with Workload Identity enabled on GKE?",
                field=self.context.setting("source"),
            )
        return ExternalJwt.parse(response.text, where=self.describe(), field_name=self.context.setting("source"))

    def check(self, jwt: ExternalJwt) -> None:
        jwt.check_usable(
            where=self.describe(), field_name=self.context.setting("audience"), audience=self.settings.audience
        )


class GcpMetadataSourceType:
    name = "gcp_metadata"
    title = "The GCP metadata server's identity token"
    suffixes = frozenset({"audience"})

    def parse(self, extras: ExtraReader, prefix: str) -> GcpMetadataSettings:
        audience = extras.required_text(
            f"{prefix}_audience",
            "is required with source 'gcp_metadata': the audience of the identity token (what the authorization "
            "server trusts, e.g. its token URL or a workload identity provider)",
        )
        return GcpMetadataSettings(audience, prefix)

    def build(self, settings: GcpMetadataSettings, context: SourceContext) -> GcpMetadataAssertions:
        return GcpMetadataAssertions(settings, context)


GCP_METADATA = GcpMetadataSourceType()
