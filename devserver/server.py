"""A real OAuth 2.0 authorization server and protected API on 127.0.0.1, for tests and the demo.

Why this exists: a client that signs JWT assertions can pass its own unit tests and still be
refused by every real provider (wrong ``aud``, a thumbprint computed over the wrong bytes, a
lifetime too long, a reused ``jti``...). This server checks our client's requests with code
that is *not ours*: Authlib's server side (``authlib.oauth2.rfc7523.JWTBearerGrant``,
``JWTBearerClientAssertion``, ``ClientCredentialsGrant``) and joserfc's signature and claim
checks, configured the way providers behave:

* ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` (RFC 7523 §2.1; Google, Box,
  Salesforce, DocuSign style), with optional client-secret authentication (Box sends one);
* ``grant_type=client_credentials`` with ``private_key_jwt`` client authentication
  (RFC 7523 §2.2; Microsoft Entra style), or with a client secret;
* the Entra on-behalf-of flow (``requested_token_use=on_behalf_of``) whose ``assertion`` is a
  user token issued by this server (:meth:`LocalAuthorizationServer.issue_user_token`).

Things Authlib 1.9 does differently from providers, changed here on purpose (each one would
otherwise refuse valid requests or accept invalid ones):

* It decodes assertions with joserfc's *default* algorithm list, which is only the
  "recommended" ``HS256``/``RS256``/``ES256``: RS384/512, PS*, ES384/512 and EdDSA would be
  refused and ``HS256`` accepted. Here the list is explicit and asymmetric only; ``EdDSA`` (the
  only Ed25519 name PyJWT signs) and ``Ed25519`` (RFC 9864) are both listed.
* joserfc refuses a JWS header longer than 512 base64 characters, which an ``x5c`` chain
  exceeds; the limit is raised.
* It requires neither ``iat`` nor ``jti`` on the grant assertion, and checks no maximum
  lifetime; providers do (Google: at most one hour; Box: 60 s). Both are enforced here.
* Error descriptions may not contain ``"`` or ``\\``, or Authlib raises while building the
  error; every description here goes through :func:`_safe`.
* It refuses plain ``http://`` request URLs unless the host is loopback or
  ``AUTHLIB_INSECURE_TRANSPORT`` is set; a server bound to another interface sets it.

The resource side (``/api``) is deliberately simple: opaque random bearer tokens kept in memory.
Every response carries a ``Date`` header from the server's clock, which :attr:`clock_offset`
shifts to simulate clock skew.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    BaseGrant,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    TokenEndpointMixin,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask, Response, g, jsonify, request
from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CLIENT_ASSERTION_TYPE",
    "JWT_BEARER_GRANT_TYPE",
    "IssuedToken",
    "LocalAuthorizationServer",
    "RegisteredClient",
]

log = logging.getLogger("devserver")

JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Every signature algorithm our client may use; asymmetric only, so a public key can never be
#: used as an HMAC secret.
ALLOWED_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
TOKEN_PATH = "/oauth2/token"
API_PREFIX = "/api"
ITEM_COUNT = 23
DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_LEEWAY = 60
DEFAULT_JOB_READY_AFTER = 3
_USER_TOKEN_ALGORITHM = "ES256"
_CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
_PROXY_502_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class _AssertionRegistry(jws.JWSRegistry):
    """joserfc registry that allows exactly :data:`ALLOWED_ALGORITHMS`, without warnings.

    joserfc warns (``SecurityWarning``) each time ``EdDSA`` is used; from a server thread that
    would land in whichever test happens to be running, so the check is redone here instead.
    """

    max_header_length = 16384  # room for an x5c chain

    def get_alg(self, name: str) -> Any:
        if name not in self.algorithms or name not in ALLOWED_ALGORITHMS:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRY = _AssertionRegistry(algorithms=ALLOWED_ALGORITHMS, strict_check_header=False)
_USER_TOKEN_REGISTRY = jws.JWSRegistry(algorithms=[_USER_TOKEN_ALGORITHM])

ErrorFactory = Callable[[str], OAuth2Error]


def _safe(text: str) -> str:
    """Make text acceptable as an RFC 6749 error_description (Authlib raises otherwise)."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in text)


def _grant_error(description: str) -> OAuth2Error:
    return InvalidGrantError(description=_safe(description))


def _client_error(description: str) -> OAuth2Error:
    # RFC 6749 §5.2 allows 401 for invalid_client; providers (Entra, Okta) use it.
    return InvalidClientError(description=_safe(description), status_code=401)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class User:
    """The resource owner named by an assertion's ``sub``; any subject is accepted."""

    sub: str

    def get_user_id(self) -> str:
        return self.sub


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
            return self.public_key is not None
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (JWT_BEARER_GRANT_TYPE, "client_credentials")


@dataclass
class IssuedToken:
    """An opaque access token as the resource server sees it."""

    access_token: str = field(repr=False)
    sub: str
    client_id: str
    scope: str | None
    grant_type: str
    expires_at: float


@dataclass
class _Failure:
    prefix: str
    status: int
    retry_after: int | str | None
    remaining: int


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


# --------------------------------------------------------------------------- assertion checks


def _peek(assertion: str, error: ErrorFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWS *before* verification, for the records and to find the key."""
    try:
        obj = jws.extract_compact(assertion.encode("utf-8"), registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise error(f"Invalid JWT assertion: {getattr(exc, 'description', None) or exc}") from None
    try:
        claims = json.loads(obj.payload)
    except ValueError:
        raise error("Invalid JWT payload.") from None
    if not isinstance(claims, dict):
        raise error("Invalid JWT payload.")
    return dict(obj.headers()), claims


def _record(**fields: Any) -> None:
    """Add fields to the record of the token request being handled (if any)."""
    record = g.get("token_record")
    if record is not None:
        record.update(fields)


# --------------------------------------------------------------------------- Authlib subclasses


class _JWTBearerGrant(JWTBearerGrant):
    """RFC 7523 §2.1 authorization grant, with the checks providers add (see module doc)."""

    @classmethod
    def check_token_endpoint(cls, request: Any) -> bool:
        # The on-behalf-of flow shares the grant_type; it is told apart by requested_token_use.
        return bool(
            super().check_token_endpoint(request) and request.payload.data.get("requested_token_use") != "on_behalf_of"
        )

    @property
    def local(self) -> LocalAuthorizationServer:
        return self.server.local

    def process_assertion_claims(self, assertion: str) -> dict[str, Any]:
        header, claims = _peek(assertion, _grant_error)
        _record(assertion_header=header, assertion_claims=claims, assertion_scope=claims.get("scope"))
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise _grant_error("Missing claim: 'iss'")
        client = self.resolve_issuer_client(issuer)
        if client is None:
            raise _grant_error("The client does not exist on this server.")
        _record(client_id=client.client_id)
        self._claims = self.local._verify_assertion(assertion, header, claims, client, _grant_error)
        _record(assertion_verified=True)
        return self._claims

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: RegisteredClient = self.request.client
        self._authenticate_client_if_needed(client)
        # Consumed last, so a request refused for another reason does not burn the jti.
        self.local._consume_jti(client.client_id, self._claims["jti"], _grant_error)

    def _authenticate_client_if_needed(self, client: RegisteredClient) -> None:
        """Box-style: a client registered with a secret must also send it (post or basic).

        Credentials sent by a client that has none registered are checked too, so a client
        that leaks a secret where none is expected fails visibly.
        """
        form = self.request.form
        sent = bool(
            form.get("client_secret")
            or form.get("client_assertion")
            or extract_basic_authorization(self.request.headers)[0]
        )
        if client.client_secret is None and not sent:
            return
        authenticated = self.server.authenticate_client(self.request, _CLIENT_AUTH_METHODS)
        if authenticated.client_id != client.client_id:
            raise _client_error("Client credentials belong to another client than the assertion's issuer.")
        _record(client_auth=self.request.auth_method)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # Google and DocuSign carry the scope in the assertion instead of a form field.
        scope = self.request.payload.scope or self._claims.get("scope")
        if isinstance(scope, list):
            scope = " ".join(map(str, scope))
        token = self.generate_token(scope=scope, user=self.request.user, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def resolve_issuer_client(self, issuer: str) -> RegisteredClient | None:
        return self.local.clients.get(issuer)

    def resolve_client_public_key(self, client: RegisteredClient) -> jwk.Key:
        if client.public_key is None:
            raise _grant_error("The client has no registered certificate or public key.")
        return client.public_key

    def authenticate_user(self, subject: str) -> User:
        return User(subject)

    def has_granted_permission(self, client: RegisteredClient, user: User) -> bool:
        return True


class _PrivateKeyJWTAuth(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (RFC 7523 §2.2, OIDC Core §9)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, local: LocalAuthorizationServer) -> None:
        super().__init__(validate_jti=True)
        self.local = local

    def __call__(self, query_client: Callable[[str], Any], request: Any) -> RegisteredClient | None:
        form = request.form
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not assertion:
            return None
        header, claims = _peek(assertion, _client_error)
        _record(client_assertion_header=header, client_assertion_claims=claims)
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise _client_error("Missing claim: 'sub'")
        client = query_client(subject)
        if client is None:
            raise _client_error("The client does not exist on this server.")
        if form.get("client_id") not in (None, subject):
            raise _client_error("client_id does not match the client assertion's sub.")
        _record(client_id=client.client_id)
        verified = self.local._verify_assertion(assertion, header, claims, client, _client_error)
        if verified["iss"] != verified["sub"]:
            raise _client_error("Issuer and Subject MUST match.")
        self.local._consume_jti(client.client_id, verified["jti"], _client_error)
        _record(client_assertion_verified=True)
        request.client = client
        return self.authenticate_client(client)

    def get_audiences(self) -> list[str]:  # pragma: no cover - _verify_assertion decides
        return []


class _ClientCredentialsGrant(ClientCredentialsGrant):
    """``client_credentials`` with a secret or ``private_key_jwt`` (Entra app-only tokens)."""

    TOKEN_ENDPOINT_AUTH_METHODS = _CLIENT_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        _record(client_id=self.request.client.client_id, client_auth=self.request.auth_method)


class _OnBehalfOfGrant(BaseGrant, TokenEndpointMixin):
    """Microsoft Entra on-behalf-of: exchange a user's token for one the client may use downstream.

    The assertion is a token this server issued to the user for the client (``aud`` =
    client_id); the client authenticates itself as well. The new token carries the user's sub.
    """

    GRANT_TYPE = JWT_BEARER_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = _CLIENT_AUTH_METHODS

    @classmethod
    def check_token_endpoint(cls, request: Any) -> bool:
        return bool(
            super().check_token_endpoint(request) and request.payload.data.get("requested_token_use") == "on_behalf_of"
        )

    @property
    def local(self) -> LocalAuthorizationServer:
        return self.server.local

    def validate_token_request(self) -> None:
        client: RegisteredClient = self.authenticate_token_endpoint_client()
        _record(client_id=client.client_id, client_auth=self.request.auth_method)
        assertion = self.request.form.get("assertion")
        if not assertion:
            raise InvalidRequestError("Missing 'assertion' in request")
        header, claims = _peek(assertion, _grant_error)
        _record(assertion_header=header, assertion_claims=claims, assertion_scope=claims.get("scope"))
        self._claims = self.local._verify_user_token(assertion, client.client_id)
        _record(assertion_verified=True)
        self.request.client = client
        self.request.user = User(self._claims["sub"])
        self.validate_requested_scope()

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(
            scope=self.request.payload.scope, user=self.request.user, include_refresh_token=False
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _secret_post(query_client: Callable[[str], Any], request: Any) -> RegisteredClient | None:
    """client_secret_post that says *why* it failed (Authlib only says no method worked)."""
    client_id = request.form.get("client_id")
    secret = request.form.get("client_secret")
    if not (client_id and secret):
        return None
    return _check_secret(query_client, client_id, secret)


def _secret_basic(query_client: Callable[[str], Any], request: Any) -> RegisteredClient | None:
    """client_secret_basic (RFC 6749 §2.3.1, credentials form-urlencoded before base64)."""
    client_id, secret = extract_basic_authorization(request.headers)
    if not (client_id and secret):
        return None
    return _check_secret(query_client, client_id, secret)


def _check_secret(query_client: Callable[[str], Any], client_id: str, secret: str) -> RegisteredClient:
    client = query_client(client_id)
    if client is None:
        raise _client_error("The client does not exist on this server.")
    if not client.check_client_secret(secret):
        raise _client_error("Invalid client secret.")
    return client


class _AuthlibServer(AuthorizationServer):
    """Authlib's Flask authorization server wired to a :class:`LocalAuthorizationServer`."""

    def __init__(self, local: LocalAuthorizationServer) -> None:
        super().__init__(query_client=local.clients.get, save_token=local._save_token)
        self.local = local
        self.register_token_generator("default", local._generate_token)
        self.register_grant(_OnBehalfOfGrant)
        self.register_grant(_JWTBearerGrant)
        self.register_grant(_ClientCredentialsGrant)
        self.register_client_auth_method("client_secret_basic", _secret_basic)
        self.register_client_auth_method("client_secret_post", _secret_post)
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJWTAuth(local))


# --------------------------------------------------------------------------- the server


def _public_key_to_jwk(public_key: Any) -> jwk.Key:
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(public_key, rsa.RSAPublicKey):
        return jwk.RSAKey.import_key(pem)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return jwk.ECKey.import_key(pem)
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return jwk.OKPKey.import_key(pem)
    raise ValueError(f"unsupported public key type {type(public_key).__name__}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        ``method``, ``path``, ``query`` (dict), ``subject`` and ``client_id`` of the bearer
        token (None when refused), ``auth_scheme`` (the Authorization scheme only), ``status``.
    ``results``
        the JSON bodies posted to ``/api/results``.
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
        self._used_jti: set[tuple[str, str]] = set()
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        user_key = ec.generate_private_key(ec.SECP256R1())
        self._user_token_key = jwk.ECKey.import_key(
            user_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self._user_token_kid = "devserver-" + secrets.token_hex(4)
        self._reset_state()
        self._authlib = _AuthlibServer(self)
        self.app = self._build_app()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> LocalAuthorizationServer:
        """Listen (port 0 = any free port) and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        if not _is_loopback(self.host):
            # Authlib refuses http:// request URLs that are not loopback (see module doc).
            os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self._httpd = make_server(self.host, self.port, self._wsgi_app, threaded=True, request_handler=_Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="devserver", daemon=True
        )
        self._thread.start()
        log.debug("devserver listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalAuthorizationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL clients should use (a wildcard bind address is reached via loopback)."""
        if self._httpd is None:
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
    ) -> RegisteredClient:
        """Register (or replace) a client.

        ``certificate_pem`` is preferred over ``public_key_pem`` because it also lets the server
        check ``x5t``/``x5t#S256`` headers against the certificate, as Entra does.
        ``required_claims`` maps a claim name to its allowed values (empty/None: any value, but
        present), e.g. ``{"box_sub_type": ("enterprise", "user")}``. ``extra_audiences`` are
        accepted as ``aud`` besides the token endpoint URL (Salesforce wants the login host).
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
        if public_key is None and client_secret is None:
            raise ValueError("a client needs a certificate, a public key or a client secret")
        claims = {name: tuple(values) if values is not None else () for name, values in (required_claims or {}).items()}
        client = RegisteredClient(
            client_id=client_id,
            public_key=public_key,
            certificate_der=certificate_der,
            client_secret=client_secret,
            required_claims=claims,
            extra_audiences=tuple(extra_audiences),
            max_assertion_lifetime=max_assertion_lifetime,
        )
        with self._lock:
            self.clients[client_id] = client
        return client

    def fail_next(self, path_prefix: str, status: int, retry_after: int | str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests under ``path_prefix`` with ``status`` (429, 503...).

        A prefix without a leading slash is relative to ``/api/`` (``"items"`` = ``/api/items``);
        ``"/oauth2/token"`` injects failures into the token endpoint too. The failure comes
        before authentication, as a rate limiter or gateway in front of the API would answer.
        """
        prefix = path_prefix if path_prefix.startswith("/") else f"{API_PREFIX}/{path_prefix}"
        with self._lock:
            self._failures.append(_Failure(prefix, status, retry_after, count))

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
        self.html_error_next: bool | int = False
        self.job_ready_after: int = DEFAULT_JOB_READY_AFTER
        self.token_requests: list[dict[str, Any]] = []
        self.api_requests: list[dict[str, Any]] = []
        self.results: list[Any] = []
        self._failures: list[_Failure] = []
        self._job_polls: dict[str, int] = {}
        self._revoked.clear()

    def now(self) -> float:
        """The server's clock: real time shifted by :attr:`clock_offset`."""
        return time.time() + self.clock_offset

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
        header = {"alg": _USER_TOKEN_ALGORITHM, "kid": self._user_token_kid}
        return jwt.encode(header, payload, self._user_token_key, registry=_USER_TOKEN_REGISTRY)

    def token_info(self, access_token: str) -> IssuedToken | None:
        """What the server knows about an access token (None if it never issued it)."""
        with self._lock:
            return self._tokens.get(access_token)

    # ----------------------------------------------------------------- checks used by the grants

    def _audiences(self, client: RegisteredClient) -> list[str]:
        """The token endpoint URL as configured *and* as this request reached it.

        The second matters behind docker-compose, where clients use ``http://devserver:8080``
        while the server only knows it listens on ``0.0.0.0``.
        """
        audiences = [self.token_url, request.base_url, *client.extra_audiences]
        return list(dict.fromkeys(audiences))

    def _verify_assertion(
        self,
        assertion: str,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        client: RegisteredClient,
        error: ErrorFactory,
    ) -> dict[str, Any]:
        """Signature, thumbprint and claim checks shared by the grant and client assertions."""
        if client.public_key is None:
            raise error("The client has no registered certificate or public key.")
        try:
            token = jwt.decode(assertion, client.public_key, registry=_REGISTRY)
        except JoseError as exc:
            raise error(f"Assertion signature check failed: {exc.description or exc.error}") from None
        except ValueError as exc:
            raise error(f"Invalid JWT assertion: {exc}") from None
        self._check_thumbprints(header, client, error)

        verified = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=self.leeway,
            iss={"essential": True},
            aud={"essential": True, "values": self._audiences(client)},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(verified)
        except JoseError as exc:
            raise error(exc.description or exc.error) from None

        exp, iat = verified["exp"], verified["iat"]
        limit = client.max_assertion_lifetime
        if exp - iat > limit:
            raise error(f"Assertion lifetime (exp - iat = {math.ceil(exp - iat)} s) exceeds {limit} s.")
        if exp - self.now() > limit + self.leeway:
            raise error(f"Assertion exp is more than {limit} s in the future.")
        for name, allowed in client.required_claims.items():
            if name not in verified:
                raise error(f"Missing required claim: '{name}'")
            if allowed and verified[name] not in allowed:
                raise error(f"Claim '{name}' must be one of {', '.join(map(str, allowed))}.")
        with self._lock:
            if (client.client_id, verified["jti"]) in self._used_jti:
                raise error("jti already used")
        return verified

    @staticmethod
    def _check_thumbprints(header: Mapping[str, Any], client: RegisteredClient, error: ErrorFactory) -> None:
        """``x5t#S256``/``x5t`` must be the SHA-256/SHA-1 of the registered DER certificate."""
        if client.certificate_der is None:
            return
        for name, algorithm in (("x5t#S256", "sha256"), ("x5t", "sha1")):
            if name in header:
                expected = _b64url(hashlib.new(algorithm, client.certificate_der).digest())
                if header[name] != expected:
                    raise error(f"The {name} header does not match the registered certificate.")

    def _consume_jti(self, client_id: str, jti: str, error: ErrorFactory) -> None:
        with self._lock:
            key = (client_id, jti)
            if key in self._used_jti:
                raise error("jti already used")
            self._used_jti.add(key)

    def _verify_user_token(self, assertion: str, client_id: str) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, self._user_token_key, registry=_USER_TOKEN_REGISTRY)
        except JoseError as exc:
            raise _grant_error(
                f"The assertion is not a user token of this server: {exc.description or exc.error}"
            ) from None
        except ValueError:
            raise _grant_error("Invalid JWT assertion.") from None
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise _grant_error(exc.description or exc.error) from None
        return dict(token.claims)

    # ----------------------------------------------------------------- tokens

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
        _record(issued_sub=issued.sub, issued_scope=issued.scope)

    # ----------------------------------------------------------------- HTTP

    def _wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Flask app behind a Date header from the server clock (on every response, errors too)."""

        def start_with_date(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "date"]
            headers.append(("Date", email.utils.formatdate(self.now(), usegmt=True)))
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_date)

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.prefix):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _take_html_error(self) -> bool:
        with self._lock:
            if not self.html_error_next:
                return False
            self.html_error_next = int(self.html_error_next) - 1
            return True

    def _build_app(self) -> Flask:
        app = Flask("devserver")
        app.json.sort_keys = False  # type: ignore[attr-defined]

        @app.before_request
        def inject_failure() -> Response | None:
            if request.path.startswith(API_PREFIX + "/"):
                g.api_record = {
                    "method": request.method,
                    "path": request.path,
                    "query": request.args.to_dict(),
                    "subject": None,
                    "client_id": None,
                    "auth_scheme": _auth_scheme(request.headers.get("Authorization")),
                    "status": None,
                }
            failure = self._take_failure(request.path)
            if failure is None:
                return None
            body = {"error": "temporarily_unavailable", "error_description": f"injected HTTP {failure.status}"}
            if failure.status == 429:
                body = {"error": "rate_limited", "error_description": "Too many requests (injected)."}
            response = jsonify(body)
            response.status_code = failure.status
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(failure.retry_after)
            if request.path == TOKEN_PATH:
                record = self._new_token_record()
                record.update(status=failure.status, error=f"injected_{failure.status}")
                with self._lock:
                    self.token_requests.append(record)
            return response

        @app.after_request
        def record_api(response: Response) -> Response:
            record = g.get("api_record")
            if record is not None:
                record["status"] = response.status_code
                with self._lock:
                    self.api_requests.append(record)
            return response

        @app.post(TOKEN_PATH)
        def token() -> Response:
            record = self._new_token_record()
            g.token_record = record
            try:
                if self._take_html_error():
                    record.update(status=502, error="injected_html_502")
                    return Response(_PROXY_502_PAGE, status=502, content_type="text/html")
                response: Response = self._authlib.create_token_response()
                record["status"] = response.status_code
                record["success"] = response.status_code == 200
                if not record["success"]:
                    body = response.get_json(silent=True) or {}
                    record["error"] = body.get("error")
                    record["error_description"] = body.get("error_description")
                return response
            finally:
                with self._lock:
                    self.token_requests.append(record)

        @app.get("/.well-known/oauth-authorization-server")
        def metadata() -> Response:
            return jsonify(
                issuer=self.issuer,
                token_endpoint=request.host_url.rstrip("/") + TOKEN_PATH,
                grant_types_supported=[JWT_BEARER_GRANT_TYPE, "client_credentials"],
                token_endpoint_auth_methods_supported=_CLIENT_AUTH_METHODS,
                token_endpoint_auth_signing_alg_values_supported=list(ALLOWED_ALGORITHMS),
            )

        @app.get("/healthz")
        def healthz() -> Response:
            return jsonify(status="ok")

        @app.get(f"{API_PREFIX}/whoami")
        @self._protected
        def whoami(issued: IssuedToken) -> Response:
            return jsonify(sub=issued.sub, client_id=issued.client_id, scope=issued.scope)

        @app.get(f"{API_PREFIX}/items")
        @self._protected
        def items(issued: IssuedToken) -> Response | tuple[Response, int]:
            try:
                page = int(request.args.get("page", "1"))
                per_page = int(request.args.get("per_page", "5"))
            except ValueError:
                return _json_error("invalid_request", "page and per_page must be integers", 400)
            if page < 1 or not 1 <= per_page <= 100:
                return _json_error("invalid_request", "page >= 1 and 1 <= per_page <= 100", 400)
            start = (page - 1) * per_page
            numbers = range(start + 1, min(start + per_page, ITEM_COUNT) + 1)
            return jsonify(
                items=[{"id": n, "name": f"item-{n}"} for n in numbers],
                page=page,
                next_page=page + 1 if start + per_page < ITEM_COUNT else None,
                total=ITEM_COUNT,
            )

        @app.post(f"{API_PREFIX}/results")
        @self._protected
        def results(issued: IssuedToken) -> tuple[Response, int]:
            body = request.get_json(silent=True)
            if body is None:
                return _json_error("invalid_request", "a JSON body is required", 400)
            with self._lock:
                self.results.append(body)
            return jsonify(received=body, sub=issued.sub), 201

        @app.get(f"{API_PREFIX}/jobs/<job_id>")
        @self._protected
        def job(issued: IssuedToken, job_id: str) -> Response:
            with self._lock:
                polls = self._job_polls.get(job_id, 0) + 1
                self._job_polls[job_id] = polls
                state = "done" if polls >= self.job_ready_after else "running"
            return jsonify(job_id=job_id, state=state, polls=polls)

        @app.get(f"{API_PREFIX}/echo-headers")
        @self._protected
        def echo_headers(issued: IssuedToken) -> Response:
            headers = {
                name: (_auth_scheme(value) or "") if name.lower() == "authorization" else value
                for name, value in request.headers.items()
            }
            return jsonify(headers)

        @app.errorhandler(404)
        def not_found(exc: Exception) -> tuple[Response, int]:
            return _json_error("not_found", f"no route for {request.path}", 404)

        @app.errorhandler(405)
        def not_allowed(exc: Exception) -> tuple[Response, int]:
            return _json_error("method_not_allowed", f"{request.method} not allowed on {request.path}", 405)

        return app

    def _new_token_record(self) -> dict[str, Any]:
        form = request.form
        basic_id, basic_secret = extract_basic_authorization(request.headers)
        via = [name for name, sent in (("basic", bool(basic_secret)), ("post", "client_secret" in form)) if sent]
        return {
            "time": self.now(),
            "grant_type": form.get("grant_type"),
            "client_id": form.get("client_id") or basic_id,
            "form_fields": sorted(form.keys()),
            "content_type": request.mimetype,
            "scope": form.get("scope"),
            "requested_token_use": form.get("requested_token_use"),
            "client_assertion_type": form.get("client_assertion_type"),
            "client_secret_sent": bool(via),
            "client_secret_via": "+".join(via) or None,
            "client_auth": None,
            "assertion_header": None,
            "assertion_claims": None,
            "assertion_scope": None,
            "assertion_verified": False,
            "client_assertion_header": None,
            "client_assertion_claims": None,
            "client_assertion_verified": False,
            "issued_sub": None,
            "issued_scope": None,
            "success": False,
            "status": None,
            "error": None,
            "error_description": None,
        }

    def _protected(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Bearer-token check for /api views (RFC 6750 §3 errors); passes the token to the view."""

        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            issued, problem = self._authenticate_bearer(request.headers.get("Authorization"))
            if issued is None:
                response = jsonify(error="invalid_token", error_description=problem)
                response.status_code = 401
                response.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{problem}"'
                return response
            record = g.get("api_record")
            if record is not None:
                record.update(subject=issued.sub, client_id=issued.client_id)
            return view(issued, **kwargs)

        return wrapper

    def _authenticate_bearer(self, header: str | None) -> tuple[IssuedToken | None, str]:
        if not header:
            return None, "Missing bearer token."
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, "The Authorization scheme must be Bearer."
        with self._lock:
            issued = self._tokens.get(value.strip())
            revoked = value.strip() in self._revoked
        if issued is None:
            return None, "Unknown access token."
        if revoked:
            return None, "The access token has been revoked."
        if self.now() >= issued.expires_at:
            return None, "The access token expired."
        return issued, ""


def _auth_scheme(header: str | None) -> str | None:
    """Only the scheme of an Authorization header: the rest is a credential."""
    if not header:
        return None
    return header.split(None, 1)[0]


def _json_error(error: str, description: str, status: int) -> tuple[Response, int]:
    return jsonify(error=error, error_description=description), status


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
