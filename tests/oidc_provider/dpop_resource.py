"""RFC 9449 written for the tests, independently of the provider: thumbprints, proofs, and a protected resource.

Nothing here imports ``airflow_jwt_provider``: what the provider sends is checked by this code and by
node-oidc-provider, never by the provider itself.

* :func:`jwk_thumbprint`: RFC 7638 (the canonical JSON written out member by member);
* :func:`make_proof`: a DPoP proof made with PyJWT (a thief's, or the owner's for a request the provider never made);
* :class:`DPoPResource`: a protected resource on 127.0.0.1 (a ``ThreadingHTTPServer`` in a thread) that accepts
  node's JWT access tokens (verified with PyJWT and node's ``/jwks``) with a DPoP proof (RFC 9449 §4.3, §7.1), and
  asks for its own nonce (§9) until a proof carries it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

#: RFC 7638 §3.2: the required members of a public JWK, by key type, in lexicographic order.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
#: Members of a JWK that only a private key has (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2, and oct's k).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256", "RS384", "PS384"})
#: How far a proof's iat may be from now (RFC 9449 §4.3 step 11 leaves the window to the server).
IAT_WINDOW = 60
_VALUE = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, in lexicographic order, without whitespace, base64url."""
    members = THUMBPRINT_MEMBERS[jwk["kty"]]
    for member in members:  # base64url values and curve names: nothing JSON would escape
        assert _VALUE.match(str(jwk[member])), (member, jwk[member])
    canonical = "{" + ",".join(f'"{member}":"{jwk[member]}"' for member in members) + "}"
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str) -> str:
    """RFC 9449 §4.2 ``ath``."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def normalized_uri(url: str) -> str:
    """The target URI compared with ``htu``: without query and fragment, RFC 3986 §6.2.2-3 normalized."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def public_jwk_of(private_key: Any) -> dict[str, Any]:
    """The public JWK of a private key (PyJWT), the required members only."""
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise TypeError(f"no JWK for {type(public).__name__}")
    return {member: jwk[member] for member in THUMBPRINT_MEMBERS[jwk["kty"]]}


def make_proof(
    private_key: Any,
    algorithm: str,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
) -> str:
    """A DPoP proof (RFC 9449 §4.2) made with PyJWT."""
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "htm": method,
        "htu": normalized_uri(url),
        "iat": int(time.time()),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    headers = {"typ": "dpop+jwt", "jwk": public_jwk_of(private_key)}
    return jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, not verified (to look at what was sent)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return jwt.get_unverified_header(token), claims


class Refused(Exception):
    """A request the resource refuses (401), and why."""

    def __init__(self, reason: str, *, nonce: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.nonce = nonce


@dataclass
class Call:
    """One request the resource answered."""

    method: str
    url: str
    status: int
    reason: str | None  # why it was refused; None when it was served
    body: bytes = b""
    proof: str | None = None
    proof_header: dict[str, Any] = field(default_factory=dict)
    proof_claims: dict[str, Any] = field(default_factory=dict)
    token_claims: dict[str, Any] = field(default_factory=dict)

    @property
    def nonce_challenge(self) -> bool:
        return self.reason == "use_dpop_nonce"

    @property
    def proof_verified(self) -> bool:
        """Every check of the proof and its binding passed (a nonce challenge only asks for the nonce)."""
        return self.status == 200 or self.nonce_challenge


class DPoPResource:
    """A DPoP-protected resource (RFC 9449 §7) for JWT access tokens of one authorization server.

    Every request: ``Authorization: DPoP <JWT access token>`` (RFC 9068: ``typ at+jwt``, signed by a key of the
    issuer's ``/jwks``, ``aud`` this resource, not expired, ``cnf.jkt``), one ``DPoP`` header holding a proof
    (§4.3: ``typ dpop+jwt``, an asymmetric ``alg``, a public ``jwk`` that verifies the signature; ``htm``,
    normalized ``htu``, ``iat`` within :data:`IAT_WINDOW`, a ``jti`` never seen; §7.1: ``ath`` the hash of the
    token, the jwk's thumbprint the token's ``cnf.jkt``) and, once every other check passed, this resource's
    current nonce, else ``401 WWW-Authenticate: DPoP error="use_dpop_nonce"`` with a ``DPoP-Nonce`` (§9).
    """

    def __init__(self) -> None:
        self.nonce = secrets.token_urlsafe(24)
        self.issuer = ""  # set once the authorization server runs
        self.calls: list[Call] = []
        self._jtis: set[str] = set()
        self._lock = threading.Lock()
        self._jwks: jwt.PyJWKSet | None = None
        resource = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                resource._handle(self)

            def do_POST(self) -> None:
                resource._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="dpop-resource", daemon=True)

    def start(self) -> DPoPResource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def trust(self, issuer: str) -> None:
        """Accept the access tokens of ``issuer`` (its keys from ``/jwks``); forget the calls and the nonce so far."""
        with self._lock:
            self.issuer = issuer
            self._jwks = None
            self.calls.clear()
            self.nonce = secrets.token_urlsafe(24)

    def rotate_nonce(self) -> str:
        """A new nonce: a proof with the previous one is answered use_dpop_nonce (as a server does when it expires)."""
        with self._lock:
            self.nonce = secrets.token_urlsafe(24)
            return self.nonce

    # --- the checks ---------------------------------------------------------------------------------------------

    def _signing_keys(self) -> jwt.PyJWKSet:
        if self._jwks is None:
            self._jwks = jwt.PyJWKSet.from_dict(requests.get(f"{self.issuer}/jwks", timeout=10).json())
        return self._jwks

    def _access_token(self, authorization: str | None) -> tuple[str, dict[str, Any]]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "dpop" or not token.strip():
            raise Refused("not DPoP: a DPoP-bound token needs the DPoP scheme (RFC 9449 §7.1)")
        token = token.strip()
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt":
            raise Refused("access token typ is not at+jwt")
        signing_key = self._signing_keys()[header["kid"]]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=[signing_key.algorithm_name],
                audience=self.url,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "aud", "iss", "cnf"]},
            )
        except jwt.InvalidTokenError as exc:
            raise Refused(f"access token: {exc}") from None
        if not isinstance(claims.get("cnf"), dict) or not claims["cnf"].get("jkt"):
            raise Refused("access token not bound to a key (no cnf.jkt)")
        return token, claims

    def _check(self, call: Call, proofs: list[str], token: str, token_claims: dict[str, Any]) -> None:
        if not proofs:
            raise Refused("no DPoP proof")
        if len(proofs) > 1:
            raise Refused("more than one DPoP header")
        proof = call.proof = proofs[0]
        try:
            header = call.proof_header = jwt.get_unverified_header(proof)
        except jwt.InvalidTokenError:
            raise Refused("proof is not a JWT") from None
        if header.get("typ") != "dpop+jwt":
            raise Refused("proof typ is not dpop+jwt")
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise Refused(f"proof alg {algorithm!r} is not an asymmetric algorithm")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or PRIVATE_MEMBERS & set(jwk):
            raise Refused("proof jwk missing or private")
        try:
            public_key = jwt.PyJWK(jwk, algorithm=algorithm)
            claims: dict[str, Any] = jwt.decode(
                proof,
                public_key.key,
                algorithms=[algorithm],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except (jwt.InvalidTokenError, jwt.PyJWKError) as exc:
            raise Refused(f"proof signature: {exc}") from None
        call.proof_claims = claims
        if claims.get("htm") != call.method:
            raise Refused("htm mismatch")
        if not isinstance(claims.get("htu"), str) or normalized_uri(claims["htu"]) != normalized_uri(call.url):
            raise Refused("htu mismatch")
        iat = claims.get("iat")
        if not isinstance(iat, int) or abs(time.time() - iat) > IAT_WINDOW:
            raise Refused("iat not recent")
        if not isinstance(claims.get("jti"), str) or len(claims["jti"]) < 16:
            raise Refused("jti missing or short")
        if claims.get("ath") != access_token_hash(token):
            raise Refused("ath mismatch")
        if jwk_thumbprint(jwk) != token_claims["cnf"]["jkt"]:
            raise Refused("jkt mismatch: the proof's key is not the token's")
        with self._lock:
            if claims["jti"] in self._jtis:
                raise Refused("jti replayed")
            self._jtis.add(claims["jti"])
            if claims.get("nonce") != self.nonce:
                raise Refused("use_dpop_nonce", nonce=True)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        host = handler.headers.get("Host", "")
        call = Call(method=handler.command, url=f"http://{host}{handler.path}", status=200, reason=None, body=body)
        extra: dict[str, str] = {}
        try:
            token, call.token_claims = self._access_token(handler.headers.get("Authorization"))
            self._check(call, handler.headers.get_all("DPoP") or [], token, call.token_claims)
        except Refused as refusal:
            call.status, call.reason = 401, refusal.reason
            if refusal.nonce:
                challenge = 'DPoP error="use_dpop_nonce", error_description="Resource server requires a nonce"'
                extra = {"WWW-Authenticate": challenge, "DPoP-Nonce": self.nonce}
            else:
                error = json.dumps(refusal.reason)
                extra = {"WWW-Authenticate": f'DPoP error="invalid_token", error_description={error}'}
        with self._lock:
            self.calls.append(call)
        answer = json.dumps(
            {"sub": call.token_claims.get("sub"), "client_id": call.token_claims.get("client_id")}
            if call.status == 200
            else {"error": call.reason}
        ).encode()
        handler.send_response(call.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(answer)
