"""Credentials for one connection: mint assertions, fetch tokens, cache and refresh them.

Plays the role of google-auth's ``Credentials``: the hook builds one from the validated
settings and the signing key, and everything that needs a token (the ``AuthBase`` on a
session, operators, the trigger through a thread) asks it, never the token endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import requests

from airflow_jwt_provider.access_token import AccessToken
from airflow_jwt_provider.assertion import AssertionSigner
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.keys import SigningKey
from airflow_jwt_provider.secrets import mask_secret_value
from airflow_jwt_provider.settings import (
    CLIENT_CREDENTIALS_GRANT,
    JWT_BEARER_GRANT,
    RESERVED_CLAIMS,
    JwtBearerSettings,
)
from airflow_jwt_provider.token_cache import TOKEN_CACHE, TokenCache, cache_key
from airflow_jwt_provider.token_client import ClientAuthentication, HttpSettings, TokenClient

#: Microsoft's on-behalf-of flow marks the jwt-bearer request with this parameter.
ON_BEHALF_OF_PARAMS = {"requested_token_use": "on_behalf_of"}
#: A client assertion (private_key_jwt) never needs to live longer than this.
MAX_CLIENT_ASSERTION_LIFETIME = 300


class JwtBearerCredentials:
    """Obtains access tokens for one ``jwt_bearer`` connection.

    :param settings: the connection's validated settings.
    :param key: the signing key they designate.
    :param cache: where tokens are shared; the process-wide cache by default.
    :param session: the ``requests`` session used for token requests.
    """

    def __init__(
        self,
        settings: JwtBearerSettings,
        key: SigningKey,
        *,
        cache: TokenCache = TOKEN_CACHE,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.key = key
        self.cache = cache
        token_url = settings.auth_url or key.token_uri
        if token_url is None:
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: auth_url is not set and the key material names no "
                "token endpoint; set the auth_url extra",
                field="auth_url",
            )
        self.token_url = token_url
        issuer = settings.issuer or key.issuer or settings.client_id
        if issuer is None:  # settings guarantee one unless a JSON key was expected to supply it
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: the issuer is unknown; set Login (client id) or issuer",
                field="issuer",
            )
        self.issuer = issuer
        self.client_id = settings.client_id or key.issuer
        self.signer = AssertionSigner.for_key(
            key, algorithm=settings.algorithm, key_id=settings.key_id, x5t=settings.x5t
        )
        self.client = TokenClient(
            token_url,
            ClientAuthentication(
                method=settings.client_auth,
                client_id=self.client_id,
                client_secret=settings.client_secret,
                client_assertion=self.mint_client_assertion,
            ),
            HttpSettings(timeout=settings.timeout, verify=settings.verify, proxies=settings.proxies),
            session=session,
        )

    def __repr__(self) -> str:
        return f"JwtBearerCredentials(conn_id={self.settings.conn_id!r}, token_url={self.token_url!r})"

    # -- assertions -------------------------------------------------------------------------

    def audience(self, override: str | tuple[str, ...] | None = None) -> str | tuple[str, ...]:
        """``aud``: the override, the setting, the preset's rule, else the token URL (RFC 7523 §3)."""
        if override:
            return override
        if self.settings.audience:
            return self.settings.audience
        if self.settings.preset is not None:
            return self.settings.preset.audience_for(self.token_url, self.client_id)
        return self.token_url

    def mint_assertion(
        self,
        subject: str | None = None,
        claims: Mapping[str, Any] | None = None,
        audience: str | tuple[str, ...] | None = None,
        scope: str | None = None,
    ) -> str:
        """A new signed assertion; ``subject``/``claims``/``audience`` override the connection's."""
        merged = {**self.settings.claims, **_checked_claims(claims)}
        scope = scope or self.settings.scope
        if self.settings.scope_in_assertion and scope:
            merged["scope"] = scope
        return self.signer.sign(
            issuer=self.issuer,
            audience=self.audience(audience),
            subject=subject if subject is not None else self.settings.subject,
            lifetime=self.settings.lifetime,
            claims=merged,
            not_before=self.settings.nbf,
        )

    def mint_client_assertion(self) -> str:
        """RFC 7523 §2.2 client assertion: ``iss`` = ``sub`` = client id, ``aud`` = token endpoint."""
        client_id = self.client_id or self.issuer
        return self.signer.sign(
            issuer=client_id,
            subject=client_id,
            audience=self.token_url,
            lifetime=min(self.settings.lifetime, MAX_CLIENT_ASSERTION_LIFETIME),
        )

    # -- tokens -----------------------------------------------------------------------------

    def token_cache_key(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        assertion: str | None = None,
    ) -> str:
        """Everything that changes the token: endpoint, client, iss, sub, aud, scope, claims, key."""
        return cache_key(
            token_url=self.token_url,
            client_id=self.client_id,
            issuer=self.issuer,
            subject=subject if subject is not None else self.settings.subject,
            audience=self.audience(),
            scope=scope or self.settings.scope,
            claims={**self.settings.claims, **(claims or {})},
            key=self.key.fingerprint,
            grant=self.settings.grant_type,
            auth_params=dict(self.settings.auth_params),
            handed_in=hashlib.sha256(assertion.encode()).hexdigest() if assertion else None,
        )

    def get_token(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        force_refresh: bool = False,
        assertion: str | None = None,
    ) -> AccessToken:
        """A valid access token, from the cache or the endpoint.

        :param assertion: a JWT obtained elsewhere (e.g. a user's token for Microsoft's
            on-behalf-of flow), sent instead of a minted one.
        """
        claims = _checked_claims(claims)
        if assertion is not None:
            mask_secret_value(assertion)
        key = self.token_cache_key(subject, scope, claims, assertion)
        return self.cache.get(
            key, lambda: self._request_token(subject, scope, claims, assertion), force_refresh=force_refresh
        )

    def invalidate(
        self,
        token: AccessToken | None = None,
        *,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        assertion: str | None = None,
    ) -> None:
        """Forget the cached token for these parameters (only ``token``, when given)."""
        self.cache.invalidate(self.token_cache_key(subject, scope, claims, assertion), token=token)

    def _request_token(
        self,
        subject: str | None,
        scope: str | None,
        claims: Mapping[str, Any],
        assertion: str | None,
    ) -> AccessToken:
        scope = scope or self.settings.scope
        params = dict(self.settings.auth_params)
        if assertion is not None:
            if self.settings.grant_type == CLIENT_CREDENTIALS_GRANT:  # Entra: on-behalf-of
                params.update(ON_BEHALF_OF_PARAMS)
            return self.client.fetch(JWT_BEARER_GRANT, assertion=lambda: assertion, scope=scope, params=params)
        if self.settings.grant_type == CLIENT_CREDENTIALS_GRANT:
            return self.client.fetch(CLIENT_CREDENTIALS_GRANT, scope=scope, params=params)
        return self.client.fetch(
            JWT_BEARER_GRANT,
            assertion=lambda: self.mint_assertion(subject, claims, scope=scope),
            scope=None if self.settings.scope_in_assertion else scope,
            params=params,
        )


def _checked_claims(claims: Mapping[str, Any] | None) -> dict[str, Any]:
    if not claims:
        return {}
    if not isinstance(claims, Mapping):
        raise JwtBearerConfigError("claims must be a mapping of claim names to values", field="claims")
    reserved = sorted(RESERVED_CLAIMS & set(claims))
    if reserved:
        raise JwtBearerConfigError(
            f"claims.{reserved[0]} is a registered claim set by the provider; pass subject= or "
            "audience= instead of overriding it in claims",
            field=f"claims.{reserved[0]}",
        )
    return dict(claims)
