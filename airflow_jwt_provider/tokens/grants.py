"""How each grant carries the JWT in the token request: one class per grant.

* ``jwt_bearer`` (RFC 7523 §2.1): the JWT is the ``assertion``; the client authenticates as configured.
* ``client_credentials`` (RFC 6749 §4.4): no grant assertion; the JWT is the client assertion (RFC 7523
  §2.2), applied by :class:`~airflow_jwt_provider.tokens.client_auth.PrivateKeyJwt`, whoever made it.
* ``token_exchange`` (RFC 8693): the JWT is the ``subject_token``, with its type, an optional actor
  token, and the requested token type, audiences and resources.
* a JWT handed in by the caller (Microsoft's on-behalf-of flow) is sent as a jwt-bearer ``assertion``.

A new grant is a class here (``request``), a :class:`~airflow_jwt_provider.connection.kinds.GrantType`
member, and its settings in the connection's assertion group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from airflow_jwt_provider.assertions.base import AssertionSource
from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.tokens.endpoint import Form, TokenRequest

#: Microsoft's on-behalf-of flow marks the jwt-bearer request with this parameter.
ON_BEHALF_OF_PARAMS = {"requested_token_use": "on_behalf_of"}


class Grant(Protocol):
    def request(
        self,
        settings: JwtBearerSettings,
        source: AssertionSource,
        actor: AssertionSource | None,
        params: TokenParameters,
    ) -> TokenRequest: ...


def _scope(settings: JwtBearerSettings, params: TokenParameters) -> str | None:
    return params.scope or settings.scope


def _form(settings: JwtBearerSettings) -> dict[str, str | list[str]]:
    return dict(settings.auth_params)


def _platform(settings: JwtBearerSettings, source: AssertionSource) -> str | None:
    """What made the JWT when the platform did (for the advice on a refusal)."""
    return source.describe() if settings.keyless else None


class JwtBearer:
    def request(
        self,
        settings: JwtBearerSettings,
        source: AssertionSource,
        actor: AssertionSource | None,
        params: TokenParameters,
    ) -> TokenRequest:
        # Google and DocuSign read the scope from the assertion, where the minting puts it
        scope = None if settings.scope_in_assertion and not settings.keyless else _scope(settings, params)
        return TokenRequest(
            GrantType.JWT_BEARER,
            credentials=lambda: {"assertion": source.assertion(params)},
            scope=scope,
            params=_form(settings),
            platform_jwt=_platform(settings, source),
        )


class ClientCredentials:
    def request(
        self,
        settings: JwtBearerSettings,
        source: AssertionSource,
        actor: AssertionSource | None,
        params: TokenParameters,
    ) -> TokenRequest:
        return TokenRequest(
            GrantType.CLIENT_CREDENTIALS,
            scope=_scope(settings, params),
            params=_form(settings),
            platform_jwt=_platform(settings, source),
        )


class TokenExchange:
    def request(
        self,
        settings: JwtBearerSettings,
        source: AssertionSource,
        actor: AssertionSource | None,
        params: TokenParameters,
    ) -> TokenRequest:
        exchange = settings.token_exchange
        if exchange is None:
            raise ValueError("token_exchange settings are missing")
        fields: dict[str, str | list[str]] = {**_form(settings), "subject_token_type": exchange.subject_token_type}
        if actor is not None:
            fields["actor_token_type"] = exchange.actor_token_type
        if exchange.requested_token_type:
            fields["requested_token_type"] = exchange.requested_token_type
        if exchange.audiences:
            fields["audience"] = list(exchange.audiences)
        if exchange.resources:
            fields["resource"] = list(exchange.resources)

        def credentials() -> Form:
            tokens: Form = {"subject_token": source.assertion(params)}
            if actor is not None:
                tokens["actor_token"] = actor.assertion(DEFAULT_TOKEN)
            return tokens

        return TokenRequest(
            GrantType.TOKEN_EXCHANGE,
            credentials=credentials,
            scope=_scope(settings, params),
            params=fields,
            requested_token_type=exchange.requested_token_type,
            exchange=True,
            platform_jwt=_platform(settings, source),
        )


GRANTS: Mapping[GrantType, Grant] = {
    GrantType.JWT_BEARER: JwtBearer(),
    GrantType.CLIENT_CREDENTIALS: ClientCredentials(),
    GrantType.TOKEN_EXCHANGE: TokenExchange(),
}


def on_behalf_of(settings: JwtBearerSettings, handed_in: str, params: TokenParameters) -> TokenRequest:
    """A JWT the caller obtained elsewhere (a user's token), exchanged with the jwt-bearer grant."""
    form = _form(settings)
    if settings.grant_type is GrantType.CLIENT_CREDENTIALS:  # Entra: on-behalf-of
        form.update(ON_BEHALF_OF_PARAMS)
    return TokenRequest(
        GrantType.JWT_BEARER, credentials=lambda: {"assertion": handed_in}, scope=_scope(settings, params), params=form
    )
