"""The Airflow hook: a ``jwt_bearer`` connection in, access tokens and authenticated sessions out."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import redact

from airflow_jwt_provider.access_token import AccessToken
from airflow_jwt_provider.auth import JwtBearerAuth
from airflow_jwt_provider.credentials import JwtBearerCredentials
from airflow_jwt_provider.exceptions import ApiResponseError, JwtBearerConfigError, JwtBearerError
from airflow_jwt_provider.keys import KeyRequest, SigningKey, load_signing_key
from airflow_jwt_provider.secrets import mask_secret_value
from airflow_jwt_provider.session import JwtBearerSession, join_url
from airflow_jwt_provider.settings import ConnectionLike, JwtBearerSettings
from airflow_jwt_provider.token_cache import TOKEN_CACHE, TokenCache
from airflow_jwt_provider.token_client import HttpSettings

#: Keyword arguments the http provider's ``HttpOperator`` passes to the hook of a connection
#: (``conn.get_hook(hook_params=...)``); accepted so that operator works with this hook.
_HTTP_OPERATOR_HOOK_PARAMS = frozenset(
    {"tcp_keep_alive", "tcp_keep_alive_idle", "tcp_keep_alive_count", "tcp_keep_alive_interval"}
)
#: ``extra_options`` keys of ``HttpHook.run`` that map onto ``requests`` arguments.
_EXTRA_OPTIONS = frozenset({"timeout", "verify", "stream", "allow_redirects", "proxies", "cert"})
_BODY_EXCERPT = 300


class JwtBearerHook(BaseHook):
    """Call APIs with access tokens from the OAuth 2.0 JWT Bearer grant (RFC 7523).

    The connection is read and validated once, the key loaded once per process (cached by
    content), and tokens are cached per process and refreshed ahead of expiry.

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection.
    :param method: default HTTP method of :meth:`run` (``HttpOperator`` sets it).
    :param token_cache: where tokens are cached; the process-wide cache by default.
    """

    conn_name_attr = "jwt_bearer_conn_id"
    default_conn_name = "jwt_bearer_default"
    conn_type = "jwt_bearer"
    hook_name = "JWT Bearer (OAuth 2.0 RFC 7523)"

    def __new__(cls, *args: Any, **kwargs: Any) -> JwtBearerHook:
        # The http provider's HttpOperator builds the hook of a connection with
        # conn.get_hook(hook_params={method, auth_type, tcp_keep_alive...}) and then calls
        # hook.run(endpoint, data, headers, extra_options) positionally, in HttpHook's order.
        # Such a hook gets the HttpHook-ordered run() of the subclass below; every other hook
        # keeps this class's documented order.
        if cls is JwtBearerHook and _HTTP_OPERATOR_HOOK_PARAMS & set(kwargs):
            cls = HttpOperatorJwtBearerHook
        return super().__new__(cls)

    @classmethod
    def from_connection(cls, conn: ConnectionLike, **kwargs: Any) -> JwtBearerHook:
        """A hook on an already fetched connection (the trigger reads it with the async client)."""
        hook = cls(conn.conn_id, **kwargs)
        hook.settings = JwtBearerSettings.from_connection(conn)  # fills the cached property
        return hook

    def __init__(
        self,
        jwt_bearer_conn_id: str = default_conn_name,
        method: str = "GET",
        *,
        token_cache: TokenCache | None = None,
        auth_type: Any = None,
        **http_operator_params: Any,
    ) -> None:
        super().__init__()
        if auth_type is not None:
            raise JwtBearerConfigError(
                "auth_type cannot be used with a jwt_bearer connection: the connection's bearer token "
                "authenticates every request; remove auth_type",
                field="auth_type",
            )
        unexpected = sorted(set(http_operator_params) - _HTTP_OPERATOR_HOOK_PARAMS)
        if unexpected:
            raise TypeError(f"JwtBearerHook got unexpected keyword argument(s): {', '.join(unexpected)}")
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self.method = method.upper()
        self._token_cache = token_cache or TOKEN_CACHE
        self._sessions: dict[tuple[Any, ...], JwtBearerSession] = {}

    # -- connection → settings → key → credentials (each computed once per hook) ---------------

    @cached_property
    def settings(self) -> JwtBearerSettings:
        """The connection's validated settings."""
        return JwtBearerSettings.from_connection(self.get_connection(self.jwt_bearer_conn_id))

    @cached_property
    def signing_key(self) -> SigningKey:
        """The signing key (shared by every hook of the process that uses the same material)."""
        settings = self.settings
        key = load_signing_key(
            KeyRequest(
                source=settings.key_source,
                keystore_type=settings.keystore_type,
                keystore_password=settings.keystore_password,
                key_alias=settings.key_alias,
                key_password=settings.key_password,
            )
        )
        warning = key.certificate_warning()
        if warning:
            self.log.warning("Connection %r: %s", self.jwt_bearer_conn_id, warning)
        return key

    @cached_property
    def credentials(self) -> JwtBearerCredentials:
        """Mints assertions and fetches, caches and refreshes tokens for this connection."""
        return JwtBearerCredentials(self.settings, self.signing_key, cache=self._token_cache)

    @property
    def http_settings(self) -> HttpSettings:
        settings = self.settings
        return HttpSettings(timeout=settings.timeout, verify=settings.verify, proxies=settings.proxies)

    # -- public API ------------------------------------------------------------------------------

    def mint_assertion(
        self,
        subject: str | None = None,
        claims: Mapping[str, Any] | None = None,
        audience: str | list[str] | None = None,
    ) -> str:
        """A new signed JWT assertion (new ``jti``, ``iat`` and ``exp`` every call)."""
        aud = tuple(audience) if isinstance(audience, list) else audience
        assertion = self.credentials.mint_assertion(subject=subject, claims=claims, audience=aud)
        mask_secret_value(assertion)  # it leaves the provider: keep it out of the task log
        return assertion

    def get_token(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        force_refresh: bool = False,
        assertion: str | None = None,
    ) -> AccessToken:
        """A valid access token; per-call ``subject``/``scope``/``claims`` override the connection's."""
        return self.credentials.get_token(
            subject=subject, scope=scope, claims=claims, force_refresh=force_refresh, assertion=assertion
        )

    def get_conn(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> JwtBearerSession:
        """A ``requests`` session that authenticates as ``subject`` (the connection's by default).

        Relative URLs resolve against the connection's host (or Salesforce's ``instance_url``).
        """
        auth = JwtBearerAuth(self.credentials, subject=subject, scope=scope, claims=claims)
        return JwtBearerSession(auth, self.http_settings, base_url=self.api_base_url(subject, scope, claims))

    def api_base_url(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The connection's host, else the ``instance_url`` the token endpoint returned, if any."""
        if self.settings.api_base_url:
            return self.settings.api_base_url
        token = self.get_token(subject=subject, scope=scope, claims=claims)
        instance_url = token.extra.get("instance_url")
        return str(instance_url) if instance_url else None

    def url_for(self, endpoint: str | None, base_url: str | None) -> str:
        """``endpoint`` resolved against ``base_url`` (see :meth:`api_base_url`); absolute URLs pass."""
        try:
            return join_url(base_url, endpoint)
        except ValueError:
            raise JwtBearerConfigError(
                f"Connection {self.jwt_bearer_conn_id!r}: host (the API base URL) is empty and "
                f"endpoint {endpoint!r} is relative; set the connection's Host or pass an absolute URL",
                field="host",
            ) from None

    def run(
        self,
        endpoint: str | None = None,
        method: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        check_response: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request to ``endpoint`` (relative to the connection's host, or absolute).

        Raises :class:`ApiResponseError` for an HTTP error status unless ``check_response`` is
        false (``extra_options={"check_response": False}`` in ``HttpOperator`` terms). A GET
        whose ``data`` is a dict sends it as the query string, as ``HttpHook`` does.
        """
        method = (method or self.method).upper()
        options = dict(extra_options or {})
        check_response = bool(options.pop("check_response", check_response))
        kwargs.update({k: v for k, v in options.items() if k in _EXTRA_OPTIONS})
        if method in ("GET", "HEAD") and params is None and isinstance(data, Mapping):
            params, data = data, None
        session_key = (subject, scope, tuple(sorted((claims or {}).items())))
        session = self._sessions.get(session_key)
        if session is None:
            session = self._sessions[session_key] = self.get_conn(subject=subject, scope=scope, claims=claims)
        url = self.url_for(endpoint, session.base_url)
        self.log.debug("%s %s", method, url)
        response = session.request(method, url, params=params, json=json, data=data, headers=headers, **kwargs)
        if check_response:
            raise_for_status(response)
        return response

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a fresh token and report its lifetime (never the token)."""
        try:
            token = self.get_token(force_refresh=True)
        except JwtBearerError as exc:
            return False, str(exc)
        except Exception as exc:  # the Test button must show a message, not a stack trace
            return False, f"{type(exc).__name__}: {redact(str(exc))}"
        lifetime = (
            f"expires in {int(token.lifetime.total_seconds())} s"
            if token.expires_at
            else "no expiry given by the server"
        )
        scope = f", scope {token.scope!r}" if token.scope else ""
        return True, (
            f"Token obtained from {self.credentials.token_url} with key {self.signing_key.describe()} "
            f"({self.credentials.signer.algorithm}): {token.token_type}, {lifetime}{scope}."
        )


class HttpOperatorJwtBearerHook(JwtBearerHook):
    """The hook as ``HttpOperator`` gets it: ``run`` takes ``HttpHook.run``'s positional order.

    Created by :meth:`JwtBearerHook.__new__` when the hook is built with ``HttpOperator``'s
    ``tcp_keep_alive`` parameters; not meant to be instantiated directly.
    """

    def run(  # type: ignore[override]
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return super().run(endpoint, data=data, headers=headers, extra_options=extra_options, **kwargs)

    def run_with_advanced_retry(self, _retry_args: dict[str, Any], *args: Any, **kwargs: Any) -> requests.Response:
        """``HttpOperator(retry_args=...)``: :meth:`run` under a ``tenacity.Retrying(**_retry_args)``."""
        import tenacity

        return tenacity.Retrying(**_retry_args)(self.run, *args, **kwargs)


def raise_for_status(response: requests.Response) -> None:
    """Raise :class:`ApiResponseError` naming the request and the status for 4xx/5xx answers."""
    if response.status_code < 400:
        return
    request = response.request
    url = (request.url or "").split("?", 1)[0] if request is not None else "?"
    excerpt = (response.text or "")[:_BODY_EXCERPT].strip()
    hint = ""
    if response.status_code == 401:
        hint = " (a fresh token was refused too: check the client's permissions and subject)"
    elif response.status_code == 403:
        hint = " (the token lacks permission: check scope and the subject's rights)"
    message = f"{request.method if request else ''} {url} failed: HTTP {response.status_code} {response.reason}{hint}"
    if excerpt:
        message += f": {excerpt}"
    raise ApiResponseError(message, status=response.status_code, response=response)
