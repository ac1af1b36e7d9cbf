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
* :mod:`devserver.api`: the protected API under ``/api`` and its bearer, DPoP and certificate-bound
  token checks;
* :mod:`devserver.dpop`: DPoP proofs (RFC 9449), their nonces and the ``jti`` already used;
* :mod:`devserver.tls`: HTTPS with a test CA made at run time, client certificates and the mutual-TLS
  checks (RFC 8705);
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

import atexit
import email.utils
import hmac
import ipaddress
import logging
import os
import secrets
import shutil
import ssl
import tempfile
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

from devserver import api, exchange, faults, records, tls, token_endpoint
from devserver.api import API_PREFIX, DEFAULT_JOB_READY_AFTER
from devserver.api import ITEM_COUNT as ITEM_COUNT  # re-exported: it used to be defined here
from devserver.dpop import DEFAULT_IAT_WINDOW, DPOP_ALGORITHMS, Nonces, UsedProofs
from devserver.exchange import TOKEN_EXCHANGE_GRANT_TYPE
from devserver.exports import Exports
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
    token_binding,
)
from devserver.records import note_token_request
from devserver.tls import CertificateAuthority, SubjectRule
from devserver.token_endpoint import MTLS_TOKEN_PATH, TOKEN_PATH
from devserver.web import SERVER_EXTENSION, ServingThread, is_loopback, json_error

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CLIENT_ASSERTION_TYPE",
    "DPOP_ALGORITHMS",
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
    #: RFC 9449 §5.2 ``dpop_bound_access_tokens``: token requests without a DPoP proof are refused.
    dpop_bound_access_tokens: bool = False
    #: RFC 8705 §2.1 ``tls_client_auth``: the subject its CA-issued certificate must have.
    tls_client_auth: SubjectRule | None = None
    #: RFC 8705 §2.2 ``self_signed_tls_client_auth``: the DER certificates it registered.
    self_signed_certificates: tuple[bytes, ...] = ()
    #: RFC 8705 §3 ``tls_client_certificate_bound_access_tokens``: its tokens are bound to its TLS certificate.
    tls_client_certificate_bound_access_tokens: bool = False

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
        if method == "tls_client_auth":
            return self.tls_client_auth is not None
        if method == "self_signed_tls_client_auth":
            return bool(self.self_signed_certificates)
        return False

    @property
    def mtls_auth_method(self) -> str | None:
        """The mutual-TLS client authentication method it registered (RFC 8705 §2), if any."""
        if self.tls_client_auth is not None:
            return "tls_client_auth"
        if self.self_signed_certificates:
            return "self_signed_tls_client_auth"
        return None

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
    #: RFC 9449 §6.1 ``cnf.jkt``: the thumbprint of the DPoP key the token is bound to.
    jkt: str | None = None
    #: RFC 8705 §3.1 ``cnf.x5t#S256``: the thumbprint of the client certificate the token is bound to.
    x5t_s256: str | None = None

    @property
    def token_type(self) -> str:
        return "DPoP" if self.jkt else "Bearer"

    @property
    def cnf(self) -> dict[str, str] | None:
        """The confirmation claim (RFC 7800) an introspection would show."""
        if self.jkt:
            return {"jkt": self.jkt}
        if self.x5t_s256:
            return {"x5t#S256": self.x5t_s256}
        return None


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

    ``tls=True`` (or :meth:`enable_tls` before :meth:`start`) serves HTTPS with a certificate of a test
    CA made at run time (:attr:`ca_pem`, :attr:`ca_file`; ``tls_names``: more names to certify) and
    requests client certificates for mutual TLS (RFC 8705); :meth:`issue_client_certificate` makes
    them. ``dpop_nonce`` is the default of the knob of that name (``python -m devserver --dpop-nonce``).

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
    ``dpop_algorithms``
        the DPoP proof algorithms accepted (default :data:`~devserver.dpop.DPOP_ALGORITHMS`: ES256,
        ES384, ES512, EdDSA, Ed25519, PS256, RS256); e.g. ``("ES256", "EdDSA")`` to refuse RSA like
        node-oidc-provider. Listed as ``dpop_signing_alg_values_supported`` and in ``algs`` challenges.
    ``dpop_iat_window``
        seconds a DPoP proof is accepted after its ``iat`` (60; ``leeway`` is added on both sides).
    ``dpop_nonce``
        the token endpoint requires its DPoP nonce (RFC 9449 §8): a proof without the nonce it gave
        gets ``400 use_dpop_nonce`` and a ``DPoP-Nonce`` header; :meth:`rotate_dpop_nonce` changes it.
    ``dpop_api_nonce``
        the API requires its own DPoP nonce (§9): ``401 WWW-Authenticate: DPoP error="use_dpop_nonce"``
        and ``DPoP-Nonce`` (a different value from the token endpoint's: nonces are per server).
    ``dpop_bearer_answer``
        a token request with a valid DPoP proof gets ``token_type: Bearer`` and an unbound token (§5
        allows it), to test a client's handling of the downgrade.
    ``mtls_endpoint_aliases``
        with TLS on, the metadata lists ``mtls_endpoint_aliases.token_endpoint`` (the same endpoint
        under ``/mtls/oauth2/token``, so records tell which URL a client used); False leaves it out.

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
        ``issued_scope``, ``success``, ``status``, ``error``, ``error_description``, ``time``;
        ``path`` (``/oauth2/token`` or the mTLS alias); ``dpop`` (the proof's ``header`` and
        ``claims``, decoded even when refused; None without a ``DPoP`` header), ``dpop_verified``,
        ``dpop_failure`` (why it was refused), ``dpop_nonce_challenge`` (answered ``use_dpop_nonce``);
        ``client_certificate`` (``subject``, ``issuer``, ``x5t#S256`` of the TLS client certificate,
        or None); ``token_type`` and ``cnf`` (``{"jkt": ...}`` or ``{"x5t#S256": ...}``) of the token issued.
    ``api_requests``
        ``method``, ``path``, ``query`` (dict; the values of ``access_token`` and other credential
        parameters replaced by ``"<redacted>"``), ``subject`` and ``client_id`` of the bearer
        token (None when refused), ``auth_scheme`` (the Authorization scheme only), ``status``;
        ``dpop`` (the proof's ``header`` and ``claims``, or None), ``dpop_verified``, ``dpop_failure``
        (why the proof or the token's binding was refused), ``nonce_challenge`` (answered
        ``use_dpop_nonce``), ``client_certificate`` (as for token requests), ``if_none_match`` (the
        request's ``If-None-Match`` header: an ETag, not a secret).
    ``tls_errors``
        failed TLS handshakes (an untrusted client certificate, plain HTTP): ``client``, ``error``, ``time``.
    ``results``
        the JSON bodies posted to ``/api/results``.
    ``exports``
        the resources under ``/api/exports/<name>`` a test changes (:mod:`devserver.exports`);
        :meth:`reset` empties it.

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
        tls: bool = False,
        tls_names: Iterable[str] = (),
        dpop_nonce: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._default_dpop_nonce = dpop_nonce
        self._authority: CertificateAuthority | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._tls_names = tuple(tls_names)
        self._ca_directory: str | None = None
        self.used_dpop_proofs = UsedProofs()
        self._default_token_lifetime = token_lifetime
        self._default_leeway = leeway
        self._lock = threading.RLock()
        self.clients: dict[str, RegisteredClient] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()
        self.used_jti = UsedJti()
        self.user_token_key = UserTokenKey()
        self.faults = Faults()
        self.exports = Exports()
        self.federation = TrustedIssuers()
        #: Google-style impersonation: service account e-mail → glob of the federated subjects allowed.
        self.impersonation: dict[str, str] = {}
        self._serving = ServingThread("devserver", _Handler)
        self._reset_state()
        self.authlib = AuthlibServer(self, save_token=self._save_token, generate_token=self._generate_token)
        self.app = self._build_app()
        if tls:
            self.enable_tls()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> LocalAuthorizationServer:
        """Listen (port 0 = any free port) and serve from a daemon thread."""
        if not is_loopback(self.host):
            # Authlib refuses http:// request URLs that are not loopback (see module doc).
            os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self.port = self._serving.start(
            self.host, self.port, self._wsgi_app, ssl_context=self._ssl_context, on_tls_error=self._tls_error
        )
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
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def mtls_token_url(self) -> str:
        """The token endpoint's mutual-TLS alias (RFC 8705 §5), listed in the metadata when TLS is on."""
        return self.url + MTLS_TOKEN_PATH

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def issuer(self) -> str:
        """``iss`` of the user tokens this server issues."""
        return self.url

    # ----------------------------------------------------------------- TLS (RFC 8705)

    @property
    def tls(self) -> bool:
        """Whether the server serves HTTPS (``tls=True`` or :meth:`enable_tls`)."""
        return self._ssl_context is not None

    @property
    def authority(self) -> CertificateAuthority:
        """The test CA: it issued the server's certificate and issues clients' (made on first use)."""
        with self._lock:
            if self._authority is None:
                self._authority = CertificateAuthority()
            return self._authority

    def enable_tls(self, *names: str) -> LocalAuthorizationServer:
        """Serve HTTPS from :meth:`start` on (call it before), with a certificate of :attr:`authority`.

        The certificate names ``127.0.0.1``, ``::1`` and ``localhost``, the bind address when it is not a
        wildcard, and ``names`` and the constructor's ``tls_names`` (host names or IP addresses: a
        container's service name). Client certificates are requested, not required; see :mod:`devserver.tls`.
        """
        if self._serving.running:
            raise RuntimeError("enable TLS before start()")
        self._tls_names += names
        if self._ssl_context is not None and not names:
            return self
        dns_names, addresses = ["localhost"], ["127.0.0.1", "::1"]
        for name in (self.host, *self._tls_names):
            if not name or name in ("0.0.0.0", "::"):
                continue
            try:
                ipaddress.ip_address(name)
            except ValueError:
                dns_names.append(name)
            else:
                addresses.append(name)
        certificate, key = self.authority.issue_server_certificate(
            list(dict.fromkeys(dns_names)), list(dict.fromkeys(addresses))
        )
        context = tls.server_context(self.authority, certificate, key)
        with self._lock:
            self._ssl_context = context
            for client in self.clients.values():
                self._trust_self_signed(client)
        return self

    @property
    def ca_pem(self) -> str:
        """The test CA's certificate (PEM): what a client's ``verify`` must trust."""
        return self.authority.pem

    @property
    def ca_file(self) -> str:
        """:attr:`ca_pem` in a file (a temporary directory removed at exit), for ``requests``' ``verify=``."""
        with self._lock:
            if self._ca_directory is None:
                self._ca_directory = tempfile.mkdtemp(prefix="devserver-ca-")
                atexit.register(shutil.rmtree, self._ca_directory, True)
            path = Path(self._ca_directory, "ca.pem")
            if not path.exists():
                path.write_text(self.ca_pem, encoding="ascii")
            return str(path)

    def write_ca_file(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`ca_pem` to ``path``; the path."""
        target = Path(path)
        target.write_text(self.ca_pem, encoding="ascii")
        return target

    def issue_client_certificate(
        self,
        subject_cn: str,
        *,
        key: Any = None,
        organization: str | None = None,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        uris: Iterable[str] = (),
        emails: Iterable[str] = (),
    ) -> tuple[str, str]:
        """A client certificate of :attr:`authority` (for ``tls_client_auth``): ``(cert_pem, key_pem)``.

        The subject is ``CN=<subject_cn>`` (``O=<organization>,CN=...`` in RFC 4514 order when given);
        ``key``: a ``cryptography`` private key to certify (default: a new EC P-256 key); the others
        become subject alternative names. The key PEM is unencrypted PKCS#8.
        """
        return self.authority.issue_client_certificate(
            subject_cn,
            key=key,
            organization=organization,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            uris=uris,
            emails=emails,
        )

    def _trust_self_signed(self, client: RegisteredClient) -> None:
        """Let the TLS handshake accept a client's self-signed certificates (chains are not validated, §2.2)."""
        if self._ssl_context is None:
            return
        for der in client.self_signed_certificates:
            self._ssl_context.load_verify_locations(cadata=der)

    def _tls_error(self, client: str, error: str) -> None:
        with self._lock:
            self.tls_errors.append({"client": client, "error": error, "time": self.now()})

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
        dpop_bound: bool = False,
        tls_client_auth_subject_dn: str | None = None,
        tls_client_auth_san_dns: str | None = None,
        tls_client_auth_san_uri: str | None = None,
        tls_client_auth_san_ip: str | None = None,
        tls_client_auth_san_email: str | None = None,
        self_signed_certificate_pem: str | bytes | None = None,
        tls_client_certificate_bound_access_tokens: bool = False,
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

        Proof of possession: ``dpop_bound`` (RFC 9449 §5.2 ``dpop_bound_access_tokens``) refuses token
        requests without a DPoP proof. Mutual TLS (RFC 8705, with :meth:`enable_tls`):
        ``tls_client_auth_subject_dn`` (RFC 4514, e.g. ``"CN=my-client"``) or one ``tls_client_auth_san_*``
        value registers ``tls_client_auth`` -- a certificate of :attr:`authority` with that subject
        (:meth:`issue_client_certificate`); ``self_signed_certificate_pem`` (one or more PEM certificates)
        registers ``self_signed_tls_client_auth`` -- the certificate presented must be one of them (SHA-256
        of the DER). Either way the request carries ``client_id`` and no secret or assertion.
        ``tls_client_certificate_bound_access_tokens`` binds the client's tokens to the certificate of
        its TLS connection (``cnf.x5t#S256``); the API then wants the same certificate.
        """
        subjects = {
            kind: value
            for kind, value in (
                ("subject_dn", tls_client_auth_subject_dn),
                ("san_dns", tls_client_auth_san_dns),
                ("san_uri", tls_client_auth_san_uri),
                ("san_ip", tls_client_auth_san_ip),
                ("san_email", tls_client_auth_san_email),
            )
            if value is not None
        }
        if len(subjects) > 1:
            raise ValueError("tls_client_auth takes exactly one subject value (RFC 8705 §2.1.2)")
        subject_rule = SubjectRule(*next(iter(subjects.items()))) if subjects else None
        self_signed: tuple[bytes, ...] = ()
        if self_signed_certificate_pem is not None:
            raw = (
                self_signed_certificate_pem.encode("ascii")
                if isinstance(self_signed_certificate_pem, str)
                else self_signed_certificate_pem
            )
            self_signed = tuple(
                cert.public_bytes(serialization.Encoding.DER) for cert in x509.load_pem_x509_certificates(raw)
            )
        if subject_rule is not None and self_signed:
            raise ValueError("register tls_client_auth or self_signed_tls_client_auth, not both")
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
        if public_key is None and client_secret is None and not federated and subject_rule is None and not self_signed:
            raise ValueError(
                "a client needs a certificate, a public key, a client secret, a TLS client certificate"
                " or federated credentials"
            )
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
            dpop_bound_access_tokens=dpop_bound,
            tls_client_auth=subject_rule,
            self_signed_certificates=self_signed,
            tls_client_certificate_bound_access_tokens=tls_client_certificate_bound_access_tokens,
        )
        with self._lock:
            self.clients[client_id] = client
            self._trust_self_signed(client)
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

    def fail_for(self, path_prefix: str, status: int, seconds: float, retry_after: int | str | None = None) -> None:
        """Answer every request under ``path_prefix`` with ``status`` for the next ``seconds``, then recover.

        An outage of a duration rather than a number of answers: however many clients retry,
        and however often, they all meet it until it is over (a gateway down for a minute).
        """
        self.faults.fail_for(path_prefix, status, seconds, retry_after)

    def set_delay(self, path_prefix: str, seconds: float) -> None:
        """Answer every request under ``path_prefix`` ``seconds`` late from now on (0: on time again).

        A slow API, so that the tasks of a long test are still in flight when a fault comes,
        without making them do anything else than they would.
        """
        self.faults.set_delay(path_prefix, seconds)

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
    def held_ports(self) -> list[int]:
        """The client (source) ports of the requests a :meth:`hold_next` is holding now."""
        return list(self.faults.held_ports)

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
        """Forget records, knobs, injected failures and revocations; keep clients and tokens.

        The DPoP nonces are new ones; DPoP proof ``jti`` and assertion ``jti`` already used stay used.
        """
        with self._lock:
            self._reset_state()

    # ----------------------------------------------------------------- DPoP (RFC 9449)

    def dpop_nonces(self, *, api: bool = False) -> Nonces:
        """The nonces of the token endpoint (or of the API): each server its own (RFC 9449 §9)."""
        return self._api_nonces if api else self._token_nonces

    def current_dpop_nonce(self, *, api: bool = False) -> str:
        """The nonce the token endpoint (or the API) hands out now."""
        return self.dpop_nonces(api=api).current

    def rotate_dpop_nonce(self, *, api: bool = False, retire_previous: bool = False) -> str:
        """A new nonce for the token endpoint (or the API); the new value.

        The previous nonce stays accepted, and the next answer to a proof carrying it (a 200 too)
        has ``DPoP-Nonce: <new>`` (§8.2); with ``retire_previous`` it is refused at once
        (``use_dpop_nonce`` with the new one).
        """
        return self.dpop_nonces(api=api).rotate(retire_previous=retire_previous)

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
        self.tls_errors: list[dict[str, Any]] = []
        self.dpop_algorithms: tuple[str, ...] = DPOP_ALGORITHMS
        self.dpop_iat_window: int = DEFAULT_IAT_WINDOW
        self.dpop_nonce: bool = self._default_dpop_nonce
        self.dpop_api_nonce: bool = False
        self.dpop_bearer_answer: bool = False
        self.mtls_endpoint_aliases: bool = True
        self._token_nonces = Nonces("as")
        self._api_nonces = Nonces("rs")
        self.faults.reset()
        self.exports.reset()
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
        jkt: str | None = None,
        x5t_s256: str | None = None,
    ) -> IssuedToken:
        """A new opaque access token the API accepts (token exchange, impersonation); bound when given a
        DPoP key thumbprint (``jkt``) or a certificate thumbprint (``x5t_s256``)."""
        issued = IssuedToken(
            access_token=secrets.token_urlsafe(32),
            sub=sub,
            client_id=client_id,
            scope=scope,
            grant_type=grant_type,
            expires_at=self.now() + (lifetime if lifetime is not None else self.token_lifetime),
            act=act,
            audiences=audiences,
            jkt=jkt,
            x5t_s256=x5t_s256,
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
        jkt, _x5t_s256 = token_binding()
        token: dict[str, Any] = {"access_token": secrets.token_urlsafe(32), "token_type": "DPoP" if jkt else "Bearer"}
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
        jkt, x5t_s256 = token_binding()
        issued = IssuedToken(
            access_token=token["access_token"],
            sub=user.sub if user is not None else client.client_id,
            client_id=client.client_id,
            scope=token.get("scope"),
            grant_type=oauth_request.payload.grant_type,
            expires_at=self.now() + self.token_lifetime,
            jkt=jkt,
            x5t_s256=x5t_s256,
        )
        with self._lock:
            self._tokens[issued.access_token] = issued
        note_token_request(
            issued_sub=issued.sub, issued_scope=issued.scope, token_type=token["token_type"], cnf=issued.cnf
        )

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
