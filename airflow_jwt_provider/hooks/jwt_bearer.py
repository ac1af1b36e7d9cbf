"""The Airflow hook: a ``jwt_bearer`` connection in, access tokens and authenticated sessions out.

The signing stack (cryptography, PyJWT, key loading) is imported when the hook first needs
credentials, not when this module is imported: DAG files import it, and the dag-processor
parses them again and again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import redact

from airflow_jwt_provider import CONN_TYPE, DEFAULT_CONN_ID
from airflow_jwt_provider.common.retry import RetryPolicy
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.settings import ConnectionLike, JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError, JwtBearerError
from airflow_jwt_provider.http.request import ApiRequest
from airflow_jwt_provider.http.response import raise_for_status
from airflow_jwt_provider.tokens.cache import TOKEN_CACHE, TokenCache

if TYPE_CHECKING:
    from airflow_jwt_provider.http.session import JwtBearerSession
    from airflow_jwt_provider.signing.signers.base import Signer
    from airflow_jwt_provider.tokens.access_token import AccessToken
    from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials

#: ``extra_options`` keys of ``HttpHook.run`` that map onto ``requests`` arguments.
_EXTRA_OPTIONS = frozenset({"timeout", "verify", "stream", "allow_redirects", "proxies", "cert"})
#: Sessions kept by one hook for :meth:`JwtBearerHook.run` (one per distinct token parameters).
MAX_CACHED_SESSIONS = 16


class JwtBearerHook(BaseHook):
    """Call APIs with access tokens from the OAuth 2.0 JWT Bearer grant (RFC 7523).

    The connection is read and validated once, the key loaded once per process (cached by
    content), and tokens are cached per process (and, with ``token_cache`` ``file`` or ``redis``, shared
    by every process that uses the connection) and refreshed ahead of expiry.

    The constructor and :meth:`run` take ``HttpHook``'s arguments in ``HttpHook``'s order, so
    the http provider's ``HttpOperator`` (which builds the hook of a connection with
    ``conn.get_hook(hook_params=...)``) works with a ``jwt_bearer`` connection.

    :param jwt_bearer_conn_id: the ``jwt_bearer`` connection.
    :param method: default HTTP method of :meth:`run`.
    :param token_cache: where tokens are cached; the process-wide cache by default.
    :param auth_type: refused: the connection's bearer token authenticates every request.
    :param tcp_keep_alive: send TCP keep-alive probes on API connections (``HttpHook``'s
        arguments, with its defaults).
    """

    conn_name_attr = "jwt_bearer_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "JWT Bearer (OAuth 2.0 RFC 7523)"

    def __init__(
        self,
        jwt_bearer_conn_id: str = default_conn_name,
        method: str = "GET",
        *,
        token_cache: TokenCache | None = None,
        auth_type: object = None,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
    ) -> None:
        super().__init__()
        if auth_type is not None:
            raise JwtBearerConfigError(
                "auth_type cannot be used with a jwt_bearer connection: the connection's bearer token "
                "authenticates every request; remove auth_type",
                field="auth_type",
            )
        self.jwt_bearer_conn_id = jwt_bearer_conn_id
        self.method = method.upper()
        self._keep_alive = (tcp_keep_alive, tcp_keep_alive_idle, tcp_keep_alive_count, tcp_keep_alive_interval)
        self._token_cache = token_cache if token_cache is not None else TOKEN_CACHE  # an empty cache is falsy
        self._sessions: OrderedDict[TokenParameters, JwtBearerSession] = OrderedDict()

    @classmethod
    def from_connection(cls, conn: ConnectionLike, **kwargs: Any) -> JwtBearerHook:
        """A hook on an already fetched connection (no second lookup)."""
        hook = cls(conn.conn_id, **kwargs)
        hook.settings = parse_connection(conn)  # fills the cached property
        return hook

    # -- connection → settings → credentials (each computed once per hook) ----------------------

    @cached_property
    def settings(self) -> JwtBearerSettings:
        """The connection's validated settings."""
        return parse_connection(self.get_connection(self.jwt_bearer_conn_id))

    @cached_property
    def credentials(self) -> JwtBearerCredentials:
        """Mints assertions and fetches, caches and refreshes tokens for this connection."""
        from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials

        return JwtBearerCredentials.from_settings(self.settings, cache=self._token_cache)

    @property
    def signer(self) -> Signer | None:
        """What signs the assertions (``algorithm``, ``key_id``, ``certificate``...); ``None`` when keyless."""
        return self.credentials.signer

    # -- tokens ------------------------------------------------------------------------------------

    def mint_assertion(
        self,
        subject: str | None = None,
        claims: Mapping[str, Any] | None = None,
        audience: str | list[str] | None = None,
    ) -> str:
        """A new signed JWT assertion (new ``jti``, ``iat`` and ``exp`` every call).

        It is not registered with Airflow's secret masker (whose cost grows with every value
        it keeps): like every JWT, it is blanked from log lines by its shape.
        """
        aud = tuple(audience) if isinstance(audience, list) else audience
        return self.credentials.mint_assertion(TokenParameters.of(subject=subject, claims=claims), aud)

    def get_token(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        force_refresh: bool = False,
        assertion: str | None = None,
    ) -> AccessToken:
        """A valid access token; per-call ``subject``/``scope``/``claims`` override the connection's.

        :param assertion: a JWT obtained elsewhere (e.g. a user's token for Microsoft's
            on-behalf-of flow), sent instead of a minted one.
        """
        params = TokenParameters.of(subject, scope, claims, assertion)
        return self.credentials.get_token(params, force_refresh=force_refresh)

    # -- sessions and requests ---------------------------------------------------------------------

    def get_conn(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> JwtBearerSession:
        """A new ``requests`` session that authenticates as ``subject`` (the connection's by default).

        Relative URLs resolve against the connection's host (or Salesforce's ``instance_url``).
        A request to any other host fails before it is sent unless the connection's
        ``trusted_hosts`` lists it: the token goes only where the connection says.
        """
        return self._new_session(TokenParameters.of(subject, scope, claims))

    def _new_session(self, params: TokenParameters) -> JwtBearerSession:
        from airflow_jwt_provider.http.auth import JwtBearerAuth
        from airflow_jwt_provider.http.session import JwtBearerSession, TcpKeepAlive

        credentials = self.credentials
        base_url = credentials.api_base_url(params)
        return JwtBearerSession(
            JwtBearerAuth(credentials, params, trusted=self.settings.trusted(base_url)),
            self.settings.http,
            base_url=base_url,
            keep_alive=TcpKeepAlive(*self._keep_alive),
            tls_context=credentials.tls_context,
        )

    def _session(self, params: TokenParameters) -> JwtBearerSession:
        """The hook's own session for ``params``; at most :data:`MAX_CACHED_SESSIONS`, least recent closed."""
        session = self._sessions.get(params)
        if session is not None:
            self._sessions.move_to_end(params)
            return session
        session = self._sessions[params] = self._new_session(params)
        if len(self._sessions) > MAX_CACHED_SESSIONS:
            _, oldest = self._sessions.popitem(last=False)
            oldest.close()
        return session

    def api_base_url(
        self,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The connection's host, else the ``instance_url`` the token endpoint returned, if any."""
        return self.credentials.api_base_url(TokenParameters.of(subject, scope, claims))

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        *,
        method: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        subject: str | None = None,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = False,
        check_response: bool = True,
        **request_kwargs: Any,
    ) -> requests.Response:
        """Send one request to ``endpoint`` (relative to the connection's host, or absolute).

        The positional order is ``HttpHook.run``'s. A GET's dict ``data`` is sent as the query
        string, as ``HttpHook`` does. Raises :class:`ApiResponseError` for an HTTP error
        status unless ``check_response`` is false (``extra_options={"check_response": False}``
        in ``HttpOperator`` terms). ``retry`` (off by default, as in ``HttpHook.run``) retries
        429/5xx answers and connection errors per :class:`RetryPolicy`.

        :param request_kwargs: more ``requests`` arguments (``files``, ``cookies``, ``timeout``...).
        """
        options = dict(extra_options or {})
        check_response = bool(options.pop("check_response", check_response))
        request_kwargs.update({k: v for k, v in options.items() if k in _EXTRA_OPTIONS})
        request = ApiRequest(
            endpoint=endpoint,
            method=method or self.method,
            query=params,
            json=json,
            data=data,
            headers=headers,
            token=TokenParameters.of(subject, scope, claims),
        )
        response = self.send(request, retry=retry, **request_kwargs)
        if check_response:
            raise_for_status(response)
        return response

    def send(
        self,
        request: ApiRequest,
        *,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = False,
        **request_kwargs: Any,
    ) -> requests.Response:
        """Send ``request`` with its token (one refresh and re-send on 401), retrying per ``retry`` (off by default).

        Returns the last answer whatever its status: judging it is the caller's business
        (:func:`~airflow_jwt_provider.http.response.check_status`).
        """
        session = self._session(request.token)
        url = session.url_for(request.endpoint)  # resolved once, here; absolute URLs pass the session as they are

        def attempt() -> requests.Response:
            self.log.debug("%s %s", request.method, url)
            return session.request(
                request.method,
                url,
                params=request.query,
                json=request.json,
                data=request.data,
                headers=request.headers,
                **request_kwargs,
            )

        return RetryPolicy.coerce(retry).call(
            attempt,
            what=request.describe(),
            method=request.method,
            log=self.log,
            transient=(requests.ConnectionError, requests.Timeout),
            conn_id=self.jwt_bearer_conn_id,
        )

    def run_with_advanced_retry(self, _retry_args: dict[str, Any], *args: Any, **kwargs: Any) -> requests.Response:
        """``HttpOperator(retry_args=...)``: :meth:`run` under a ``tenacity.Retrying(**_retry_args)``."""
        import tenacity

        return tenacity.Retrying(**_retry_args)(self.run, *args, **kwargs)

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a fresh token; report its lifetime (never the token), the key that signed and a near expiry."""
        try:
            credentials = self.credentials
            token = credentials.get_token(force_refresh=True)
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
        choice = credentials.choice
        if choice is not None:
            key = choice.key.describe()
        elif credentials.signer is not None:
            key = f"key {credentials.describe_key()}"
        else:
            key = f"the JWT from {credentials.source.describe()}"
        message = f"Token obtained from {credentials.token_url} with {key}: {token.token_type}, {lifetime}{scope}."
        if choice and choice.passed_over:
            message += " Passed over " + "; ".join(c.describe() for c in choice.passed_over) + "."
        for warning in (
            *credentials.settings.preset_warnings,
            *([choice.warning] if choice and choice.warning else []),
        ):
            message += f" Warning: {warning}."
        return True, message
