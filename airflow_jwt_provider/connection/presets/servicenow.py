"""ServiceNow: an inbound OAuth JWT bearer grant (Machine Identity Console on Zurich and later)."""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import Algorithms, Required, Severity, Source

CONFIGURE_GRANT = Source(
    "Configure an OAuth JSON web token bearer grant",
    "https://www.servicenow.com/docs/r/zurich/platform-security/authentication/configure-an-oauth-jwt-bearer-grant.html",
    "The supported algorithms for JSON Web Token (JWT): RS256, RS384, RS512, ES256, ES384, ES512, HS256, HS384, "
    "and HS512.",
)
JWT_ENDPOINT = Source(
    "Create an OAuth JWT API endpoint for external clients",
    "https://www.servicenow.com/docs/r/platform-security/authentication/create-jwt-endpoint.html",
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


SERVICENOW = Preset(
    name="servicenow",
    title="ServiceNow",
    page=CONFIGURE_GRANT,
    audience=lambda _token_url, client_id: client_id or "",
    audience_rule="the client id (the task pages; the concept page says 'ServiceNow token endpoint')",
    auth_url_from_host=lambda api_base_url: f"{_origin(api_base_url)}/oauth_token.do",
    rules=(
        Required(
            "servicenow.subject",
            "subject",
            JWT_ENDPOINT.quoting("sub: Must be a user identifier, such as the user's mail"),
            what="the user the token acts for, as the grant's User field matches it (e.g. the e-mail)",
        ),
        Algorithms(
            "servicenow.algorithm",
            "algorithm",
            CONFIGURE_GRANT,
            allowed=("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"),
        ),
        Required(
            "servicenow.client_secret",
            "password",
            JWT_ENDPOINT.quoting(
                "If the JWT client is a public client, such as the Mobile SDK, then you can omit the client_id and "
                "client_secret parameters from the request."
            ),
            Severity.WARN,
            what="the OAuth application's client secret; ServiceNow accepts none only for a public client",
        ),
        Required(
            "servicenow.key_id",
            "key_id",
            None,
            Severity.WARN,
            what="the Kid of the JWT verifier map, when the grant looks the certificate up by kid",
        ),
    ),
    register="the certificate, as an X.509 Certificate record of the JWT verifier map (Key Id = `key_id`); on "
    "Zurich and later Machine Identity Console → Inbound integrations → JWT bearer grant, which also takes a JWKS "
    "URL (`airflow jwt-bearer export --format jwks`)",
)
