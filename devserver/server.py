"""A real OAuth 2.0 authorization server and protected API on 127.0.0.1, for tests and the demo.

Why this exists: a client that signs JWT assertions can pass its own unit tests and still be
refused by every real provider (wrong ``aud``, a thumbprint computed over the wrong bytes, a
lifetime too long, a reused ``jti``...). This server checks our client's requests with code
that is *not ours*: Authlib's server side and joserfc's signature and claim checks, configured
the way providers behave. The parts:

* :mod:`devserver.grants`: the grants (JWT bearer, client credentials, Entra on-behalf-of),
  client authentication (``private_key_jwt``, client secret post/basic), the assertion checks,
  and why each deviation from Authlib's defaults exists;
* :mod:`devserver.token_endpoint`: ``POST /oauth2/token`` and the RFC 8414 metadata;
* :mod:`devserver.api`: the protected API under ``/api`` and its bearer-token check;
* :mod:`devserver.faults`: injected 429/503 answers and a proxy's HTML 502 page;
* :mod:`devserver.records`: what is recorded per token request, and the loopback-only JSON view
  of the records (``/_devserver/...``) for a server running in another process;
* :mod:`devserver.cli`: ``python -m devserver``;
* this module: :class:`LocalAuthorizationServer` -- lifecycle, clients, knobs, records, issued
  tokens and the clock -- which assembles the Flask app from those blueprints.

Authlib refuses plain ``http://`` request URLs unless the host is loopback or
``AUTHLIB_INSECURE_TRANSPORT`` is set; a server bound to another interface sets it.

Every response carries a ``Date`` header from the server's clock, which :attr:`clock_offset`
shifts to simulate clock skew.
"""

from __future__ import annotations

import email.utils
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask, Response, jsonify, request
from joserfc import jwk
from werkzeug.serving import WSGIRequestHandler

from devserver import api, exchange, faults, records, token_endpoint
from devserver.api import API_PREFIX, DEFAULT_JOB_READY_AFTER
from devserver.api import ITEM_COUNT as ITEM_COUNT  # re-exported: it used to be defined here
from devserver.exchange import TOKEN_EXCHANGE_GRANT_TYPE
from devserver.faults import Faults
from devserver.federation import FederationRule, TrustedIssuers
from devserver.grants import (
    ALLOWED_ALGORITHMS,
    CLIENT_ASSERTION_TYPE,
    JWT_BEARER_GRANT_TYPE,
    AuthlibServer,
    UsedJti,
    User,
    UserTokenKey,
)
from devserver.records import note_token_request
from devserver.token_endpoint import TOKEN_PATH
from devserver.web import SERVER_EXTENSION, ServingThread, is_loopback, json_error

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CLIENT_ASSERTION_TYPE",
    "JWT_BEARER_GRANT_TYPE",
    "IssuedToken",
    "LocalAuthorizationServer",
    "RegisteredClient",
]

log = logging.getLogger("devserver")

DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_LEEWAY = 60


@dataclass
class RegisteredClient(ClientMixin):
    """A client known to the server: its verification key and what its assertions must say."""

    client_id: str
    public_key: jwk.Key | None = None
    certificate_der: bytes | None = None
    client_secret: str | None = field(default=None, repr=False)
    required_claims: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    extra_audiences: tuple[str, ...] = ()
    max_assertion_lifetime: int = 300
    #: Assertions may leave ``sub`` out (Google service accounts); RFC 7523 §3 requires it otherwise.
    subject_optional: bool = False
    #: Authenticates with a platform JWT its federated credentials admit (see ``trust_issuer``).
    federated: bool = False

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return hmac.compare_digest(self.client_secret.encode("utf-8"), client_secret.encode("utf-8"))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method in ("client_secret_basic", "client_secret_post"):
            return self.client_secret is not None
        if method in ("private_key_jwt", "client_assertion_jwt"):
            return self.public_key is not None or self.federated
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (JWT_BEARER_GRANT_TYPE, "client_credentials", TOKEN_EXCHANGE_GRANT_TYPE)


@dataclass
class IssuedToken:
    """An opaque access token as the resource server sees it."""

    access_token: str = field(repr=False)
    sub: str
    client_id: str
    scope: str | None
    grant_type: str
    expires_at: float
    #: RFC 8693 §4.1: who acts for ``sub`` (a token exchange with an actor token).
    act: dict[str, Any] | None = None
    #: The ``audience`` parameters of a token exchange.
    audiences: tuple[str, ...] = ()


class _Handler(WSGIRequestHandler):
    """Request handler that leaves ``Date`` to the application and logs quietly.

    ``BaseHTTPRequestHandler.send_response`` adds ``Date`` from the real clock; the app adds
    its own from the (possibly skewed) server clock, and two Date headers would make the
    skew test meaningless.
    """

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), message % args if args else message)


def _public_key_to_jwk(public_key: Any) -> jwk.Key:
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(public_key, rsa.RSAPublicKey):
        return jwk.RSAKey.import_key(pem)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return jwk.ECKey.import_key(pem)
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return jwk.OKPKey.import_key(pem)
    raise ValueError(f"unsupported public key type {type(public_key).__name__}")


def _healthz() -> Response:
    return jsonify(status="ok")


def _not_found(exc: Exception) -> tuple[Response, int]:
    return json_error("not_found", f"no route for {request.path}", 404)


def _not_allowed(exc: Exception) -> tuple[Response, int]:
    return json_error("method_not_allowed", f"{request.method} not allowed on {request.path}", 405)


class LocalAuthorizationServer:
    """Token endpoint + protected API in a background thread; see the module docstring.

    Knobs (plain attributes, settable between tests; :meth:`reset` restores them):

    ``clock_offset``
        seconds added to the real clock for every time decision and the ``Date`` header.
    ``leeway``
        clock-skew allowance for ``exp``/``iat``/``nbf`` (Authlib's default, 60 s).
    ``token_lifetime``
        lifetime of issued access tokens, sent as ``expires_in``.
    ``omit_expires_in``
        answer like Salesforce: no ``expires_in``, but ``instance_url`` and ``issued_at``.
    ``html_error_next``
        answer the next token request(s) with a proxy's HTML 502 page (``True`` or a count).
    ``job_ready_after``
        the poll of ``/api/jobs/<id>`` that first answers ``done`` (per job id).
    ``careless``
        a server that repeats credentials in its answers, as some do by mistake: token-endpoint
        errors quote the client secret and the assertions received, and ``/api/echo-authorization``
        answers with the whole ``Authorization`` header (status from its ``status`` query).
        For the tests that prove the client never passes such echoes on.
    ``keep_credentials``
        keep every assertion, client assertion and client secret received in
        :attr:`received_credentials` (never in the records), so that a test can search the
        client's logs for each one; :meth:`issued_tokens` gives the tokens issued.

    Records (lists, appended in request order, before the response is sent) -- no secret value,
    assertion or access token is ever recorded:

    ``token_requests``
        one dict per POST to the token endpoint: ``grant_type``, ``client_id``, ``form_fields``
        (names only), ``content_type``, ``scope`` (form), ``assertion_scope`` (claim),
        ``requested_token_use``, ``client_assertion_type``, ``client_secret_sent``,
        ``client_secret_via`` (``"post"``/``"basic"``/``"basic+post"``/None), ``client_auth``
        (the method that authenticated the client), ``assertion_header``/``assertion_claims``
        and ``client_assertion_header``/``client_assertion_claims`` (decoded even when
        refused) with ``assertion_verified``/``client_assertion_verified``, ``issued_sub``,
        ``issued_scope``, ``success``, ``status``, ``error``, ``error_description``, ``time``.
    ``api_requests``
        ``method``, ``path``, ``query`` (dict; the values of ``access_token`` and other credential
        parameters replaced by ``"<redacted>"``), ``subject`` and ``client_id`` of the bearer
        token (None when refused), ``auth_scheme`` (the Authorization scheme only), ``status``.
    ``results``
        the JSON bodies posted to ``/api/results``.

    Records over HTTP, for a server in another process (``python -m devserver``); answered
    to loopback clients only, 403 otherwise (see :mod:`devserver.records`):

    ``GET /_devserver/token-requests``, ``GET /_devserver/api-requests``
        ``token_requests`` and ``api_requests`` as JSON arrays.
    ``POST /_devserver/reset``
        :meth:`reset`.

    Parts the blueprints and grants use: ``authlib`` (Authlib's authorization server with the
    grants of :mod:`devserver.grants`), ``faults`` (:class:`devserver.faults.Faults`),
    ``used_jti`` (assertion ids already accepted; kept across :meth:`reset`) and
    ``user_token_key`` (signs the on-behalf-of user tokens).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        leeway: int = DEFAULT_LEEWAY,
    ) -> None:
        self.host = host
        self.port = port
        self._default_token_lifetime = token_lifetime
        self._default_leeway = leeway
        self._lock = threading.RLock()
        self.clients: dict[str, RegisteredClient] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()
        self.used_jti = UsedJti()
        self.user_token_key = UserTokenKey()
        self.faults = Faults()
        self.federation = TrustedIssuers()
        #: Google-style impersonation: service account e-mail → glob of the federated subjects allowed.
        self.impersonation: dict[str, str] = {}
        self._serving = ServingThread("devserver", _Handler)
        self._reset_state()
        self.authlib = AuthlibServer(self, save_token=self._save_token, generate_token=self._generate_token)
        self.app = self._build_app()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> LocalAuthorizationServer:
        """Listen (port 0 = any free port) and serve from a daemon thread."""
        if not is_loopback(self.host):
            # Authlib refuses http:// request URLs that are not loopback (see module doc).
            os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self.port = self._serving.start(self.host, self.port, self._wsgi_app)
        log.debug("devserver listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        self._serving.stop()

    def __enter__(self) -> LocalAuthorizationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL clients should use (a wildcard bind address is reached via loopback)."""
        if not self._serving.running:
            raise RuntimeError("server not started")
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def issuer(self) -> str:
        """``iss`` of the user tokens this server issues."""
        return self.url

    # ----------------------------------------------------------------- configuration

    def register_client(
        self,
        client_id: str,
        *,
        certificate_pem: str | bytes | None = None,
        public_key_pem: str | bytes | None = None,
        client_secret: str | None = None,
        required_claims: Mapping[str, Iterable[Any] | None] | None = None,
        extra_audiences: Iterable[str] = (),
        max_assertion_lifetime: int = 300,
        subject_optional: bool = False,
        federated: bool = False,
    ) -> RegisteredClient:
        """Register (or replace) a client.

        ``certificate_pem`` is preferred over ``public_key_pem`` because it also lets the server
        check ``x5t``/``x5t#S256`` headers against the certificate, as Entra does.
        ``required_claims`` maps a claim name to its allowed values (empty/None: any value, but
        present), e.g. ``{"box_sub_type": ("enterprise", "user")}``. ``extra_audiences`` are
        accepted as ``aud`` besides the token endpoint URL (Salesforce wants the login host).
        ``subject_optional`` accepts grant assertions without ``sub`` (Google service accounts; RFC 7523
        §3 requires it). ``federated``: the client has no key or secret of its own, only federated
        credentials (:meth:`trust_issuer`).
        """
        public_key: jwk.Key | None = None
        certificate_der: bytes | None = None
        if certificate_pem is not None:
            raw = certificate_pem.encode("ascii") if isinstance(certificate_pem, str) else certificate_pem
            certificate = x509.load_pem_x509_certificate(raw)
            certificate_der = certificate.public_bytes(serialization.Encoding.DER)
            public_key = _public_key_to_jwk(certificate.public_key())
        elif public_key_pem is not None:
            raw = public_key_pem.encode("ascii") if isinstance(public_key_pem, str) else public_key_pem
            public_key = _public_key_to_jwk(serialization.load_pem_public_key(raw))
        if public_key is None and client_secret is None and not federated:
            raise ValueError("a client needs a certificate, a public key, a client secret or federated credentials")
        claims = {name: tuple(values) if values is not None else () for name, values in (required_claims or {}).items()}
        client = RegisteredClient(
            client_id=client_id,
            public_key=public_key,
            certificate_der=certificate_der,
            client_secret=client_secret,
            required_claims=claims,
            extra_audiences=tuple(extra_audiences),
            max_assertion_lifetime=max_assertion_lifetime,
            subject_optional=subject_optional,
            federated=federated,
        )
        with self._lock:
            self.clients[client_id] = client
        return client

    def trust_issuer(
        self,
        issuer: str,
        *,
        subject: str = "*",
        client_id: str | None = None,
        audiences: Iterable[str] = (),
        exchange_audience: str | None = None,
        max_lifetime: int = 48 * 3600,
    ) -> FederationRule:
        """Trust JWTs of ``issuer`` (keys found by OIDC discovery) whose ``sub`` matches ``subject`` (a glob).

        ``client_id``: the client they act as (a federated client assertion, the jwt-bearer grant);
        ``audiences``: ``aud`` values accepted besides this server's issuer and token URL (Entra:
        ``api://AzureADTokenExchange``); ``exchange_audience``: for token exchange without a client, the
        ``audience`` parameter that selects this rule (Google: the pool provider's resource name).
        See :mod:`devserver.federation`.
        """
        return self.federation.add(
            FederationRule(issuer, subject, client_id, tuple(audiences), exchange_audience, max_lifetime)
        )

    def allow_impersonation(self, service_account: str, subject: str = "*") -> None:
        """Tokens exchanged for subjects matching ``subject`` may ask for ``service_account``'s token (Google)."""
        with self._lock:
            self.impersonation[service_account] = subject

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        retry_after: int | str | None = None,
        count: int = 1,
        *,
        location: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests under ``path_prefix`` with ``status`` (429, 503...).

        A prefix without a leading slash is relative to ``/api/`` (``"items"`` = ``/api/items``);
        ``"/oauth2/token"`` injects failures into the token endpoint too. The failure comes
        before authentication, as a rate limiter or gateway in front of the API would answer.
        With ``location``, the answer is a redirect there (``status`` 302, 307...).
        """
        self.faults.fail_next(path_prefix, status, retry_after, count, location)

    def hold_next(self, path_prefix: str, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` requests under ``path_prefix`` for ``seconds`` before serving them.

        A slow token endpoint, to keep a client waiting (or killed) in the middle of a token
        request. :attr:`holding` tells how many requests are held now; :meth:`reset` ends every hold
        at once, answering 503 without recording the request (its test is over).
        """
        self.faults.hold_next(path_prefix, seconds, count)

    @property
    def holding(self) -> int:
        """How many requests a :meth:`hold_next` is holding now."""
        return self.faults.holding

    @property
    def html_error_next(self) -> bool | int:
        """Knob (see the class docstring), kept by :attr:`faults`."""
        return self.faults.html_error_next

    @html_error_next.setter
    def html_error_next(self, value: bool | int) -> None:
        self.faults.html_error_next = value

    def revoke_all_tokens(self) -> None:
        """Server-side revocation: every token issued so far now gets 401 invalid_token."""
        with self._lock:
            self._revoked.update(self._tokens)

    def reset(self) -> None:
        """Forget records, knobs, injected failures and revocations; keep clients and tokens."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self.clock_offset: float = 0.0
        self.leeway: int = self._default_leeway
        self.token_lifetime: int = self._default_token_lifetime
        self.omit_expires_in: bool = False
        self.job_ready_after: int = DEFAULT_JOB_READY_AFTER
        self.careless: bool = False
        self.keep_credentials: bool = False
        self.received_credentials: list[str] = []
        self.token_requests: list[dict[str, Any]] = []
        self.api_requests: list[dict[str, Any]] = []
        self.results: list[Any] = []
        self.faults.reset()
        self._job_polls: dict[str, int] = {}
        self._revoked.clear()

    def now(self) -> float:
        """The server's clock: real time shifted by :attr:`clock_offset`."""
        return time.time() + self.clock_offset

    # ----------------------------------------------------------------- records (appended by the blueprints)

    def add_token_record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.token_requests.append(record)

    def add_api_record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.api_requests.append(record)

    def add_result(self, body: Any) -> None:
        with self._lock:
            self.results.append(body)

    def poll_job(self, job_id: str) -> int:
        """Count a poll of ``/api/jobs/<job_id>``; the number of polls so far, this one included."""
        with self._lock:
            polls = self._job_polls.get(job_id, 0) + 1
            self._job_polls[job_id] = polls
            return polls

    # ----------------------------------------------------------------- tokens

    def issue_user_token(
        self,
        subject: str,
        audience: str | None = None,
        *,
        lifetime: int = 3600,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed "user token" for the on-behalf-of flow; ``audience`` is the client_id.

        Stands in for the token a user's front end would have obtained from Entra for the
        middle-tier client. Signed with a key only this server holds (ES256). ``audience`` may
        be left out when exactly one client is registered.
        """
        if audience is None:
            with self._lock:
                if len(self.clients) != 1:
                    raise ValueError("give the audience (client_id): several clients are registered")
                audience = next(iter(self.clients))
        now = int(self.now())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if scope:
            payload["scp"] = scope
        payload.update(claims or {})
        return self.user_token_key.sign(payload)

    def issued_tokens(self) -> list[str]:
        """Every access token this server issued (for tests that search logs for them)."""
        with self._lock:
            return list(self._tokens)

    def token_info(self, access_token: str) -> IssuedToken | None:
        """What the server knows about an access token (None if it never issued it)."""
        with self._lock:
            return self._tokens.get(access_token)

    def bearer_token_state(self, access_token: str) -> tuple[IssuedToken | None, bool]:
        """:meth:`token_info` and whether the token is revoked, read together."""
        with self._lock:
            return self._tokens.get(access_token), access_token in self._revoked

    def issue_access_token(
        self,
        *,
        sub: str,
        client_id: str,
        scope: str | None,
        grant_type: str,
        lifetime: int | None = None,
        act: dict[str, Any] | None = None,
        audiences: tuple[str, ...] = (),
    ) -> IssuedToken:
        """A new opaque access token the API accepts (token exchange, impersonation)."""
        issued = IssuedToken(
            access_token=secrets.token_urlsafe(32),
            sub=sub,
            client_id=client_id,
            scope=scope,
            grant_type=grant_type,
            expires_at=self.now() + (lifetime if lifetime is not None else self.token_lifetime),
            act=act,
            audiences=audiences,
        )
        with self._lock:
            self._tokens[issued.access_token] = issued
        return issued

    def sign_id_token(self, subject: str, audiences: list[str]) -> str:
        """An ID token this server signs (a token exchange asked for one): not an access token."""
        now = int(self.now())
        payload = {"iss": self.issuer, "sub": subject, "aud": audiences, "iat": now, "exp": now + self.token_lifetime}
        return self.user_token_key.sign(payload)

    def _generate_token(
        self,
        grant_type: str,
        client: RegisteredClient,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer"}
        if self.omit_expires_in:
            token["instance_url"] = self.url
            token["issued_at"] = str(int(self.now() * 1000))
        else:
            token["expires_in"] = self.token_lifetime
        if scope:
            token["scope"] = scope
        return token

    def _save_token(self, token: dict[str, Any], oauth_request: Any) -> None:
        client: RegisteredClient = oauth_request.client
        user: User | None = oauth_request.user
        issued = IssuedToken(
            access_token=token["access_token"],
            sub=user.sub if user is not None else client.client_id,
            client_id=client.client_id,
            scope=token.get("scope"),
            grant_type=oauth_request.payload.grant_type,
            expires_at=self.now() + self.token_lifetime,
        )
        with self._lock:
            self._tokens[issued.access_token] = issued
        note_token_request(issued_sub=issued.sub, issued_scope=issued.scope)

    # ----------------------------------------------------------------- HTTP

    def _wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Flask app behind a Date header from the server clock (on every response, errors too)."""

        def start_with_date(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "date"]
            headers.append(("Date", email.utils.formatdate(self.now(), usegmt=True)))
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_date)

    def _build_app(self) -> Flask:
        app = Flask("devserver")
        app.json.sort_keys = False  # type: ignore[attr-defined]
        app.extensions[SERVER_EXTENSION] = self
        # The API's app-wide record hook must run before fault injection, whose answer ends the
        # before_request chain: an injected failure under /api/ is recorded like any request.
        app.register_blueprint(api.blueprint)
        app.before_request(faults.inject_failure)
        app.register_blueprint(token_endpoint.blueprint)
        app.register_blueprint(exchange.blueprint)
        app.register_blueprint(records.blueprint)
        app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
        app.register_error_handler(404, _not_found)
        app.register_error_handler(405, _not_allowed)
        return app


# --------------------------------------------------------------------------- CLI helper


def load_client_key_material(
    certificate: str | None = None,
    keystore: str | None = None,
    keystore_password: str | None = None,
) -> dict[str, str]:
    """``register_client`` keyword for a PEM certificate/public key file or a keystore's certificate.

    A compose service shares the keystore the demo generated, so it can read the certificate
    out of a PKCS#12 directly (with cryptography); JKS/JCEKS work when pyjks is installed.
    """
    if certificate:
        text = Path(certificate).read_text(encoding="ascii")
        if "BEGIN CERTIFICATE" in text:
            start = text.index("-----BEGIN CERTIFICATE-----")
            end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
            return {"certificate_pem": text[start:end] + "\n"}
        if "PUBLIC KEY" in text:
            return {"public_key_pem": text}
        raise ValueError(f"{certificate}: neither a PEM certificate nor a PEM public key")
    if keystore:
        data = Path(keystore).read_bytes()
        password = keystore_password.encode("utf-8") if keystore_password is not None else None
        if data[:1] == b"\x30":
            from cryptography.hazmat.primitives.serialization import pkcs12

            _key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
            if cert is None:
                raise ValueError(f"{keystore}: the PKCS#12 holds no certificate")
            return {"certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii")}
        import jks  # JKS/JCEKS: optional dependency (pyjks)

        store = jks.KeyStore.loads(data, keystore_password or "", try_decrypt_keys=False)
        for entry in store.private_keys.values():
            der = entry.cert_chain[0][1]
            cert = x509.load_der_x509_certificate(der)
            return {"certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii")}
        raise ValueError(f"{keystore}: no private-key entry")
    return {}
