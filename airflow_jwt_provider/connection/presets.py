"""Vendor profiles: defaults and mandatory settings of each vendor's JWT bearer flow.

A preset fills what the vendor fixes (the token URL, how the client authenticates, where
the scope goes) and checks what the vendor requires (a subject, a claim, a lifetime cap)
*before* any request, so that a misconfiguration is reported by name instead of as a
vendor's terse ``invalid_grant``. Each preset links the vendor page it follows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_jwt_provider.connection.kinds import GrantType

#: Makes the error for (setting, problem): the parser's, which names the connection. (Typed as a plain
#: exception: the provider info reads the preset names while Airflow itself imports, so no Airflow here.)
ErrorFactory = Callable[[str, str], Exception]


class CheckedSettings(Protocol):
    """The settings a preset's rules read (a :class:`~.settings.JwtBearerSettings` has them all)."""

    @property
    def lifetime(self) -> int: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def scope(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def client_secret(self) -> str | None: ...
    @property
    def claims(self) -> Mapping[str, Any]: ...


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _host(url: str) -> str:
    return urlsplit(url).netloc


@dataclass(frozen=True)
class Preset:
    """A vendor profile.

    :param defaults: extra keys filled in when the connection leaves them unset.
    :param audience: derives the ``aud`` claim from (token URL, client id) when the
        connection sets no ``audience``; ``None`` means the token URL itself (RFC 7523).
    :param auth_url_from_host: derives the token URL from the connection's host (ServiceNow
        instances each have their own).
    """

    name: str
    title: str
    doc_url: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    grant_type: GrantType = GrantType.JWT_BEARER
    max_lifetime: int | None = None
    subject_required: str | None = None
    scope_required: str | None = None
    scope_in_assertion: bool = False
    key_id_required: str | None = None
    client_secret_required: bool = False
    required_claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    audience: Callable[[str, str | None], str] | None = None
    auth_url_from_host: Callable[[str], str] | None = None

    def check(self, settings: CheckedSettings, error: ErrorFactory) -> None:
        """Raise, through ``error(field, problem)``, the first vendor rule ``settings`` breaks."""
        where = f"with preset {self.name!r} ({self.title}, see {self.doc_url})"
        if self.max_lifetime is not None and settings.lifetime > self.max_lifetime:
            raise error(
                "lifetime",
                f"is {settings.lifetime} s but {self.title} accepts at most {self.max_lifetime} s; lower it {where}",
            )
        if self.subject_required and not settings.subject:
            raise error("subject", f"is required {where}: set it to {self.subject_required}")
        if self.scope_required and not settings.scope:
            raise error("scope", f"is required {where}: e.g. {self.scope_required}")
        if self.key_id_required and not settings.key_id:
            raise error("key_id", f"is required {where}: set it to {self.key_id_required}")
        if self.client_secret_required and not settings.client_secret:
            raise error("password", f"(the client secret) is required {where}")
        for claim, allowed in self.required_claims.items():
            value = settings.claims.get(claim)
            if value is None:
                raise error(
                    f"claims.{claim}",
                    f"is required {where}: add it to the claims object, one of {', '.join(allowed)}",
                )
            if value not in allowed:
                raise error(f"claims.{claim}", f"is {value!r} but {self.title} accepts {', '.join(allowed)} ({where})")

    def audience_for(self, token_url: str, client_id: str | None) -> str:
        return self.audience(token_url, client_id) if self.audience else token_url


BOX = Preset(
    name="box",
    title="Box",
    doc_url="https://developer.box.com/guides/authentication/jwt/without-sdk/",
    defaults={"auth_url": "https://api.box.com/oauth2/token", "client_auth": "client_secret_post"},
    max_lifetime=60,
    subject_required="the enterprise id (box_sub_type enterprise) or the app user id (box_sub_type user)",
    client_secret_required=True,
    required_claims={"box_sub_type": ("enterprise", "user")},
)

SALESFORCE = Preset(
    name="salesforce",
    title="Salesforce",
    doc_url="https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm",
    defaults={"auth_url": "https://login.salesforce.com/services/oauth2/token"},
    max_lifetime=180,
    subject_required="the Salesforce username the integration acts as",
    # aud is the login host (https://login.salesforce.com or https://test.salesforce.com).
    audience=lambda token_url, _client_id: _origin(token_url),
)

GOOGLE = Preset(
    name="google",
    title="Google service account",
    doc_url="https://developers.google.com/identity/protocols/oauth2/service-account#httprest",
    # The token endpoint comes from the key file's token_uri (https://oauth2.googleapis.com/token).
    defaults={"keystore_type": "google_json"},
    max_lifetime=3600,
    scope_required='"https://www.googleapis.com/auth/cloud-platform"',
    scope_in_assertion=True,
)

DOCUSIGN = Preset(
    name="docusign",
    title="DocuSign",
    doc_url="https://developers.docusign.com/platform/auth/jwt-get-token/",
    defaults={"auth_url": "https://account-d.docusign.com/oauth/token"},
    max_lifetime=3600,
    subject_required="the user id (GUID) of the user to impersonate",
    scope_required='"signature impersonation"',
    scope_in_assertion=True,
    # aud is the account server's host name without scheme: account-d.docusign.com
    audience=lambda token_url, _client_id: _host(token_url),
)

SERVICENOW = Preset(
    name="servicenow",
    title="ServiceNow",
    doc_url=(
        "https://www.servicenow.com/docs/r/platform-security/authentication/configure-an-oauth-jwt-bearer-grant.html"
    ),
    defaults={},
    subject_required="the user the token acts for (matched by the profile's User field, e.g. email)",
    key_id_required="the Key Id of the JWT Verifier Map that holds the certificate",
    # The OAuth JWT API endpoint expects aud (and iss) to equal the client id.
    audience=lambda _token_url, client_id: client_id or "",
    auth_url_from_host=lambda api_base_url: f"{_origin(api_base_url)}/oauth_token.do",
)

ENTRA = Preset(
    name="entra",
    title="Microsoft Entra ID",
    doc_url=(
        "https://learn.microsoft.com/en-us/entra/identity-platform/"
        "v2-oauth2-client-creds-grant-flow#second-case-access-token-request-with-a-certificate"
    ),
    # Client credentials with a certificate: the JWT is a *client* assertion (RFC 7523 §2.2).
    # The on-behalf-of flow (a user's token handed in as `assertion`) switches the grant.
    defaults={"client_auth": "private_key_jwt", "x5t": True},
    grant_type=GrantType.CLIENT_CREDENTIALS,
    scope_required='"https://graph.microsoft.com/.default"',
)

PRESETS: dict[str, Preset] = {p.name: p for p in (BOX, SALESFORCE, GOOGLE, DOCUSIGN, SERVICENOW, ENTRA)}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` (case-insensitive) or raise ``KeyError`` with advice."""
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise KeyError(f"is {name!r}; use one of: {', '.join(PRESETS)}") from None
