"""Credentials for one connection: mint assertions, fetch tokens, cache and refresh them.

Plays the role of google-auth's ``Credentials``: built once per hook from the validated
settings and a signer, and asked for tokens by everything that needs one (the ``AuthBase`` on
a session, the async hook through a thread), never the token endpoint directly. The one rule
for a token the API refused (:meth:`JwtBearerCredentials.refresh_rejected`) lives here, so the
sync and async paths recover from a revoked token the same way.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import requests

from airflow_jwt_provider.common.redaction import install_log_redaction
from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.assertion import AssertionMinter
from airflow_jwt_provider.signing.jws import describe_public_key, public_key_fingerprint
from airflow_jwt_provider.signing.rotation import SigningChoice, choose_key
from airflow_jwt_provider.signing.signers.base import Signer, key_holder_secret
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE, TokenCache, cache_key
from airflow_jwt_provider.tokens.client_auth import client_authentication
from airflow_jwt_provider.tokens.endpoint import TokenClient
from airflow_jwt_provider.tokens.shared_cache import SharedTokenCache

log = logging.getLogger(__name__)

#: Microsoft's on-behalf-of flow marks the jwt-bearer request with this parameter.
ON_BEHALF_OF_PARAMS = {"requested_token_use": "on_behalf_of"}
#: Distinct token parameters whose cache key one credentials object remembers.
_CACHE_KEY_MEMO = 256
#: A client assertion (private_key_jwt) never needs to live longer than this.
MAX_CLIENT_ASSERTION_LIFETIME = 300


class JwtBearerCredentials:
    """Obtains access tokens for one ``jwt_bearer`` connection.

    :param settings: the connection's validated settings.
    :param signer: signs the assertions (:meth:`from_settings` builds the one the settings name).
    :param key_issuer: the issuer the key material names (a Google key's ``client_email``),
        used when the connection sets neither ``issuer`` nor Login.
    :param key_token_url: the token endpoint the key material names (a Google key's
        ``token_uri``), used when the connection sets no ``auth_url``.
    :param key_id: the ``kid`` of the signer's key, when it is not the connection's ``key_id``
        (one kid per key during a rotation).
    :param cache: where tokens are kept in this process; the process-wide cache by default.
    :param session: the ``requests`` session used for token requests.

    With ``token_cache`` ``file`` or ``redis``, a token missing from ``cache`` is looked for in the
    shared store before it is fetched (:class:`~airflow_jwt_provider.tokens.shared_cache.SharedTokenCache`).
    """

    def __init__(
        self,
        settings: JwtBearerSettings,
        signer: Signer,
        *,
        key_issuer: str | None = None,
        key_token_url: str | None = None,
        key_id: str | None = None,
        cache: TokenCache = TOKEN_CACHE,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.cache = cache
        #: How :meth:`from_settings` chose the key (which one, its warning, the keys passed over).
        self.choice: SigningChoice | None = None
        token_url = settings.auth_url or key_token_url
        if token_url is None:
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: auth_url is not set and the key material names no "
                "token endpoint; set the auth_url extra",
                field="auth_url",
            )
        self.token_url: str = token_url
        issuer = settings.issuer or key_issuer or settings.client_id
        if issuer is None:  # settings guarantee one unless a JSON key was expected to supply it
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: the issuer is unknown; set Login (client id) or issuer",
                field="issuer",
            )
        self.issuer: str = issuer
        self.client_id = settings.client_id or key_issuer
        self.key_fingerprint = public_key_fingerprint(signer.public_key)
        self._cache_keys: dict[TokenParameters, str] = {}
        self._cache_keys_lock = threading.Lock()
        self.minter = AssertionMinter(signer, key_id=key_id or settings.key_id, x5t=settings.x5t)
        self.client = TokenClient(
            token_url,
            client_authentication(
                settings.client_auth, self.client_id, settings.client_secret, self.mint_client_assertion
            ),
            settings.http,
            session=session,
            default_token_lifetime=timedelta(seconds=settings.default_token_lifetime),
        )
        self.shared: SharedTokenCache | None = (
            SharedTokenCache(settings.conn_id, settings.token_cache, self.token_cache_secret)
            if settings.token_cache.shared
            else None
        )
        install_log_redaction()  # once per process: per-call credentials never reach a log line

    @classmethod
    def from_settings(
        cls,
        settings: JwtBearerSettings,
        *,
        cache: TokenCache = TOKEN_CACHE,
        session: requests.Session | None = None,
    ) -> JwtBearerCredentials:
        """Credentials with the key ``settings`` designate (:func:`~airflow_jwt_provider.signing.rotation.choose_key`).

        Refuses a key whose certificate expired, warns near expiry, and logs which key signs.
        Keys and device signers are cached per process, so building credentials for every hook
        costs a digest of the key material (or of the device settings).
        """
        choice = choose_key(settings)
        key = choice.key
        _check_key_against_preset(settings, key.signer)
        for warning in (*settings.preset_warnings, *([choice.warning] if choice.warning else [])):
            log.warning("%s", warning)
        log.info("Connection %r: %s", settings.conn_id, choice.describe())
        credentials = cls(
            settings,
            key.signer,
            key_issuer=key.issuer,
            key_token_url=key.token_uri,
            key_id=key.key_id,
            cache=cache,
            session=session,
        )
        credentials.choice = choice
        return credentials

    def __repr__(self) -> str:
        return f"JwtBearerCredentials(conn_id={self.settings.conn_id!r}, token_url={self.token_url!r})"

    def describe_key(self) -> str:
        """``RSA-2048 (RS256)``: the key and the algorithm it signs with."""
        return f"{describe_public_key(self.signer.public_key)} ({self.signer.algorithm})"

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
        self, params: TokenParameters = DEFAULT_TOKEN, audience: str | tuple[str, ...] | None = None
    ) -> str:
        """A new signed assertion; ``params`` and ``audience`` override the connection's settings."""
        claims = {**self.settings.claims, **params.claims_copy()}
        scope = params.scope or self.settings.scope
        if self.settings.scope_in_assertion and scope:
            claims["scope"] = scope
        return self.minter.mint(
            issuer=self.issuer,
            audience=self.audience(audience),
            subject=params.subject if params.subject is not None else self.settings.subject,
            lifetime=self.settings.lifetime,
            claims=claims,
            not_before=self.settings.nbf,
        )

    def mint_client_assertion(self) -> str:
        """RFC 7523 §2.2 client assertion: ``iss`` = ``sub`` = client id, ``aud`` = token endpoint."""
        client_id = self.client_id or self.issuer
        return self.minter.mint(
            issuer=client_id,
            subject=client_id,
            audience=self.token_url,
            lifetime=min(self.settings.lifetime, MAX_CLIENT_ASSERTION_LIFETIME),
        )

    # -- tokens -----------------------------------------------------------------------------

    def token_cache_key(self, params: TokenParameters = DEFAULT_TOKEN) -> str:
        """Everything that changes the token: endpoint, client and its secret, iss, sub, aud, scope, claims, key.

        Computed once per distinct ``params`` (a digest over canonical JSON is not free, and every
        API call asks), in a small bounded memo.
        """
        key = self._cache_keys.get(params)
        if key is None:
            key = self._compute_cache_key(params)
            with self._cache_keys_lock:
                self._cache_keys[params] = key
                if len(self._cache_keys) > _CACHE_KEY_MEMO:
                    del self._cache_keys[next(iter(self._cache_keys))]
        return key

    def _compute_cache_key(self, params: TokenParameters) -> str:
        return cache_key(
            token_url=self.token_url,
            client_id=self.client_id,
            issuer=self.issuer,
            subject=params.subject if params.subject is not None else self.settings.subject,
            audience=self.audience(),
            scope=params.scope or self.settings.scope,
            claims={**self.settings.claims, **params.claims_copy()},
            key=self.key_fingerprint,
            grant=self.settings.grant_type.value,
            auth_params=dict(self.settings.auth_params),
            handed_in=_digest(params.assertion),
            # A connection with a wrong client secret must not be served the token a correct one
            # fetched: the error would go unnoticed until the cache forgets it.
            client_auth=self.settings.client_auth.value,
            client_secret=_digest(self.settings.client_secret),
        )

    def token_cache_secret(self) -> bytes:
        """What the shared cache seals tokens with: material only a holder of this connection's key can compute.

        The signer's key-holder secret (a digest of a local private key, or a deterministic
        signature by a remote signer, see :func:`~airflow_jwt_provider.signing.signers.base.key_holder_secret`)
        and the client secret, when there is one. A remote ECDSA or PSS signer gives no secret (its
        signatures are random); the client secret alone then seals, and without one the shared
        cache is refused rather than keeping tokens readable by anyone who reaches the store.
        """
        key_part = key_holder_secret(self.signer)
        client_secret = self.settings.client_secret
        if key_part is None and not client_secret:
            raise JwtBearerConfigError(
                f"Connection {self.settings.conn_id!r}: token_cache {self.settings.token_cache.kind!r} encrypts the "
                f"tokens it shares with a secret derived from the signing key, but this signer "
                f"({self.describe_key()}) signs with random nonces and cannot derive one. Set a client secret "
                "(Password), sign with RS256 or EdDSA, or set token_cache to memory",
                field="token_cache",
            )
        parts = [b"jwt-bearer-token-cache:v1", self.key_fingerprint.encode("ascii"), key_part or b""]
        parts.append(hashlib.sha256(client_secret.encode("utf-8")).digest() if client_secret else b"")
        return hashlib.sha256(b"\x00".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()

    def get_token(self, params: TokenParameters = DEFAULT_TOKEN, *, force_refresh: bool = False) -> AccessToken:
        """A valid access token for ``params``: from this process's cache, else the shared store, else the endpoint."""
        key = self.token_cache_key(params)
        return self.cache.get(key, self._source(key, params, force=force_refresh), force_refresh=force_refresh)

    def _source(self, key: str, params: TokenParameters, *, force: bool = False) -> Callable[[], AccessToken]:
        """Where the process cache gets a missing token: the shared store (asks the endpoint once), or the endpoint."""
        request = _EndpointRequest(self, params)
        if self.shared is None:
            return request
        return _SharedStoreLookup(self.shared, key, request, force)

    def refresh_rejected(self, params: TokenParameters, rejected: AccessToken) -> AccessToken:
        """The API refused ``rejected`` (a 401): a fresh token, unless another caller already replaced it.

        The cached token is dropped only if it is still ``rejected``, so that ten callers that
        saw the same 401 make one token request between them, and none throws away the fresh
        token another one just fetched.
        """
        log.info(
            "Connection %r: the API refused the access token (HTTP 401); fetching a new one and sending once more",
            self.settings.conn_id,
        )
        key = self.token_cache_key(params)
        self.cache.invalidate(key, token=rejected)
        if self.shared is not None:  # the shared entry too, unless another process already replaced it
            self.shared.invalidate(key, rejected)
        return self.cache.get(key, self._source(key, params))

    def invalidate(self, params: TokenParameters = DEFAULT_TOKEN, token: AccessToken | None = None) -> None:
        """Forget the cached token for ``params`` (only if it is still ``token``, when given), shared entry included."""
        key = self.token_cache_key(params)
        self.cache.invalidate(key, token=token)
        if self.shared is not None:
            self.shared.invalidate(key, token)

    def api_base_url(self, params: TokenParameters = DEFAULT_TOKEN) -> str | None:
        """The API base: the connection's host, else the ``instance_url`` the token endpoint returned (Salesforce)."""
        if self.settings.api_base_url:
            return self.settings.api_base_url
        instance_url = self.get_token(params).extra.get("instance_url")
        return str(instance_url) if instance_url else None

    def request_token(self, params: TokenParameters) -> AccessToken:
        """One token request to the endpoint for ``params`` (no cache): what every cache miss ends in."""
        scope = params.scope or self.settings.scope
        form = dict(self.settings.auth_params)
        handed_in = params.assertion
        grant = self.settings.grant_type
        if handed_in is not None:
            if grant is GrantType.CLIENT_CREDENTIALS:  # Entra: on-behalf-of
                form.update(ON_BEHALF_OF_PARAMS)
            return self.client.fetch(GrantType.JWT_BEARER, assertion=lambda: handed_in, scope=scope, params=form)
        if grant is GrantType.CLIENT_CREDENTIALS:
            return self.client.fetch(grant, scope=scope, params=form)
        return self.client.fetch(
            grant,
            assertion=lambda: self.mint_assertion(params),
            scope=None if self.settings.scope_in_assertion else scope,
            params=form,
        )


@dataclass(frozen=True)
class _EndpointRequest:
    """A token source: one request to the token endpoint (a fresh assertion per attempt)."""

    credentials: JwtBearerCredentials
    params: TokenParameters

    def __call__(self) -> AccessToken:
        return self.credentials.request_token(self.params)


@dataclass(frozen=True)
class _SharedStoreLookup:
    """A token source: the shared store, which calls ``request`` once for every process sharing it."""

    shared: SharedTokenCache
    key: str
    request: _EndpointRequest
    force: bool = False

    def __call__(self) -> AccessToken:
        return self.shared.obtain(self.key, self.request, force=self.force)


def _check_key_against_preset(settings: JwtBearerSettings, signer: Signer) -> None:
    """Refuse, before any request, a key whose algorithm the preset's vendor does not accept."""
    if settings.preset is None:
        return
    refused = settings.preset.key_problem(signer.algorithm, describe_public_key(signer.public_key))
    if refused is not None:
        field, problem = refused
        raise JwtBearerConfigError(f"Connection {settings.conn_id!r}: {field}: {problem}.", field=field)


def _digest(value: str | None) -> str | None:
    """A SHA-256 of a secret, for a cache key (the secret itself never goes in one)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if value else None
