"""The assertion group: which grant, where the JWT comes from, the actor token, and how client assertions look.

The grant decides where the JWT goes (RFC 7523 §2.1 ``assertion``, §2.2 ``client_assertion``, RFC 8693
``subject_token``); the source decides who makes it (the connection's key, or the platform). Settings
that only one source or only token exchange reads are refused, by name, with any other choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_jwt_provider.common.registry import RegistrationError
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import ALL_FIELDS
from airflow_jwt_provider.connection.kinds import (
    JWT_TOKEN_TYPE,
    ClientAssertionAudience,
    ClientAuthMethod,
    GrantType,
)
from airflow_jwt_provider.connection.settings import ClientAssertionSettings, TokenExchangeSettings
from airflow_jwt_provider.connection.source_settings import (
    ACTOR_PREFIX,
    ASSERTION_PREFIX,
    SIGN_SOURCE,
    SOURCES,
    SourceRegistration,
    SourceSettings,
)


@dataclass(frozen=True)
class AssertionGroup:
    source: SourceSettings
    grant: GrantType | None
    token_exchange: TokenExchangeSettings | None


def parse_source(extras: ExtraReader, prefix: str, name: str) -> SourceSettings:
    """The settings of source ``name`` read under ``prefix``; another source's settings are refused."""
    setting = f"{prefix}_source" if prefix == ACTOR_PREFIX else "assertion_source"
    try:
        registration = SOURCES.get(name)
    except RegistrationError as exc:
        raise extras.error(setting, f"is {name!r}, but {exc}") from None
    _refuse_settings_of_other_sources(extras, prefix, registration)
    return registration.parse(extras, prefix)


def parse_assertion_group(extras: ExtraReader, preset_grant: GrantType | None) -> AssertionGroup:
    grant_name = extras.choice("grant", [g.setting for g in GrantType])
    grant = GrantType.from_setting(grant_name) if grant_name else None
    effective = grant or preset_grant or GrantType.JWT_BEARER
    source_name = extras.choice("assertion_source", SOURCES.names()) or SIGN_SOURCE
    source = parse_source(extras, ASSERTION_PREFIX, source_name)
    exchange = _token_exchange(extras) if effective is GrantType.TOKEN_EXCHANGE else None
    if exchange is None:
        _refuse_exchange_settings(extras, effective)
    return AssertionGroup(source, grant, exchange)


def client_auth_for_grant(
    extras: ExtraReader, chosen: ClientAuthMethod | None, grant: GrantType, source: SourceSettings
) -> ClientAuthMethod | None:
    """With grant client_credentials and a platform's JWT, that JWT is the client assertion: private_key_jwt."""
    if grant is not GrantType.CLIENT_CREDENTIALS or source.needs_key:
        return chosen
    if chosen not in (None, ClientAuthMethod.PRIVATE_KEY_JWT):
        raise extras.error(
            "client_auth",
            f"is {chosen.value!r}, but grant client_credentials with assertion_source {source.source!r} sends the "
            "platform's JWT as the client assertion (RFC 7523 §2.2); set client_auth to private_key_jwt or leave "
            "it empty",
        )
    return ClientAuthMethod.PRIVATE_KEY_JWT


def parse_client_assertion(extras: ExtraReader) -> ClientAssertionSettings:
    issuer = extras.url("auth_issuer")
    audience = extras.member("client_assertion_audience", ClientAssertionAudience)
    if audience is None:
        audience = ClientAssertionAudience.ISSUER if issuer else ClientAssertionAudience.TOKEN_ENDPOINT
    elif audience is not ClientAssertionAudience.TOKEN_ENDPOINT and issuer is None:
        raise extras.error(
            "client_assertion_audience",
            f"is {audience.value!r}, which names the authorization server's issuer identifier: set auth_issuer to it "
            "(the issuer of its /.well-known/oauth-authorization-server document)",
        )
    return ClientAssertionSettings(issuer, audience, extras.flag("client_assertion_typ", False))


def _token_exchange(extras: ExtraReader) -> TokenExchangeSettings:
    actor_name = extras.text("actor_token_source")
    actor = parse_source(extras, ACTOR_PREFIX, actor_name) if actor_name else None
    if actor is None:
        given = sorted(k for k in extras.given if k.startswith(f"{ACTOR_PREFIX}_") and k != "actor_token_source")
        if given:
            raise extras.error(given[0], "is set but actor_token_source is not; set the source of the actor token")
    return TokenExchangeSettings(
        subject_token_type=extras.text("subject_token_type") or JWT_TOKEN_TYPE,
        requested_token_type=extras.text("requested_token_type"),
        audiences=extras.name_list("exchange_audience"),
        resources=extras.name_list("exchange_resource"),
        actor=actor,
        actor_token_type=extras.text("actor_token_type") or JWT_TOKEN_TYPE,
        impersonation_url=extras.url("service_account_impersonation_url"),
    )


def _refuse_exchange_settings(extras: ExtraReader, grant: GrantType) -> None:
    for key in sorted(extras.given):
        field = ALL_FIELDS.get(key)
        if field is not None and field.exchange_only:
            raise extras.error(
                key,
                f"applies to grant token_exchange only (this connection's grant is {grant.setting}); remove it or "
                "set grant to token_exchange",
            )


def _refuse_settings_of_other_sources(extras: ExtraReader, prefix: str, chosen: SourceRegistration) -> None:
    for key in sorted(extras.given):
        field = ALL_FIELDS.get(key)
        if field is None or not field.source_scoped or not key.startswith(f"{prefix}_"):
            continue
        if key.removeprefix(f"{prefix}_") in chosen.suffixes:
            continue
        readers = [r.name for r in SOURCES.load_all() if key.removeprefix(f"{prefix}_") in r.suffixes]
        named = " or ".join(repr(r) for r in readers) or "no installed source"
        setting = "actor_token_source" if prefix == ACTOR_PREFIX else "assertion_source"
        raise extras.error(
            key,
            f"does not apply to {setting} {chosen.name!r} (only {named} reads it); remove {key} or set {setting} "
            f"to {named}",
        )
