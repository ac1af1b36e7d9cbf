"""Salesforce: the OAuth 2.0 JWT bearer flow of an external client app (or a connected app made before Spring '26)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import (
    Algorithms,
    CheckedSettings,
    MaxLifetime,
    Required,
    Rule,
    Severity,
    Source,
)

JWT_FLOW = Source(
    "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration",
    "https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm&type=5",
)
GENERATE_TOKEN = Source(
    "Generate the Access Token (Salesforce Developers)",
    "https://developer.salesforce.com/docs/service/messaging-partner/guide/generate-token.html",
)
LOGIN = "https://login.salesforce.com"
TEST = "https://test.salesforce.com"
_TOKEN_PATH = "/services/oauth2/token"


def salesforce_audience(token_url: str, _client_id: str | None = None) -> str:
    """``aud`` for a token URL, as Salesforce documents it, whichever host the token is requested from.

    login.salesforce.com and any My Domain (``acme.my.salesforce.com``) → ``https://login.salesforce.com``;
    test.salesforce.com and a sandbox My Domain (``acme--dev.sandbox.my.salesforce.com``) →
    ``https://test.salesforce.com``; an Experience Cloud site keeps its path
    (``https://acme.my.site.com/customers/services/oauth2/token`` → ``https://acme.my.site.com/customers``).
    """
    parts = urlsplit(token_url)
    host = (parts.hostname or "").lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return TEST
    if host == "login.salesforce.com" or host.endswith(".salesforce.com"):
        return LOGIN
    site_path = parts.path[: -len(_TOKEN_PATH)] if parts.path.endswith(_TOKEN_PATH) else ""
    return f"{parts.scheme}://{parts.netloc}{site_path.rstrip('/')}"


@dataclass(frozen=True)
class DocumentedAudience(Rule):
    """An ``audience`` setting that Salesforce's page does not list: allowed (some orgs need it), with a warning."""

    @property
    def describe(self) -> str:
        return "`audience`, when set, is login.salesforce.com, test.salesforce.com or an Experience Cloud site"

    def problem(self, settings: CheckedSettings) -> str | None:
        audience = settings.audience
        if audience is None or not isinstance(audience, str):
            return None
        host = (urlsplit(audience).hostname or "").lower()
        if audience.rstrip("/") in (LOGIN, TEST) or not host.endswith(".salesforce.com"):
            return None
        return (
            f"is {audience!r}, a Salesforce host the JWT bearer flow page does not list as an audience (it "
            f"lists {LOGIN}, {TEST} and Experience Cloud sites); keep it only if your org's app requires it"
        )


SALESFORCE = Preset(
    name="salesforce",
    title="Salesforce",
    page=JWT_FLOW,
    defaults={"auth_url": f"{LOGIN}{_TOKEN_PATH}"},
    audience=salesforce_audience,
    audience_rule="https://login.salesforce.com for login and My Domain token URLs, https://test.salesforce.com "
    "for test and sandbox My Domains, an Experience Cloud site's URL with its path; `audience` overrides",
    rules=(
        MaxLifetime(
            "salesforce.lifetime",
            "lifetime",
            JWT_FLOW.quoting("exp: The validity must be the expiration time of the assertion within 3 minutes"),
            seconds=180,
        ),
        Required(
            "salesforce.subject",
            "subject",
            GENERATE_TOKEN.quoting("sub: The username of the Salesforce user account"),
            what="the Salesforce username the integration acts as",
        ),
        Algorithms(
            "salesforce.algorithm",
            "algorithm",
            GENERATE_TOKEN.quoting("set the alg header parameter to the RSA256 hash algorithm"),
            allowed=("RS256",),
        ),
        DocumentedAudience(
            "salesforce.audience",
            "audience",
            JWT_FLOW.quoting(
                "aud: https://login.salesforce.com, https://test.salesforce.com, or an Experience Cloud site URL "
                "such as https://site.force.com/customers"
            ),
            Severity.WARN,
        ),
    ),
    register="the certificate, external client app (or connected app made before Spring '26) → OAuth settings → "
    "Use digital signatures",
)
