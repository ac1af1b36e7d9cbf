"""DocuSign: JWT grant for a user (eSignature, impersonation) or for the application itself (Admin API)."""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import (
    Absent,
    Algorithms,
    MaxLifetime,
    Required,
    Rule,
    ScopeContains,
    Severity,
    Source,
)

JWT_GRANT = Source(
    "How to get an access token with JWT Grant",
    "https://developers.docusign.com/platform/auth/jwt-get-token/",
)
IMPERSONATE = JWT_GRANT.quoting(
    "the integration obtains permission to impersonate (act as) a specific user on a long-term basis"
)
SCOPE = JWT_GRANT.quoting("scope: signature impersonation")
APPLICATION_TOKENS = Source(
    "Application-access tokens",
    "https://developers.docusign.com/docs/admin-api/admin101/application-auth/",
    "When you create the JWT token, do not set the sub (subject) claim in the JWT body.",
)
SDK = Source(
    "Docusign eSignature Python SDK, ApiClient.request_jwt_user_token",
    "https://github.com/docusign/docusign-esign-python-client",
    "jwt.encode(payload=claim, key=private_key_bytes, algorithm='RS256')",
)
_DEMO_TOKEN_URL = "https://account-d.docusign.com/oauth/token"


def _host(token_url: str, _client_id: str | None = None) -> str:
    return urlsplit(token_url).netloc


def _docusign(name: str, title: str, rules: tuple[Rule, ...], *, subject_defaults_to_issuer: bool = True) -> Preset:
    """What both DocuSign presets share: the account server, where the scope goes, how ``aud`` is spelled."""
    return Preset(
        name=name,
        title=title,
        page=JWT_GRANT,
        rules=rules,
        # demo; production: https://account.docusign.com/oauth/token
        defaults={"auth_url": _DEMO_TOKEN_URL},
        scope_in_assertion=True,
        audience=_host,
        audience_rule="the account server's host name without scheme (account-d.docusign.com, account.docusign.com)",
        subject_defaults_to_issuer=subject_defaults_to_issuer,
        register="the RSA public key (PEM) of the integration key, Apps and Keys → Add RSA Keypair (or upload)",
    )


DOCUSIGN = _docusign(
    "docusign",
    "DocuSign",
    (
        Required("docusign.subject", "subject", IMPERSONATE, what="the user id (GUID) of the user to impersonate"),
        Required("docusign.scope", "scope", SCOPE, what='"signature impersonation"'),
        ScopeContains("docusign.impersonation", "scope", SCOPE, Severity.WARN, scope_value="impersonation"),
        MaxLifetime("docusign.lifetime", "lifetime", None, Severity.WARN, seconds=3600),
        Algorithms("docusign.algorithm", "algorithm", SDK, allowed=("RS256",)),
    ),
)

DOCUSIGN_APPLICATION = _docusign(
    "docusign_application",
    "DocuSign application-access token (Admin API)",
    (
        Absent(
            "docusign_application.subject",
            "subject",
            APPLICATION_TOKENS,
            why="an application-access token's assertion carries no sub (use preset docusign to act as a user)",
        ),
        Required(
            "docusign_application.scope",
            "scope",
            APPLICATION_TOKENS.quoting("Application-access tokens can be used only for Docusign Admin API endpoints."),
            Severity.WARN,
            what='the Admin API scopes, e.g. "organization_read user_read"',
        ),
        MaxLifetime("docusign_application.lifetime", "lifetime", None, Severity.WARN, seconds=3600),
        Algorithms("docusign_application.algorithm", "algorithm", SDK, allowed=("RS256",)),
    ),
    subject_defaults_to_issuer=False,
)
