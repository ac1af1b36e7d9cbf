"""The token endpoint's grants and client authentication, on Authlib's server side.

Our client's requests are checked by code that is *not ours*: Authlib's server side
(``authlib.oauth2.rfc7523.JWTBearerGrant``, ``JWTBearerClientAssertion``,
``ClientCredentialsGrant``) and joserfc's signature and claim checks, configured the way
providers behave:

* ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` (RFC 7523 §2.1; Google, Box,
  Salesforce, DocuSign style), with optional client-secret authentication (Box sends one):
  :class:`_JWTBearerGrant`;
* ``grant_type=client_credentials`` with ``private_key_jwt`` client authentication
  (RFC 7523 §2.2; Microsoft Entra style), or with a client secret: :class:`_PrivateKeyJWTAuth`,
  :class:`_ClientCredentialsGrant`, :func:`_secret_post`, :func:`_secret_basic`;
* the Entra on-behalf-of flow (``requested_token_use=on_behalf_of``) whose ``assertion`` is a
  user token issued by this server (:meth:`LocalAuthorizationServer.issue_user_token`):
  :class:`_OnBehalfOfGrant`;
* mutual-TLS client authentication (RFC 8705 §2): ``tls_client_auth`` and
  ``self_signed_tls_client_auth`` (:class:`_MutualTlsAuth`);
* proof of possession for every grant (:func:`check_proof_of_possession`): a DPoP proof (RFC 9449
  §5) binds the token to its key (``token_type: DPoP``), a client registered with
  ``tls_client_certificate_bound_access_tokens`` gets tokens bound to its TLS certificate (RFC 8705 §3).

Where the proof is checked: after the client authenticated (a ``private_key_jwt`` assertion is then
used up, so a client retrying after ``use_dpop_nonce`` must send a fresh one -- node-oidc-provider
behaves the same), before the grant's own assertion or subject token is used up (a retry may resend it,
as with any other refusal that comes before it is consumed: see :class:`_JWTBearerGrant`).

Things Authlib 1.9 does differently from providers, changed here on purpose (each one would
otherwise refuse valid requests or accept invalid ones):

* It decodes assertions with joserfc's *default* algorithm list, which is only the
  "recommended" ``HS256``/``RS256``/``ES256``: RS384/512, PS*, ES384/512 and EdDSA would be
  refused and ``HS256`` accepted. Here the list is explicit and asymmetric only; ``EdDSA`` (the
  only Ed25519 name PyJWT signs) and ``Ed25519`` (RFC 9864) are both listed.
* joserfc refuses a JWS header longer than 512 base64 characters, which an ``x5c`` chain
  exceeds; the limit is raised.
* It requires neither ``iat`` nor ``jti`` on the grant assertion, and checks no maximum
  lifetime; providers do (Google: at most one hour; Box: 60 s). Both are enforced here
  (:func:`_verify_assertion`, :class:`UsedJti`).
* Error descriptions may not contain ``"`` or ``\\``, or Authlib raises while building the
  error; every description here goes through :func:`_safe`.

The checks need the server's clock, leeway, clients and replay state; they reach them through
``LocalAuthorizationServer`` (each grant through ``self.server.local``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    TokenEndpointMixin,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import g, request
from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError, UnsupportedAlgorithmError

from devserver import dpop, tls
from devserver.records import note_token_request

if TYPE_CHECKING:
    from devserver.server import LocalAuthorizationServer, RegisteredClient

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
CLIENT_AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]
_USER_TOKEN_ALGORITHM = "ES256"


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


class InvalidDPoPProofError(OAuth2Error):
    """RFC 9449 §5: the token request's DPoP proof is missing or not acceptable."""

    error = dpop.INVALID_DPOP_PROOF


class UseDPoPNonceError(OAuth2Error):
    """RFC 9449 §8: retry with the nonce in ``DPoP-Nonce`` (the token endpoint adds the header)."""

    error = dpop.USE_DPOP_NONCE


@dataclass
class User:
    """The resource owner named by an assertion's ``sub``; any subject is accepted."""

    sub: str

    def get_user_id(self) -> str:
        return self.sub


# --------------------------------------------------------------------------- server-held state


class UsedJti:
    """The ``jti`` values already accepted, per client: an assertion is good for one token.

    The server keeps one for its lifetime (``reset()`` does not forget them: a replay stays a
    replay). :meth:`consume` checks and adds under one lock, so of concurrent requests carrying
    the same assertion exactly one gets a token.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[tuple[str, str]] = set()

    def check(self, client_id: str, jti: str, error: ErrorFactory) -> None:
        """Refuse an already used jti early (before the request is checked any further)."""
        with self._lock:
            if (client_id, jti) in self._used:
                raise error("jti already used")

    def consume(self, client_id: str, jti: str, error: ErrorFactory) -> None:
        with self._lock:
            key = (client_id, jti)
            if key in self._used:
                raise error("jti already used")
            self._used.add(key)


class UserTokenKey:
    """The key this server signs on-behalf-of "user tokens" with (ES256; only it holds it)."""

    def __init__(self) -> None:
        private_key = ec.generate_private_key(ec.SECP256R1())
        self._key = jwk.ECKey.import_key(
            private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self._kid = "devserver-" + secrets.token_hex(4)

    def __repr__(self) -> str:
        return f"UserTokenKey(kid={self._kid!r})"

    def sign(self, payload: Mapping[str, Any]) -> str:
        header = {"alg": _USER_TOKEN_ALGORITHM, "kid": self._kid}
        return jwt.encode(header, dict(payload), self._key, registry=_USER_TOKEN_REGISTRY)

    def decode(self, token: str) -> jwt.Token:
        """Signature check only (raises joserfc's errors); claims are checked by the caller."""
        return jwt.decode(token, self._key, registry=_USER_TOKEN_REGISTRY)


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


def _audiences(local: LocalAuthorizationServer, client: RegisteredClient) -> list[str]:
    """The token endpoint URL as configured *and* as this request reached it.

    The second matters behind docker-compose, where clients use ``http://devserver:8080``
    while the server only knows it listens on ``0.0.0.0``.
    """
    accepted = [local.token_url, request.base_url, *client.extra_audiences]
    return list(dict.fromkeys(accepted))


def _server_audiences(local: LocalAuthorizationServer) -> list[str]:
    """What a JWT meant for this server may carry as ``aud``: its issuer or its token endpoint."""
    return list(dict.fromkeys([local.issuer, local.token_url, request.base_url]))


def _verify_assertion(
    local: LocalAuthorizationServer,
    assertion: str,
    header: Mapping[str, Any],
    client: RegisteredClient,
    error: ErrorFactory,
    *,
    require_sub: bool = True,
) -> dict[str, Any]:
    """Signature, thumbprint and claim checks shared by the grant and client assertions.

    ``sub`` is required (RFC 7523 §3: "The JWT MUST contain a sub claim"), unless the client was
    registered like a Google service account, whose assertions name a subject only to act for a user.
    """
    if client.public_key is None:
        raise error("The client has no registered certificate or public key.")
    try:
        token = jwt.decode(assertion, client.public_key, registry=_REGISTRY)
    except JoseError as exc:
        raise error(f"Assertion signature check failed: {exc.description or exc.error}") from None
    except ValueError as exc:
        raise error(f"Invalid JWT assertion: {exc}") from None
    _check_thumbprints(header, client, error)

    verified = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        now=lambda: int(local.now()),
        leeway=local.leeway,
        iss={"essential": True},
        aud={"essential": True, "values": _audiences(local, client)},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        **({"sub": {"essential": True}} if require_sub and not client.subject_optional else {}),
    )
    try:
        registry.validate(verified)
    except JoseError as exc:
        raise error(exc.description or exc.error) from None

    exp, iat = verified["exp"], verified["iat"]
    limit = client.max_assertion_lifetime
    if exp - iat > limit:
        raise error(f"Assertion lifetime (exp - iat = {math.ceil(exp - iat)} s) exceeds {limit} s.")
    if exp - local.now() > limit + local.leeway:
        raise error(f"Assertion exp is more than {limit} s in the future.")
    for name, allowed in client.required_claims.items():
        if name not in verified:
            raise error(f"Missing required claim: '{name}'")
        if allowed and verified[name] not in allowed:
            raise error(f"Claim '{name}' must be one of {', '.join(map(str, allowed))}.")
    local.used_jti.check(client.client_id, verified["jti"], error)
    return verified


def _check_thumbprints(header: Mapping[str, Any], client: RegisteredClient, error: ErrorFactory) -> None:
    """``x5t#S256``/``x5t`` must be the SHA-256/SHA-1 of the registered DER certificate."""
    if client.certificate_der is None:
        return
    for name, algorithm in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        if name in header:
            expected = _b64url(hashlib.new(algorithm, client.certificate_der).digest())
            if header[name] != expected:
                raise error(f"The {name} header does not match the registered certificate.")


def _verify_user_token(local: LocalAuthorizationServer, assertion: str, client_id: str) -> dict[str, Any]:
    """An on-behalf-of assertion: a user token this server signed, for this client, still valid."""
    try:
        token = local.user_token_key.decode(assertion)
    except JoseError as exc:
        raise _grant_error(
            f"The assertion is not a user token of this server: {exc.description or exc.error}"
        ) from None
    except ValueError:
        raise _grant_error("Invalid JWT assertion.") from None
    registry = jwt.JWTClaimsRegistry(
        now=lambda: int(local.now()),
        leeway=local.leeway,
        iss={"essential": True, "value": local.issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(token.claims)
    except JoseError as exc:
        raise _grant_error(exc.description or exc.error) from None
    return dict(token.claims)


# --------------------------------------------------------------------------- proof of possession


def token_binding() -> tuple[str | None, str | None]:
    """The key thumbprint (``jkt``) and certificate thumbprint (``x5t#S256``) the token being issued is bound to."""
    return g.get("pop_jkt"), g.get("pop_x5t_s256")


def check_proof_of_possession(local: LocalAuthorizationServer, client: RegisteredClient | None) -> None:
    """The token request's DPoP proof and certificate binding (RFC 9449 §5, RFC 8705 §3); see the module doc.

    Sets what :func:`token_binding` answers. ``client`` is None for an anonymous token exchange.
    """
    proofs = request.headers.getlist("DPoP")
    certificate_bound = client is not None and client.tls_client_certificate_bound_access_tokens
    if proofs and certificate_bound:
        # node-oidc-provider answers the same; a token has one confirmation method.
        raise InvalidRequestError(description="multiple proof-of-possession mechanisms are not allowed")
    if not proofs and client is not None and client.dpop_bound_access_tokens:
        note_token_request(dpop_failure="missing")
        raise InvalidDPoPProofError(
            description="DPoP proof required: the client is registered with dpop_bound_access_tokens."
        )
    if proofs:
        nonces = local.dpop_nonces() if local.dpop_nonce else None
        try:
            proof = dpop.verify_proof(
                proofs,
                method=request.method,
                url=request.base_url,
                algorithms=local.dpop_algorithms,
                now=local.now(),
                iat_window=local.dpop_iat_window,
                leeway=local.leeway,
                used=local.used_dpop_proofs,
                nonces=nonces,
            )
        except dpop.ProofError as exc:
            note_token_request(dpop_failure=exc.description)
            if exc.error == dpop.USE_DPOP_NONCE and nonces is not None:
                g.dpop_nonce_header = nonces.current
                note_token_request(dpop_nonce_challenge=True)
                raise UseDPoPNonceError(description=_safe(exc.description)) from None
            raise InvalidDPoPProofError(description=_safe(exc.description)) from None
        note_token_request(dpop_verified=True)
        if proof.new_nonce is not None:
            g.dpop_nonce_header = proof.new_nonce
        if not local.dpop_bearer_answer:
            g.pop_jkt = proof.jkt
    if certificate_bound:
        certificate = tls.peer_certificate(request.environ)
        if certificate is None:
            raise InvalidGrantError(description="mutual TLS client certificate not provided")
        g.pop_x5t_s256 = tls.thumbprint(certificate)


class _MutualTlsAuth:
    """RFC 8705 §2 client authentication: ``client_id`` in the request, no secret or assertion, and the
    certificate of the TLS connection.

    ``tls_client_auth`` (§2.1): the certificate was issued by the server's test CA and has the subject
    the client registered. ``self_signed_tls_client_auth`` (§2.2): the certificate is one the client
    registered (SHA-256 of the DER; the chain is not validated). A request with other credentials, or
    for a client registered otherwise, is left to the other methods.
    """

    def __init__(self, local: LocalAuthorizationServer, method: str) -> None:
        self.local = local
        self.method = method

    def __call__(self, query_client: Callable[[str], Any], oauth_request: Any) -> RegisteredClient | None:
        form = oauth_request.form
        client_id = form.get("client_id")
        if not client_id or form.get("client_secret") or form.get("client_assertion"):
            return None
        if extract_basic_authorization(oauth_request.headers)[0]:
            return None
        client: RegisteredClient | None = query_client(client_id)
        if client is None or client.mtls_auth_method != self.method:
            return None
        certificate = tls.peer_certificate(request.environ)
        if certificate is None:
            raise _client_error("No client certificate: mutual TLS client authentication needs one.")
        if self.method == "tls_client_auth":
            rule = client.tls_client_auth
            if not self.local.authority.issued(certificate):
                raise _client_error("The client certificate was not issued by this server's CA.")
            if rule is None or not rule.matches(certificate):
                raise _client_error("The client certificate's subject does not match the registered one.")
        else:
            der = certificate.public_bytes(serialization.Encoding.DER)
            if der not in client.self_signed_certificates:
                raise _client_error("The client certificate is not one the client registered.")
        return client


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
        note_token_request(assertion_header=header, assertion_claims=claims, assertion_scope=claims.get("scope"))
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise _grant_error("Missing claim: 'iss'")
        self._federated = issuer not in self.local.clients and self.local.federation.trusts(issuer)
        if self._federated:  # a platform's JWT: the federation rule names the client
            self._claims, rule = self.local.federation.verify(
                assertion,
                audiences=_server_audiences(self.local),
                now=self.local.now(),
                leeway=self.local.leeway,
                error=_grant_error,
            )
            client = self.local.clients.get(rule.client_id) if rule and rule.client_id else None
            if client is None:
                raise _grant_error("The federated credential names no client of this server.")
            self._federated_client = client
            note_token_request(client_id=client.client_id, assertion_verified=True, federated=True)
            return self._claims
        client = self.resolve_issuer_client(issuer)
        if client is None:
            raise _grant_error("The client does not exist on this server.")
        note_token_request(client_id=client.client_id)
        self._claims = _verify_assertion(self.local, assertion, header, client, _grant_error)
        note_token_request(assertion_verified=True)
        return self._claims

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: RegisteredClient = self.request.client
        self._authenticate_client_if_needed(client)
        check_proof_of_possession(self.local, client)
        if self._federated:
            return  # a platform's JWT is presented until it expires (see devserver.federation)
        # Consumed last, so a request refused for another reason does not burn the jti.
        self.local.used_jti.consume(client.client_id, self._claims["jti"], _grant_error)

    def _authenticate_client_if_needed(self, client: RegisteredClient) -> None:
        """Box-style: a client registered with a secret (or for mutual TLS) must also authenticate.

        Credentials sent by a client that has none registered are checked too, so a client
        that leaks a secret where none is expected fails visibly.
        """
        form = self.request.form
        sent = bool(
            form.get("client_secret")
            or form.get("client_assertion")
            or extract_basic_authorization(self.request.headers)[0]
        )
        if client.client_secret is None and client.mtls_auth_method is None and not sent:
            return
        authenticated = self.server.authenticate_client(self.request, CLIENT_AUTH_METHODS)
        if authenticated.client_id != client.client_id:
            raise _client_error("Client credentials belong to another client than the assertion's issuer.")
        note_token_request(client_auth=self.request.auth_method)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # Google and DocuSign carry the scope in the assertion instead of a form field.
        scope = self.request.payload.scope or self._claims.get("scope")
        if isinstance(scope, list):
            scope = " ".join(map(str, scope))
        token = self.generate_token(scope=scope, user=self.request.user, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def resolve_issuer_client(self, issuer: str) -> RegisteredClient | None:
        if getattr(self, "_federated", False):
            return self._federated_client
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
        note_token_request(client_assertion_header=header, client_assertion_claims=claims)
        issuer = claims.get("iss")
        if isinstance(issuer, str) and issuer not in self.local.clients and self.local.federation.trusts(issuer):
            return self._federated(query_client, request, assertion)
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise _client_error("Missing claim: 'sub'")
        client = query_client(subject)
        if client is None:
            raise _client_error("The client does not exist on this server.")
        if form.get("client_id") not in (None, subject):
            raise _client_error("client_id does not match the client assertion's sub.")
        note_token_request(client_id=client.client_id)
        verified = _verify_assertion(self.local, assertion, header, client, _client_error)
        if verified["iss"] != verified["sub"]:
            raise _client_error("Issuer and Subject MUST match.")
        self.local.used_jti.consume(client.client_id, verified["jti"], _client_error)
        note_token_request(client_assertion_verified=True)
        request.client = client
        return self.authenticate_client(client)

    def _federated(self, query_client: Callable[[str], Any], request: Any, assertion: str) -> RegisteredClient | None:
        """Entra's federated credential: the platform's JWT is the client assertion, ``client_id`` names the app."""
        client_id = request.form.get("client_id")
        if not client_id:
            raise _client_error("client_id is required with a federated client assertion.")
        client = query_client(client_id)
        if client is None:
            raise _client_error("The client does not exist on this server.")
        _claims, rule = self.local.federation.verify(
            assertion,
            audiences=_server_audiences(self.local),
            now=self.local.now(),
            leeway=self.local.leeway,
            error=_client_error,
            client_id=client_id,
        )
        if rule is None or rule.client_id != client_id:
            raise _client_error(f"No federated credential of client {client_id!r} admits this JWT.")
        note_token_request(client_id=client_id, client_assertion_verified=True, federated=True)
        request.client = client
        return client  # authenticated by its federated credential, not by a key registered here

    def get_audiences(self) -> list[str]:  # pragma: no cover - _verify_assertion decides
        return []


class _ClientCredentialsGrant(ClientCredentialsGrant):
    """``client_credentials`` with a secret or ``private_key_jwt`` (Entra app-only tokens)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        note_token_request(client_id=self.request.client.client_id, client_auth=self.request.auth_method)
        check_proof_of_possession(self.local, self.request.client)

    @property
    def local(self) -> LocalAuthorizationServer:
        return self.server.local


class _OnBehalfOfGrant(BaseGrant, TokenEndpointMixin):
    """Microsoft Entra on-behalf-of: exchange a user's token for one the client may use downstream.

    The assertion is a token this server issued to the user for the client (``aud`` =
    client_id); the client authenticates itself as well. The new token carries the user's sub.
    """

    GRANT_TYPE = JWT_BEARER_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

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
        note_token_request(client_id=client.client_id, client_auth=self.request.auth_method)
        assertion = self.request.form.get("assertion")
        if not assertion:
            raise InvalidRequestError("Missing 'assertion' in request")
        header, claims = _peek(assertion, _grant_error)
        note_token_request(assertion_header=header, assertion_claims=claims, assertion_scope=claims.get("scope"))
        self._claims = _verify_user_token(self.local, assertion, client.client_id)
        note_token_request(assertion_verified=True)
        self.request.client = client
        self.request.user = User(self._claims["sub"])
        self.validate_requested_scope()
        check_proof_of_possession(self.local, client)

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


class AuthlibServer(AuthorizationServer):
    """Authlib's Flask authorization server wired to a :class:`LocalAuthorizationServer`.

    ``save_token`` and ``generate_token`` are the server's own: it keeps the tokens it issues.
    """

    def __init__(
        self,
        local: LocalAuthorizationServer,
        *,
        save_token: Callable[[dict[str, Any], Any], None],
        generate_token: Callable[..., dict[str, Any]],
    ) -> None:
        super().__init__(query_client=local.clients.get, save_token=save_token)
        self.local = local
        self.register_token_generator("default", generate_token)
        self.register_grant(_OnBehalfOfGrant)
        self.register_grant(_JWTBearerGrant)
        self.register_grant(_ClientCredentialsGrant)
        from devserver.exchange import TokenExchangeGrant  # it builds on this module's checks

        self.register_grant(TokenExchangeGrant)
        self.register_client_auth_method("client_secret_basic", _secret_basic)
        self.register_client_auth_method("client_secret_post", _secret_post)
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJWTAuth(local))
        for method in ("tls_client_auth", "self_signed_tls_client_auth"):
            self.register_client_auth_method(method, _MutualTlsAuth(local, method))
