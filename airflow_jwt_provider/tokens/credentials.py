"""Credentials for one connection: a JWT from its source, tokens fetched, cached and refreshed.

Plays the role of google-auth's ``Credentials``: built once per hook from the validated settings (and a
signer, when the connection signs with a key of its own), and asked for tokens by everything that needs
one (the ``AuthBase`` on a session, the async hook through a thread), never the token endpoint directly.
The one rule for a token the API refused (:meth:`JwtBearerCredentials.refresh_rejected`) lives here, so
the sync and async paths recover from a revoked token the same way.

The path of a token: the connection's source gives the JWT (:mod:`airflow_jwt_provider.assertions`:
minted with the key, or the platform's), the grant says where it goes (:mod:`.grants`), the token client
sends it (:mod:`.endpoint`), the caches keep the answer (:mod:`.cache`, :mod:`.shared_cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import requests

from airflow_jwt_provider.assertions.base import AssertionSource, SourceContext, build_source
from airflow_jwt_provider.common.redaction import install_log_redaction
from airflow_jwt_provider.common.telemetry import TELEMETRY, CacheTier
from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.assertion import AssertionMinter
from airflow_jwt_provider.signing.claims import MAX_CLIENT_ASSERTION_LIFETIME, ConnectionMinter
from airflow_jwt_provider.signing.jws import describe_public_key, public_key_fingerprint
from airflow_jwt_provider.signing.rotation import SigningChoice, choose_key
from airflow_jwt_provider.signing.signers.base import Signer, key_holder_secret
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE, TokenCache, cache_key
from airflow_jwt_provider.tokens.client_auth import client_authentication
from airflow_jwt_provider.tokens.dpop import DPoPBinding
from airflow_jwt_provider.tokens.endpoint import TokenClient
from airflow_jwt_provider.tokens.grants import GRANTS, on_behalf_of
from airflow_jwt_provider.tokens.impersonation import impersonate
from airflow_jwt_provider.tokens.metadata import token_endpoint_of
from airflow_jwt_provider.tokens.mtls import ContextAdapter, certificate_binding, client_tls_context_for
from airflow_jwt_provider.tokens.shared_cache import SharedTokenCache

__all__ = ["MAX_CLIENT_ASSERTION_LIFETIME", "JwtBearerCredentials"]

log = logging.getLogger(__name__)

#: Distinct token parameters whose cache key one credentials object remembers.
_CACHE_KEY_MEMO = 256


class JwtBearerCredentials:
    """Obtains access tokens for one ``jwt_bearer`` connection.

    :param settings: the connection's validated settings.
    :param signer: signs the connection's assertions (:meth:`from_settings` builds the one the settings
        name); ``None`` when the JWT comes from the platform and no client assertion is signed here.
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
        signer: Signer | None,
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
        #: mTLS (RFC 8705): the context with the connection's certificate, for the token endpoint and the API.
        self.tls_context = client_tls_context_for(settings, signer) if settings.mtls else None
        token_url = settings.auth_url or key_token_url
        if token_url is None and settings.client_assertion.issuer is not None:
            token_url = token_endpoint_of(settings, mtls=settings.mtls)
        if token_url is None:
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: auth_url is not set and the key material names no "
                "token endpoint; set the auth_url extra (or auth_issuer, to read it from the server's metadata)",
                field="auth_url",
            )
        if self.tls_context is not None and not token_url.startswith("https://"):
            raise JwtBearerConfigError(
                f"Connection {settings.conn_id!r}: mtls (or client_auth {settings.client_auth.value}) needs an https "
                f"token endpoint, and auth_url is {token_url}",
                field="auth_url",
            )
        self.token_url: str = token_url
        #: DPoP (RFC 9449): which key binds the tokens; ``None`` for bearer tokens.
        self.dpop = DPoPBinding(settings.dpop, settings.conn_id, signer) if settings.dpop else None
        self.client_id = settings.client_id or key_issuer
        self.minting: ConnectionMinter | None = None
        self.key_fingerprint: str | None = None
        if signer is not None:
            issuer = settings.issuer or key_issuer or settings.client_id
            if issuer is None:  # settings guarantee one unless a JSON key was expected to supply it
                raise JwtBearerConfigError(
                    f"Connection {settings.conn_id!r}: the issuer is unknown; set Login (client id) or issuer",
                    field="issuer",
                )
            minter = AssertionMinter(
                signer,
                key_id=key_id or settings.key_id,
                x5t=settings.x5t,
                kind=settings.signer.signer if settings.signer is not None else "custom",
                conn_id=settings.conn_id,
            )
            self.minting = ConnectionMinter(
                settings, minter, issuer=issuer, client_id=self.client_id, token_url=token_url
            )
            self.key_fingerprint = public_key_fingerprint(signer.public_key)
        self.issuer: str | None = self.minting.issuer if self.minting else None
        self._cache_keys: dict[tuple[TokenParameters, str], str] = {}
        self._cache_keys_lock = threading.Lock()
        context = SourceContext(
            settings.conn_id, settings.http, self.mint_assertion if self.minting else None, settings.lifetime
        )
        self.source: AssertionSource = build_source(settings.source, context)
        exchange = settings.token_exchange
        self.actor: AssertionSource | None = None
        if exchange is not None and exchange.actor is not None:
            actor_mint = (lambda _params: self._minting().actor_token()) if self.minting else None
            self.actor = build_source(
                exchange.actor, dataclasses.replace(context, mint=actor_mint, prefix="actor_token")
            )
        self.session = session or requests.Session()
        if self.tls_context is not None:
            self.session.mount("https://", ContextAdapter(self.tls_context))
        self.client = TokenClient(
            token_url,
            client_authentication(
                settings.client_auth, self.client_id, settings.client_secret, self._client_assertion_source()
            ),
            settings.http,
            session=self.session,
            default_token_lifetime=timedelta(seconds=settings.default_token_lifetime),
            conn_id=settings.conn_id,
        )
        self.shared: SharedTokenCache | None = (
            SharedTokenCache(
                settings.conn_id,
                settings.token_cache,
                self.token_cache_secret,
                longest_fetch=self.client.retry.longest(settings.http.timeout),
            )
            if settings.token_cache.shared
            else None
        )
        if self.shared is not None and signer is None:
            self.token_cache_secret()  # costs nothing without a key: a missing sealing secret is said now
        install_log_redaction()  # once per process: per-call credentials never reach a log line
        TELEMETRY.configure()  # once per process: [metrics] and [traces] read, or nothing after the first call

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
        costs a digest of the key material (or of the device settings). A connection that signs
        nothing with a key of its own (a platform's JWT) gets none.
        """
        for warning in settings.preset_warnings:
            log.warning("%s", warning)
        if settings.signer is None:
            log.info("Connection %r: the JWT comes from %s", settings.conn_id, settings.source.describe())
            return cls(settings, None, cache=cache, session=session)
        choice = choose_key(settings)
        key = choice.key
        _check_key_against_preset(settings, key.signer)
        if choice.warning:
            log.warning("%s", choice.warning)
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
        """``RSA-2048 (RS256)``: the key and the algorithm it signs with; what gives the JWT when there is no key."""
        if self.signer is None:
            return f"no key: {self.settings.source.describe()}"
        return f"{describe_public_key(self.signer.public_key)} ({self.signer.algorithm})"

    # -- assertions -------------------------------------------------------------------------

    def _minting(self) -> ConnectionMinter:
        if self.minting is None:
            raise JwtBearerConfigError(
                f"Connection {self.settings.conn_id!r} has no key: its JWT comes from "
                f"{self.settings.source.describe()}, so it mints nothing",
                field="assertion_source",
            )
        return self.minting

    def audience(self, override: str | tuple[str, ...] | None = None) -> str | tuple[str, ...]:
        """``aud`` of the assertions the connection mints (see :meth:`ConnectionMinter.audience`)."""
        return self._minting().audience(override)

    def mint_assertion(
        self, params: TokenParameters = DEFAULT_TOKEN, audience: str | tuple[str, ...] | None = None
    ) -> str:
        """A new signed assertion; ``params`` and ``audience`` override the connection's settings."""
        return self._minting().assertion(params, audience)

    def mint_client_assertion(self) -> str:
        """RFC 7523 §2.2 client assertion: ``iss`` = ``sub`` = client id, ``aud`` per draft-ietf-oauth-rfc7523bis."""
        return self._minting().client_assertion()

    def _client_assertion_source(self) -> Callable[[], str]:
        """Who makes client assertions: the platform's JWT with client_credentials (federated), else the key."""
        if self.settings.grant_type is GrantType.CLIENT_CREDENTIALS and self.settings.keyless:
            return lambda: self.source.assertion(DEFAULT_TOKEN)
        return self.mint_client_assertion

    # -- tokens -----------------------------------------------------------------------------

    def token_cache_key(self, params: TokenParameters = DEFAULT_TOKEN) -> str:
        """Everything that changes the token: endpoint, client and its secret, iss, sub, aud, scope, claims, key
        (or, for a platform's JWT, who it names: a rotated JWT of the same identity reuses the token).

        Computed once per distinct ``params`` and source identity (a digest over canonical JSON is not
        free, and every API call asks), in a small bounded memo.
        """
        memo = (params, self.source.identity())
        key = self._cache_keys.get(memo)
        if key is None:
            key = self._compute_cache_key(params, memo[1])
            with self._cache_keys_lock:
                self._cache_keys[memo] = key
                if len(self._cache_keys) > _CACHE_KEY_MEMO:
                    del self._cache_keys[next(iter(self._cache_keys))]
        return key

    def _compute_cache_key(self, params: TokenParameters, source_identity: str) -> str:
        minting = self.minting
        exchange = self.settings.token_exchange
        return cache_key(
            token_url=self.token_url,
            client_id=self.client_id,
            issuer=minting.issuer if minting else None,
            subject=minting.subject(params) if minting else None,
            audience=minting.audience() if minting else None,
            scope=params.scope or self.settings.scope,
            claims={**self.settings.claims, **params.claims_copy()},
            key=self.key_fingerprint,
            source=source_identity,
            actor=self.actor.identity() if self.actor else None,
            grant=self.settings.grant_type.value,
            exchange=dataclasses.asdict(dataclasses.replace(exchange, actor=None)) if exchange else None,
            auth_params=dict(self.settings.auth_params),
            handed_in=_digest(params.assertion),
            # A connection with a wrong client secret must not be served the token a correct one
            # fetched: the error would go unnoticed until the cache forgets it.
            client_auth=self.settings.client_auth.value,
            client_secret=_digest(self.settings.client_secret),
            # a token bound to a key or a certificate is another token than a bearer one
            binding=self.dpop.cache_tag() if self.dpop is not None else self._certificate_binding(),
        )

    def _certificate_binding(self) -> str | None:
        if self.tls_context is None or self.signer is None or self.signer.certificate is None:
            return None
        return f"mtls:{certificate_binding(self.signer.certificate)}"

    def token_cache_secret(self) -> bytes:
        """What the shared cache seals tokens with: material only a holder of this connection's secrets has.

        With a key: the signer's key-holder secret (a digest of a local private key, or a deterministic
        signature by a remote signer, see :func:`~airflow_jwt_provider.signing.signers.base.key_holder_secret`),
        and the client secret when there is one. A remote ECDSA or PSS signer gives no secret (its
        signatures are random): the client secret alone then seals. Without a key (a platform's JWT,
        which changes at every rotation and is no secret of the deployment's), the client secret and
        ``[jwt_bearer] token_cache_secret`` seal. With none of these, the shared cache is refused rather
        than keeping tokens readable by anyone who reaches the store.
        """
        key_part = key_holder_secret(self.signer) if self.signer is not None else None
        client_secret = self.settings.client_secret
        configured = self.settings.token_cache.secret
        if key_part is None and not client_secret and not configured:
            kind = self.settings.token_cache.kind
            if self.signer is None:
                problem = (
                    f"this connection has no key (its JWT comes from {self.settings.source.describe()}). Set "
                    "[jwt_bearer] token_cache_secret (AIRFLOW__JWT_BEARER__TOKEN_CACHE_SECRET) to a random secret "
                    "shared by every worker and the triggerer, or a client secret (Password)"
                )
            else:
                problem = (
                    f"this signer ({self.describe_key()}) signs with random nonces and cannot derive one. Set a "
                    "client secret (Password) or [jwt_bearer] token_cache_secret, or sign with RS256 or EdDSA"
                )
            raise JwtBearerConfigError(
                f"Connection {self.settings.conn_id!r}: token_cache {kind!r} encrypts the tokens it shares with a "
                f"secret only the connection's holders have, but {problem}; or set token_cache to memory",
                field="token_cache",
            )
        parts = [b"jwt-bearer-token-cache:v1", (self.key_fingerprint or "").encode("ascii"), key_part or b""]
        parts.append(hashlib.sha256(client_secret.encode("utf-8")).digest() if client_secret else b"")
        if configured:
            parts.append(hashlib.sha256(b"configured:" + configured.encode("utf-8")).digest())
        return hashlib.sha256(b"\x00".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()

    def get_token(self, params: TokenParameters = DEFAULT_TOKEN, *, force_refresh: bool = False) -> AccessToken:
        """A valid access token for ``params``: from this process's cache, else the shared store, else the endpoint."""
        if self.minting is None and (params.subject is not None or params.claims):
            raise JwtBearerConfigError(
                f"Connection {self.settings.conn_id!r}: a per-call subject or claims cannot change the JWT of "
                f"{self.settings.source.describe()}: the platform decides what it claims. Use a connection per "
                "identity, or assertion_source sign",
                field="subject",
            )
        key = self.token_cache_key(params)
        lookup = _Lookup(self, key, params, force_refresh)
        token = self.cache.get(key, lookup, force_refresh=force_refresh)
        if not lookup.called:
            TELEMETRY.cache_hit(self.settings.conn_id)
        return self.dpop.bind(token) if self.dpop is not None else token

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
        TELEMETRY.refreshed_after_401(self.settings.conn_id)
        key = self.token_cache_key(params)
        self.cache.invalidate(key, token=rejected)
        if self.shared is not None:  # the shared entry too, unless another process already replaced it
            self.shared.invalidate(key, rejected)
        token = self.cache.get(key, _Lookup(self, key, params))
        return self.dpop.bind(token) if self.dpop is not None else token

    def refresh_rejected_again(
        self, params: TokenParameters, replacement: AccessToken, refused_at: datetime
    ) -> AccessToken | None:
        """The API refused ``replacement`` too, the token :meth:`refresh_rejected` gave after a 401 at ``refused_at``.

        A replacement obtained before that 401 came from a cache: another process's token, which may have been
        revoked with the first (the server revoked every token, after a shared store had lost its entry and was
        refilled with a second token). Such a token is dropped like the first, and a token fetched now is given
        (one more round, never more). ``None`` when the replacement was obtained after the 401: a token that
        new being refused is the API's answer, not a stale cache.
        """
        if replacement.issued_at >= refused_at:
            return None
        return self.refresh_rejected(params, replacement)

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
        if params.assertion is not None:
            return self.client.fetch(on_behalf_of(self.settings, params.assertion, params))
        request = GRANTS[self.settings.grant_type].request(self.settings, self.source, self.actor, params)
        if self.dpop is not None:
            dpop = self.settings.dpop
            assert dpop is not None
            request = dataclasses.replace(request, dpop=self.dpop.key(), dpop_allow_bearer=dpop.allow_bearer)
        token = self.client.fetch(request)
        exchange = self.settings.token_exchange
        if exchange is not None and exchange.impersonation_url:
            return impersonate(
                token, exchange.impersonation_url, params.scope or self.settings.scope, self.settings.http, self.session
            )
        return token


class _Lookup:
    """Where the process cache gets a missing token: the shared store (asks the endpoint once), or the endpoint.

    Called only on a miss of the process cache (``called`` tells the caller which it was); the span of
    the token's acquisition and the cache-tier metric are made here, once per missing token.
    """

    __slots__ = ("called", "credentials", "force", "key", "params")

    def __init__(
        self, credentials: JwtBearerCredentials, key: str, params: TokenParameters, force: bool = False
    ) -> None:
        self.credentials = credentials
        self.key = key
        self.params = params
        self.force = force
        self.called = False

    def __call__(self) -> AccessToken:
        self.called = True
        credentials = self.credentials
        settings = credentials.settings
        fetched = False

        def request() -> AccessToken:
            nonlocal fetched
            fetched = True
            return credentials.request_token(self.params)

        with TELEMETRY.token_span(settings.conn_id, settings.grant_type.value, settings.source.source) as span:
            shared = credentials.shared
            token = request() if shared is None else shared.obtain(self.key, request, force=self.force)
            TELEMETRY.token_obtained(span, settings.conn_id, CacheTier.ENDPOINT if fetched else CacheTier.SHARED)
        return token


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
