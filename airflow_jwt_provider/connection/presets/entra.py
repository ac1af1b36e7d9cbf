"""Microsoft Entra ID: client credentials with a certificate (a client assertion, RFC 7523 §2.2), and on-behalf-of."""

from __future__ import annotations

from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import (
    Algorithms,
    Required,
    ScopeSuffix,
    Severity,
    Source,
    UrlShape,
)

CERTIFICATE_CREDENTIALS = Source(
    "Microsoft identity platform application authentication certificate credentials",
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials",
)
CLIENT_CREDENTIALS = Source(
    "Microsoft identity platform and the OAuth 2.0 client credentials flow",
    "https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow"
    "#second-case-access-token-request-with-a-certificate",
)
SCOPE = CLIENT_CREDENTIALS.quoting(
    "scope: the resource identifier (application ID URI) of the resource you want, affixed with the .default suffix"
)
#: Entra's token endpoints in the public, US government and China clouds.
TOKEN_URL_PATTERN = (
    r"https://(login\.microsoftonline\.com|login\.microsoftonline\.us|login\.partner\.microsoftonline\.cn|"
    r"login\.chinacloudapi\.cn)/[^/]+/oauth2/v2\.0/token"
)

ENTRA = Preset(
    name="entra",
    title="Microsoft Entra ID",
    page=CLIENT_CREDENTIALS,
    # The JWT is a *client* assertion; the on-behalf-of flow (a user's token handed in) switches the grant.
    # PS256 with x5t#S256 is what the current page asks for; RS256 (the earlier page) still works when set.
    # x5t (SHA-1) goes along for tenants registered by older tools.
    defaults={"client_auth": "private_key_jwt", "x5t": True, "algorithm": "PS256"},
    grant_type=GrantType.CLIENT_CREDENTIALS,
    rules=(
        Required(
            "entra.login",
            "login",
            CLIENT_CREDENTIALS.quoting("client_id: Required. The application (client) ID that's assigned to your app."),
            what="the application (client) id: Entra wants it in the request and as the assertion's iss and sub",
        ),
        Required("entra.scope", "scope", SCOPE, what='"https://graph.microsoft.com/.default"'),
        ScopeSuffix("entra.scope_default", "scope", SCOPE, Severity.WARN, suffix="/.default"),
        UrlShape(
            "entra.auth_url",
            "auth_url",
            CERTIFICATE_CREDENTIALS.quoting("aud: https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token"),
            Severity.WARN,
            pattern=TOKEN_URL_PATTERN,
            shape="https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token (the v2 endpoint of your tenant)",
        ),
        Algorithms(
            "entra.algorithm",
            "algorithm",
            CERTIFICATE_CREDENTIALS.quoting("alg: Should be PS256"),
            allowed=("PS256", "RS256"),
        ),
    ),
    register="the certificate, app registration → Certificates & secrets",
)
