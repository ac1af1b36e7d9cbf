"""What the connection's key signs: the grant's assertion, the client assertion and an actor token, claim by claim.

RFC 7523 §3 to the letter:

* every assertion carries ``sub``: the subject the call or the connection names, else the issuer (a
  client acting for itself, RFC 7523 §3 item 2.B), except where a vendor documents otherwise (Google's
  service accounts name a subject only for domain-wide delegation; DocuSign's application tokens carry
  none), which the preset says;
* a client assertion (§2.2) has ``iss`` = ``sub`` = the client id, and ``aud`` the authorization
  server's issuer identifier when it is known, as draft-ietf-oauth-rfc7523bis asks (``auth_issuer``;
  ``client_assertion_audience`` keeps the token endpoint, or sends both, for servers that predate it),
  with the ``typ`` header ``client-authentication+jwt`` the draft defines when asked for.
"""

from __future__ import annotations

from airflow_jwt_provider.connection.kinds import ClientAssertionAudience
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.signing.assertion import AssertionMinter

#: A client assertion (private_key_jwt) never needs to live longer than this.
MAX_CLIENT_ASSERTION_LIFETIME = 300
#: The ``typ`` header of a client assertion (draft-ietf-oauth-rfc7523bis §4).
CLIENT_ASSERTION_TYP = "client-authentication+jwt"


class ConnectionMinter:
    """Mints the connection's JWTs with its key: claims from the settings, the call and the preset.

    :param issuer: ``iss`` of grant assertions (``issuer``, else the key's, else the client id).
    :param client_id: the client id (Login, else the key's issuer).
    :param token_url: the token endpoint (the default ``aud``).
    """

    def __init__(
        self,
        settings: JwtBearerSettings,
        minter: AssertionMinter,
        *,
        issuer: str,
        client_id: str | None,
        token_url: str,
    ) -> None:
        self.settings = settings
        self.minter = minter
        self.issuer = issuer
        self.client_id = client_id
        self.token_url = token_url

    def audience(self, override: str | tuple[str, ...] | None = None) -> str | tuple[str, ...]:
        """``aud``: the override, the setting, the preset's rule, else the token URL (RFC 7523 §3)."""
        if override:
            return override
        if self.settings.audience:
            return self.settings.audience
        if self.settings.preset is not None:
            return self.settings.preset.audience_for(self.token_url, self.client_id)
        return self.token_url

    def subject(self, params: TokenParameters = DEFAULT_TOKEN) -> str | None:
        """``sub``: the call's, the connection's, else the issuer (unless the vendor wants none by default)."""
        if params.subject is not None:
            return params.subject
        if self.settings.subject is not None:
            return self.settings.subject
        preset = self.settings.preset
        if preset is not None and not preset.subject_defaults_to_issuer:
            return None
        return self.issuer

    def assertion(self, params: TokenParameters = DEFAULT_TOKEN, audience: str | tuple[str, ...] | None = None) -> str:
        """A new signed grant assertion; ``params`` and ``audience`` override the connection's settings."""
        claims = {**self.settings.claims, **params.claims_copy()}
        scope = params.scope or self.settings.scope
        if self.settings.scope_in_assertion and scope:
            claims["scope"] = scope
        return self.minter.mint(
            issuer=self.issuer,
            audience=self.audience(audience),
            subject=self.subject(params),
            lifetime=self.settings.lifetime,
            claims=claims,
            not_before=self.settings.nbf,
        )

    def client_assertion(self) -> str:
        """RFC 7523 §2.2: ``iss`` = ``sub`` = the client id; ``aud`` per draft-ietf-oauth-rfc7523bis."""
        client_id = self.client_id or self.issuer
        return self.minter.mint(
            issuer=client_id,
            subject=client_id,
            audience=self.client_assertion_audience(),
            lifetime=min(self.settings.lifetime, MAX_CLIENT_ASSERTION_LIFETIME),
            typ=CLIENT_ASSERTION_TYP if self.settings.client_assertion.typ else None,
        )

    def client_assertion_audience(self) -> str | tuple[str, ...]:
        chosen = self.settings.client_assertion
        issuer = chosen.issuer
        if chosen.audience is ClientAssertionAudience.ISSUER and issuer:
            return issuer
        if chosen.audience is ClientAssertionAudience.BOTH and issuer:
            return (issuer, self.token_url)
        return self.token_url

    def actor_token(self, params: TokenParameters = DEFAULT_TOKEN) -> str:
        """An actor token (RFC 8693 §2.1) signed with the key: the client, acting for the subject token's subject."""
        client_id = self.client_id or self.issuer
        return self.minter.mint(
            issuer=client_id,
            subject=client_id,
            audience=self.audience(),
            lifetime=min(self.settings.lifetime, MAX_CLIENT_ASSERTION_LIFETIME),
        )
