"""The validated settings of a ``jwt_bearer`` connection: :class:`JwtBearerSettings` and its parts.

Everything downstream (key loading, assertion minting, the token client, the hooks) reads these
frozen objects and never the raw connection, so a setting is checked in exactly one place (the
parser, :func:`airflow_jwt_provider.connection.parser.parse_connection`) and every error names the field at
fault. Secrets are kept out of every ``repr``, so logging a settings object is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_jwt_provider.connection.kinds import (
    JWT_TOKEN_TYPE,
    MEMORY_TOKEN_CACHE,
    ClientAssertionAudience,
    ClientAuthMethod,
    DPoPKeySource,
    GrantType,
)
from airflow_jwt_provider.connection.presets import Preset
from airflow_jwt_provider.connection.signer_settings import SignerSettings
from airflow_jwt_provider.connection.source_settings import SourceSettings
from airflow_jwt_provider.connection.trusted_hosts import HostPattern, TrustedHosts

DEFAULT_LIFETIME = 60
DEFAULT_TIMEOUT = 30.0
#: How long a token is used when the endpoint does not say (``expires_in`` absent).
DEFAULT_TOKEN_LIFETIME = 300
#: Upper bounds: an assertion or token lifetime of a day, an HTTP timeout of an hour.
MAX_LIFETIME = 86400
MAX_TIMEOUT = 3600.0

#: The provider's section of the Airflow configuration (declared in ``get_provider_info()["config"]``):
#: deployment-wide defaults of the ``token_cache*`` extras, and the knobs that only a deployment sets.
CONFIG_SECTION = "jwt_bearer"
#: The redis connection a shared cache uses when none is named (the redis provider's default).
DEFAULT_TOKEN_CACHE_CONN_ID = "redis_default"
#: How long a process waits for another's token request before fetching for itself.
DEFAULT_TOKEN_CACHE_WAIT = 10.0
#: The bound of each call to the shared store: a slow store must cost a task little.
DEFAULT_TOKEN_CACHE_IO_TIMEOUT = 0.5
MAX_TOKEN_CACHE_WAIT = 300.0
MAX_TOKEN_CACHE_IO_TIMEOUT = 30.0


class ConnectionLike(Protocol):
    """What settings need of an Airflow ``Connection`` (so tests and triggers can pass their own)."""

    conn_id: str
    host: str | None
    login: str | None
    password: str | None
    schema: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HttpSettings:
    """HTTP options shared by token requests and API calls, sync and async."""

    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    #: Not in ``repr``: a proxy URL may carry ``user:password@``.
    proxies: Mapping[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TokenCacheSettings:
    """Where tokens are cached beyond the process, from the connection's extras or ``[jwt_bearer]``.

    :param kind: ``memory`` (each process alone) or the name of a registered token store:
        ``file`` (a directory every process of the machine shares), ``redis`` (a Redis every
        worker of the cluster reaches).
    :param conn_id: the Airflow ``redis`` connection (``redis`` only).
    :param directory: the folder of ``file`` (``None``: under ``AIRFLOW_HOME``).
    :param wait: seconds a process waits for another's token request before fetching itself.
    :param io_timeout: seconds each call to the store may take before the store counts as down.
    :param secret: ``[jwt_bearer] token_cache_secret``: what seals shared tokens of connections
        without a key or client secret of their own (deployment-wide, never in a connection).
    """

    kind: str = MEMORY_TOKEN_CACHE
    conn_id: str = DEFAULT_TOKEN_CACHE_CONN_ID
    directory: str | None = None
    wait: float = DEFAULT_TOKEN_CACHE_WAIT
    io_timeout: float = DEFAULT_TOKEN_CACHE_IO_TIMEOUT
    secret: str | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        """Whether tokens are shared with other processes (every kind but ``memory``)."""
        return self.kind != MEMORY_TOKEN_CACHE


@dataclass(frozen=True)
class TokenExchangeSettings:
    """What an RFC 8693 token request says besides the subject token (grant ``token_exchange``).

    :param subject_token_type: RFC 8693 §3 type of the subject token (the source's JWT).
    :param requested_token_type: the type asked for; the answer's ``issued_token_type`` must match.
    :param audiences: ``audience`` parameters (Google: the workload identity provider).
    :param resources: ``resource`` parameters (RFC 8707).
    :param actor: where an actor token comes from, if one is sent; ``actor_token_type`` is its type.
    :param impersonation_url: Google's ``generateAccessToken`` URL, asked with the exchanged token.
    """

    subject_token_type: str = JWT_TOKEN_TYPE
    requested_token_type: str | None = None
    audiences: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    actor: SourceSettings | None = None
    actor_token_type: str = JWT_TOKEN_TYPE
    impersonation_url: str | None = None


@dataclass(frozen=True)
class ClientAssertionSettings:
    """How the client assertions this connection signs look (RFC 7523 §2.2, draft-ietf-oauth-rfc7523bis).

    :param issuer: the authorization server's issuer identifier (``auth_issuer``), when known.
    :param audience: which ``aud`` they carry.
    :param typ: send the ``typ`` header ``client-authentication+jwt``.
    """

    issuer: str | None = None
    audience: ClientAssertionAudience = ClientAssertionAudience.TOKEN_ENDPOINT
    typ: bool = False


@dataclass(frozen=True)
class DPoPSettings:
    """DPoP-bound tokens (RFC 9449): which key proves possession, and what to do with an unbound answer.

    :param key: a key generated for the token, or the connection's signing key.
    :param algorithm: the algorithm of a generated key (the signer's own otherwise).
    :param allow_bearer: use a ``Bearer`` answer (the server chose not to bind, §5) with a warning.
    """

    key: DPoPKeySource = DPoPKeySource.GENERATED
    algorithm: str = "ES256"
    allow_bearer: bool = False


@dataclass(frozen=True)
class JwtBearerSettings:
    """The validated settings of one ``jwt_bearer`` connection.

    The key: ``signer`` holds the chosen signer's own settings (a key file, a PKCS#11 token, a
    KMS connection...). ``key_aliases`` names the key for every signer (the keystore alias, the
    PKCS#11 key label, the KMS key id, ARN or alias), several during a key rotation (first
    usable one signs); ``key_ids`` are then the ``kid`` of each, in the same order, when the
    connection gives one per key.
    """

    conn_id: str
    #: The key's settings; ``None`` when nothing is signed with a key of the connection (a keyless source).
    signer: SignerSettings | None
    #: Where the JWT comes from (``sign``: minted with the key).
    source: SourceSettings
    auth_url: str | None = None
    api_base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    key_aliases: tuple[str, ...] = ()
    key_id: str | None = None
    key_ids: tuple[str, ...] = ()
    algorithm: str | None = None
    issuer: str | None = None
    subject: str | None = None
    audience: str | tuple[str, ...] | None = None
    lifetime: int = DEFAULT_LIFETIME
    claims: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None
    x5t: bool = False
    nbf: bool = False
    client_auth: ClientAuthMethod = ClientAuthMethod.NONE
    client_assertion: ClientAssertionSettings = field(default_factory=ClientAssertionSettings)
    #: The ``grant`` setting; ``None``: the preset's, else RFC 7523's (see :attr:`grant_type`).
    grant: GrantType | None = None
    token_exchange: TokenExchangeSettings | None = None
    #: DPoP-bound tokens (``dpop``); ``None``: bearer tokens.
    dpop: DPoPSettings | None = None
    #: Mutual TLS with the connection's key and certificate: certificate-bound tokens (RFC 8705 §3).
    mtls: bool = False
    auth_params: Mapping[str, str] = field(default_factory=dict)
    preset: Preset | None = None
    http: HttpSettings = field(default_factory=HttpSettings)
    default_token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    trusted_hosts: tuple[HostPattern, ...] = ()
    token_cache: TokenCacheSettings = field(default_factory=TokenCacheSettings)
    #: The key material names the token endpoint and the issuer (a Google service-account key).
    key_names_endpoint: bool = False
    #: What the preset's rules that only warn found (logged when credentials are built, shown by ``check``).
    preset_warnings: tuple[str, ...] = ()

    def trusted(self, base_url: str | None) -> TrustedHosts:
        """Where this connection's token may go, given the effective API base (Host or ``instance_url``)."""
        return TrustedHosts(self.conn_id, base_url, self.trusted_hosts)

    @property
    def grant_type(self) -> GrantType:
        """The grant used when no assertion is handed in: the ``grant`` setting, the preset's, else RFC 7523's."""
        if self.grant is not None:
            return self.grant
        return self.preset.grant_type if self.preset else GrantType.JWT_BEARER

    @property
    def keyless(self) -> bool:
        """Whether the JWT comes from the platform rather than from the connection's key."""
        return not self.source.needs_key

    @property
    def scope_in_assertion(self) -> bool:
        """Google and DocuSign read the scope from a ``scope`` claim, not from the form."""
        return bool(self.preset and self.preset.scope_in_assertion)
