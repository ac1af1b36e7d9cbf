"""RFC 8693 token exchange, and Google's impersonation step after it.

:class:`TokenExchangeGrant` (``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``) accepts a
``subject_token`` that is a JWT (``subject_token_type`` ``…:jwt`` or ``…:id_token``) either from an issuer
the server trusts by discovery (:mod:`devserver.federation`: Kubernetes, GitHub Actions, a cloud), or
signed by a registered client's key (``iss`` = its client id, ``aud`` this server, ``jti`` single-use).
An optional ``actor_token`` (with its ``actor_token_type``, RFC 8693 §2.1) is verified the same way and
recorded as the issued token's ``act`` claim (§4.1), nesting any ``act`` the subject token carried.
``requested_token_type`` may be ``…:access_token`` (default: an opaque bearer token for the API) or
``…:id_token`` (a JWT the server signs, answered with ``token_type`` ``N_A``, §2.2.1, which the API
refuses). Errors follow §2.2.2: ``invalid_request`` for a subject or actor token that is missing, of an
unsupported type or not acceptable; ``invalid_target`` for an ``audience`` no federation rule names.

The client authenticates as registered; without any client credentials the request is anonymous, which
only a federation rule without a client admits (Google's STS: the ``audience`` parameter names the
workload identity pool provider instead).

``POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`` stands in for Google's IAM
Credentials API: an exchanged token whose subject :meth:`~devserver.server.LocalAuthorizationServer.
allow_impersonation` admits gets the service account's token, answered in Google's camelCase shape
(``accessToken``, ``expireTime``), errors as ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import BaseGrant, InvalidRequestError, TokenEndpointMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, jsonify, request

from devserver.grants import (
    CLIENT_AUTH_METHODS,
    ErrorFactory,
    _peek,
    _safe,
    _server_audiences,
    _verify_assertion,
    check_proof_of_possession,
    token_binding,
)
from devserver.records import note_token_request
from devserver.web import local_server

if TYPE_CHECKING:
    from devserver.server import LocalAuthorizationServer, RegisteredClient

TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: Subject and actor tokens this server can read: JWTs.
JWT_TOKEN_TYPES = (JWT_TYPE, ID_TOKEN_TYPE)
ISSUABLE_TYPES = (ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE)


def _request_error(description: str) -> Exception:
    return InvalidRequestError(description=_safe(description))


class InvalidTargetError(OAuth2Error):
    """RFC 8693 §2.2.2 (RFC 8707): the audience or resource is not acceptable (Authlib has no class for it)."""

    error = "invalid_target"


class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):
    """RFC 8693 §2.1 token exchange for JWT subject tokens (see the module docstring)."""

    GRANT_TYPE = TOKEN_EXCHANGE_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @property
    def local(self) -> LocalAuthorizationServer:
        return self.server.local

    def validate_token_request(self) -> None:
        form = request.form
        client = self._client()
        check_proof_of_possession(self.local, client)  # before the subject token is used up
        subject_token, subject_type = form.get("subject_token"), form.get("subject_token_type")
        if not subject_token or not subject_type:
            raise _request_error("subject_token and subject_token_type are required (RFC 8693 §2.1).")
        if subject_type not in JWT_TOKEN_TYPES:
            raise _request_error(f"Unsupported subject_token_type {subject_type}.")
        audiences = form.getlist("audience")
        self._audiences = audiences
        subject, rule_client = self._verify(subject_token, client, audiences[0] if audiences else None, "subject_token")
        note_token_request(
            assertion_claims=_public(subject), assertion_verified=True, exchange_audiences=audiences or None
        )
        if client is None and rule_client is not False:
            raise InvalidClientError(
                description="Client authentication is required for this subject token.", status_code=401
            )
        act = None
        actor_token = form.get("actor_token")
        if actor_token:
            actor_type = form.get("actor_token_type")
            if not actor_type:
                raise _request_error("actor_token_type is required with actor_token (RFC 8693 §2.1).")
            if actor_type not in JWT_TOKEN_TYPES:
                raise _request_error(f"Unsupported actor_token_type {actor_type}.")
            actor, _rule = self._verify(actor_token, client, None, "actor_token", require_rule=False)
            act = {"sub": actor["sub"], "iss": actor["iss"]}
            if isinstance(subject.get("act"), dict):
                act["act"] = subject["act"]
            note_token_request(actor_claims=_public(actor), actor_verified=True)
        elif form.get("actor_token_type"):
            raise _request_error("actor_token_type is sent without actor_token.")
        requested = form.get("requested_token_type") or ACCESS_TOKEN_TYPE
        if requested not in ISSUABLE_TYPES:
            raise _request_error(f"Unsupported requested_token_type {requested}.")
        self._subject, self._act, self._requested = subject, act, requested
        self._client_id = client.client_id if client else (rule_client or "federated")
        note_token_request(client_id=client.client_id if client else None, requested_token_type=requested, act=act)

    def _client(self) -> RegisteredClient | None:
        """The authenticated client, or ``None`` when the request carries no client credentials at all."""
        form = request.form
        sent = form.get("client_id") or form.get("client_assertion") or extract_basic_authorization(request.headers)[0]
        if not sent:
            return None
        client: RegisteredClient = self.authenticate_token_endpoint_client()
        note_token_request(client_auth=self.request.auth_method)
        return client

    def _verify(
        self,
        token: str,
        client: RegisteredClient | None,
        exchange_audience: str | None,
        what: str,
        *,
        require_rule: bool = True,
    ) -> tuple[dict[str, Any], str | bool | None]:
        """The verified claims of a subject or actor token; and the rule's client (``False``: a rule without one)."""
        local = self.local
        error: ErrorFactory = lambda text: _request_error(f"{what}: {text}")  # noqa: E731
        header, claims = _peek(token, error)
        issuer = claims.get("iss")
        if isinstance(issuer, str) and issuer in local.clients:  # signed by a client's key (assertion_source sign)
            signer = local.clients[issuer]
            verified = _verify_assertion(local, token, header, signer, error)
            local.used_jti.consume(signer.client_id, verified["jti"], error)
            return verified, signer.client_id
        if not local.federation.trusts(issuer):
            raise error(f"the issuer {issuer!r} is not trusted by this server.")
        verified, rule = local.federation.verify(
            token,
            audiences=_server_audiences(local),
            now=local.now(),
            leeway=local.leeway,
            error=error,
            client_id=client.client_id if client else None,
            exchange_audience=exchange_audience,
            require_rule=require_rule,
            target_error=lambda text: InvalidTargetError(description=_safe(text)),
        )
        if rule is None:
            return verified, None
        return verified, rule.client_id if rule.client_id else False

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        local = self.local
        scope = request.form.get("scope")
        if self._requested == ID_TOKEN_TYPE:
            body = {
                "access_token": local.sign_id_token(self._subject["sub"], self._audiences or [self._client_id]),
                "issued_token_type": ID_TOKEN_TYPE,
                "token_type": "N_A",
                "expires_in": local.token_lifetime,
            }
            note_token_request(issued_sub=self._subject["sub"], issued_token_type=ID_TOKEN_TYPE, token_type="N_A")
            return 200, body, self.TOKEN_RESPONSE_HEADER
        jkt, x5t_s256 = token_binding()
        issued = local.issue_access_token(
            sub=self._subject["sub"],
            client_id=self._client_id,
            scope=scope,
            grant_type=TOKEN_EXCHANGE_GRANT_TYPE,
            act=self._act,
            audiences=tuple(self._audiences),
            jkt=jkt,
            x5t_s256=x5t_s256,
        )
        body = {
            "access_token": issued.access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": issued.token_type,
            "expires_in": local.token_lifetime,
        }
        if scope:
            body["scope"] = scope
        note_token_request(
            issued_sub=issued.sub,
            issued_scope=scope,
            issued_token_type=ACCESS_TOKEN_TYPE,
            token_type=issued.token_type,
            cnf=issued.cnf,
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


def _public(claims: dict[str, Any]) -> dict[str, Any]:
    """Claims for the records (a JWT's claims are not secret; its signature is what makes it a credential)."""
    return dict(claims)


# --------------------------------------------------------------------------- Google's generateAccessToken

blueprint = Blueprint("impersonation", __name__)
_NAME = re.compile(r"(?P<email>[^/:]+):generateAccessToken")


def _google_error(code: int, status: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message, "status": status}), code


@blueprint.post("/v1/projects/<project>/serviceAccounts/<path:name>")
def generate_access_token(project: str, name: str) -> tuple[Response, int]:
    local = local_server()
    match = _NAME.fullmatch(name)
    if match is None:
        return _google_error(404, "NOT_FOUND", "Method not found.")
    if project != "-":
        return _google_error(400, "INVALID_ARGUMENT", "The - wildcard character is required for the project.")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    issued, revoked = local.bearer_token_state(presented.strip()) if scheme.lower() == "bearer" else (None, False)
    if issued is None or revoked or issued.expires_at <= local.now() or issued.jkt or issued.x5t_s256:
        # A bound token is not a bearer token (RFC 9449 §7.2, RFC 8705 §3); IAM takes bearer tokens only.
        return _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    email = match.group("email")
    allowed = local.impersonation.get(email)
    if allowed is None or not fnmatch.fnmatchcase(issued.sub, allowed):
        return _google_error(
            403,
            "PERMISSION_DENIED",
            f"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): {email}",
        )
    body = request.get_json(silent=True) or {}
    scopes = body.get("scope")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        return _google_error(400, "INVALID_ARGUMENT", "scope: at least one value required.")
    lifetime = 3600
    if "lifetime" in body:
        raw = str(body["lifetime"])
        if not re.fullmatch(r"\d+s", raw) or not 0 < int(raw[:-1]) <= 3600:
            return _google_error(400, "INVALID_ARGUMENT", "lifetime must be a duration in seconds up to 3600s.")
        lifetime = int(raw[:-1])
    token = local.issue_access_token(
        sub=email,
        client_id=issued.client_id,
        scope=" ".join(scopes),
        grant_type="generateAccessToken",
        lifetime=lifetime,
        act={"sub": issued.sub},
    )
    expire = datetime.fromtimestamp(token.expires_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return jsonify(accessToken=token.access_token, expireTime=expire), 200
