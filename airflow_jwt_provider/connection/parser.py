"""Parse a ``jwt_bearer`` connection once into a typed, validated :class:`~.settings.JwtBearerSettings`.

The parse runs group by group, each refusing a bad value by name: unknown keys and the preset
(here), the signer (:mod:`._signer_group`, which hands the signer's own keys to its
registration), the client and the assertion (here), HTTP (:mod:`._http_group`) and the token
cache (:mod:`._token_cache_group`). A preset's defaults are added before the groups read the
extras, and its rules are checked on the finished settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping
from typing import Any

from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.connection._assertion_group import (
    client_auth_for_grant,
    parse_assertion_group,
    parse_client_assertion,
)
from airflow_jwt_provider.connection._binding_group import needs_key as binding_needs_key
from airflow_jwt_provider.connection._binding_group import parse_dpop, parse_mtls
from airflow_jwt_provider.connection._http_group import parse_http, parse_trusted_hosts_setting
from airflow_jwt_provider.connection._signer_group import allowed_keys, parse_signer
from airflow_jwt_provider.connection._token_cache_group import parse_token_cache
from airflow_jwt_provider.connection.extras import ExtraReader, clean
from airflow_jwt_provider.connection.fields import ALL_FIELDS, SIGNING_ALGORITHMS
from airflow_jwt_provider.connection.kinds import ClientAuthMethod, GrantType
from airflow_jwt_provider.connection.presets import Preset, get_preset
from airflow_jwt_provider.connection.settings import (
    DEFAULT_LIFETIME,
    DEFAULT_TOKEN_LIFETIME,
    MAX_LIFETIME,
    ConnectionLike,
    JwtBearerSettings,
)
from airflow_jwt_provider.connection.signer_settings import KeySelection
from airflow_jwt_provider.connection.source_settings import SourceSettings
from airflow_jwt_provider.connection.token_parameters import canonical_claims
from airflow_jwt_provider.exceptions import JwtBearerConfigError


def parse_connection(conn: ConnectionLike, *, check_preset: bool = True) -> JwtBearerSettings:
    """Validate ``conn`` and return its settings, or raise :class:`JwtBearerConfigError` naming the field.

    :param check_preset: apply the preset's rules; ``airflow jwt-bearer check`` reports
        them as a step of their own, after the settings themselves.
    """
    return _Parser(conn).parse(check_preset=check_preset)


class _Parser:
    """One connection's parse; keeps the connection at hand for the groups that read fields."""

    def __init__(self, conn: ConnectionLike) -> None:
        self.conn = conn
        self.extras = ExtraReader(conn.conn_id, _extra_of(conn))
        self.error = self.extras.error

    def parse(self, *, check_preset: bool) -> JwtBearerSettings:
        extras = self.extras
        self._refuse_unknown_keys()
        preset = self._preset()
        if preset is not None:
            preset.fill(extras.values)
            if preset.auth_url_from_host and "auth_url" not in extras and self.conn.host:
                extras.values["auth_url"] = preset.auth_url_from_host(self._api_base_url() or "")

        client_id = clean(self.conn.login)
        client_secret = clean(self.conn.password)
        mask_stable_secret(client_secret)
        group = parse_assertion_group(extras, preset.grant_type if preset else None)
        grant = group.grant or (preset.grant_type if preset else GrantType.JWT_BEARER)
        if preset is not None and check_preset:
            preset.check_source(group.source, self.error)
        client_auth = self._client_auth(client_id, client_secret, grant, group.source)
        dpop = parse_dpop(extras)
        mtls = parse_mtls(extras, dpop, client_auth)
        needs_key = (
            binding_needs_key(dpop, mtls)
            or group.source.needs_key
            or bool(group.token_exchange and group.token_exchange.actor and group.token_exchange.actor.needs_key)
            or (client_auth is ClientAuthMethod.PRIVATE_KEY_JWT and not _jwt_is_client_assertion(grant, group.source))
        )
        if needs_key:
            signer, keys = parse_signer(extras)
        else:
            _refuse_key_settings(extras, group.source)
            signer, keys = None, KeySelection()
        settings = JwtBearerSettings(
            conn_id=self.conn.conn_id,
            signer=signer,
            source=group.source,
            grant=group.grant,
            token_exchange=group.token_exchange,
            dpop=dpop,
            mtls=mtls,
            client_assertion=parse_client_assertion(extras),
            auth_url=extras.url("auth_url"),
            api_base_url=self._api_base_url(),
            client_id=client_id,
            client_secret=client_secret,
            key_aliases=keys.aliases,
            key_id=keys.key_id,
            key_ids=keys.key_ids,
            algorithm=extras.choice("algorithm", SIGNING_ALGORITHMS),
            issuer=extras.text("issuer"),
            subject=extras.text("subject"),
            audience=self._audience(),
            lifetime=int(extras.seconds("lifetime", DEFAULT_LIFETIME, maximum=MAX_LIFETIME, whole=True)),
            claims=self._claims(),
            scope=self._scope(),
            x5t=extras.flag("x5t", False),
            nbf=extras.flag("nbf", False),
            client_auth=client_auth,
            auth_params=extras.string_map("auth_params"),
            preset=preset,
            http=parse_http(extras),
            default_token_lifetime=int(
                extras.seconds("default_token_lifetime", DEFAULT_TOKEN_LIFETIME, maximum=MAX_LIFETIME, whole=True)
            ),
            trusted_hosts=parse_trusted_hosts_setting(extras),
            token_cache=parse_token_cache(extras),
            key_names_endpoint=signer is not None and signer.names_token_endpoint,
        )
        if settings.auth_url is None and not settings.key_names_endpoint and settings.client_assertion.issuer is None:
            raise self.error(
                "auth_url",
                "(the token endpoint URL) is required; set it in Extra, e.g. "
                '"auth_url": "https://login.example.com/oauth2/token", or choose a preset that fills it',
            )
        if needs_key and not (settings.client_id or settings.issuer or settings.key_names_endpoint):
            raise self.error(
                "login",
                "(the client id) is empty; enter it in the Login field (it is the assertion's issuer "
                "unless the issuer extra says otherwise)",
            )
        if preset is not None and check_preset:
            warnings = preset.check(settings, self.error)
            if warnings:
                settings = dataclasses.replace(
                    settings, preset_warnings=tuple(f"Connection {self.conn.conn_id!r}: {w}" for w in warnings)
                )
        return settings

    # -- groups read here ---------------------------------------------------------------------

    def _refuse_unknown_keys(self) -> None:
        known = allowed_keys()
        unknown = sorted(set(self.extras.values) - set(known))
        if not unknown:
            return
        key = unknown[0]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; accepted keys: {', '.join(known)}"
        raise self.error(f"extra key {key!r}", f"is not a jwt_bearer setting{hint}")

    def _preset(self) -> Preset | None:
        name = self.extras.text("preset")
        if name is None:
            return None
        try:
            return get_preset(name)
        except KeyError as exc:
            raise self.error("preset", str(exc.args[0])) from None

    def _client_auth(
        self, client_id: str | None, client_secret: str | None, grant: GrantType, source: SourceSettings
    ) -> ClientAuthMethod:
        chosen = client_auth_for_grant(self.extras, self.extras.member("client_auth", ClientAuthMethod), grant, source)
        if chosen is None:
            chosen = ClientAuthMethod.CLIENT_SECRET_POST if client_secret else ClientAuthMethod.NONE
        if chosen.needs_client_secret and not client_secret:
            raise self.error(
                "password",
                f"(the client secret) is empty, but client_auth is {chosen.value!r}; "
                "enter the client secret in the Password field or set client_auth to 'none'",
            )
        if chosen.needs_client_id and not client_id:
            raise self.error("login", f"(the client id) is required when client_auth is {chosen.value!r}")
        return chosen

    def _api_base_url(self) -> str | None:
        host = clean(self.conn.host)
        if host is None:
            return None
        if "://" not in host:  # like the http provider: Schema is the URL scheme, https by default
            schema = (clean(self.conn.schema) or "https").lower()
            if schema not in ("http", "https"):
                raise self.error(
                    "schema",
                    f"is {schema!r} but must be http or https (the scheme of the API base URL); "
                    "or put the whole base URL, e.g. https://api.example.com/v2, in Host",
                )
            host = f"{schema}://{host}"
        if self.conn.port and ":" not in host.split("://", 1)[1].split("/", 1)[0]:
            scheme, rest = host.split("://", 1)
            authority, _, path = rest.partition("/")
            host = f"{scheme}://{authority}:{self.conn.port}" + (f"/{path}" if path else "")
        return host.rstrip("/")

    def _claims(self) -> dict[str, Any]:
        claims = self.extras.json_object("claims")
        try:
            canonical_claims(claims)  # reserved names and non-JSON values are refused, naming the claim
        except JwtBearerConfigError as exc:
            raise JwtBearerConfigError(f"Connection {self.conn.conn_id!r}: {exc}", field=exc.field) from None
        return claims

    def _audience(self) -> str | tuple[str, ...] | None:
        value = self.extras.json_value("audience")
        if value is None:
            return None
        if isinstance(value, str):
            return clean(value)
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value) if len(value) > 1 else value[0]
        raise self.error("audience", "must be a string or a non-empty list of strings")

    def _scope(self) -> str | None:
        value = self.extras.json_value("scope")
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise self.error("scope", "must be a string or a list of strings")
            return " ".join(value) or None
        return self.extras.text("scope")


#: What only an assertion the connection signs reads: refused, by name, when the JWT comes from the platform.
_MINTING_SETTINGS = (
    "signer",
    "key_alias",
    "key_id",
    "algorithm",
    "x5t",
    "nbf",
    "issuer",
    "subject",
    "audience",
    "claims",
)


def _jwt_is_client_assertion(grant: GrantType, source: SourceSettings) -> bool:
    """With grant client_credentials, a platform's JWT is itself the client assertion (Entra federated credentials)."""
    return grant is GrantType.CLIENT_CREDENTIALS and not source.needs_key


def _refuse_key_settings(extras: ExtraReader, source: SourceSettings) -> None:
    """A key or claim setting on a connection that signs nothing itself would suggest that it does."""
    for key in sorted(extras.given):
        field = ALL_FIELDS.get(key)
        if key in _MINTING_SETTINGS or (field is not None and field.signer_scoped):
            raise extras.error(
                key,
                f"does not apply: assertion_source {source.source!r} takes the JWT the platform gives the workload "
                "(its claims are the platform's), and nothing is signed with a key of this connection; remove "
                f"{key}, or set assertion_source to sign",
            )


def _extra_of(conn: ConnectionLike) -> Mapping[str, Any]:
    """The connection's extra as a mapping; invalid JSON is refused by name.

    Parsed here rather than through ``extra_dejson``, which logs a traceback and returns ``{}`` for
    invalid JSON: the user would then see "auth_url is required".
    """
    raw = getattr(conn, "extra", None)
    if isinstance(raw, str) and raw.strip():
        try:
            extra = json.loads(raw)
        except ValueError:
            raise JwtBearerConfigError(
                f"Connection {conn.conn_id!r}: extra is not valid JSON; fix the connection's Extra field.",
                field="extra",
            ) from None
    else:
        extra = conn.extra_dejson
    if not isinstance(extra, Mapping):
        raise JwtBearerConfigError(
            f"Connection {conn.conn_id!r}: extra must be a JSON object of the keys listed in the connection reference "
            "(docs/reference/connection.md).",
            field="extra",
        )
    return extra
