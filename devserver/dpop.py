"""DPoP proofs (RFC 9449) as this server checks them, at the token endpoint (§5) and at the API (§7).

The checks are those of RFC 9449 §4.3 ("the receiving server MUST ensure"), written here and run with
joserfc (the client signs with PyJWT: a proof is verified by code that is not the client's):

1. exactly one ``DPoP`` header (werkzeug joins repeated headers with a comma, which a JWT never holds);
2. a well-formed compact JWS whose header and payload are JSON objects;
3. ``typ`` exactly ``dpop+jwt`` (§4.2, §11.5);
4. ``alg`` in the server's list (:data:`DPOP_ALGORITHMS`, restricted by the ``dpop_algorithms`` knob) and
   asymmetric -- symmetric algorithms and ``none`` are never accepted, whatever the knob says -- and
   matching the ``jwk``'s key type (and curve);
5. a ``jwk`` header without private members (``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``oth``, ``k``);
6. the signature, verified with that ``jwk``;
7. the claims ``jti`` (string), ``htm``, ``htu`` (strings) and ``iat`` (number), plus ``ath`` at the API;
8. ``htm`` equal to the request's method;
9. ``htu`` equal to the request URL, both without query and fragment, after RFC 3986 syntax-based
   (§6.2.2: case, percent-encoding, dot segments) and scheme-based (§6.2.3: default port, empty path)
   normalization (:func:`normalize_uri`); user info is kept, so a proof that carries a password in
   ``htu`` does not match;
10. ``ath`` equal to the base64url SHA-256 of the access token (API only);
11. a fresh proof: ``iat`` no older than ``iat_window`` + ``leeway`` seconds and no more than ``leeway``
    seconds ahead -- unless the server requires nonces: an accepted nonce then stands for the creation
    time (§4.3 step 11, §11.1), and a proof without one gets ``use_dpop_nonce`` whatever its ``iat``, as
    node-oidc-provider answers;
12. a ``jti`` never seen before by this server (token endpoint and API share one set, kept for the
    server's lifetime); a proof refused only for its nonce has used its ``jti`` too;
13. when nonces are on, a ``nonce`` the server gave and still accepts (:class:`Nonces`); otherwise the
    error is ``use_dpop_nonce`` and the answer carries the current nonce in ``DPoP-Nonce``.

Errors are :class:`ProofError` (``invalid_dpop_proof`` or ``use_dpop_nonce``); the binding to the
access token (``cnf.jkt``) is checked by the caller with :attr:`VerifiedProof.jkt`, the RFC 7638
SHA-256 thumbprint of the ``jwk`` (computed by joserfc).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwk, jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError

__all__ = [
    "DEFAULT_IAT_WINDOW",
    "DPOP_ALGORITHMS",
    "INVALID_DPOP_PROOF",
    "NONCE_HEADER",
    "PROOF_TYPE",
    "USE_DPOP_NONCE",
    "Nonces",
    "ProofError",
    "UsedProofs",
    "VerifiedProof",
    "access_token_hash",
    "decode_unverified",
    "jwk_thumbprint",
    "normalize_uri",
    "verify_proof",
]

#: The algorithms accepted by default, in the order the metadata lists them.
DPOP_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256")
PROOF_TYPE = "dpop+jwt"
NONCE_HEADER = "DPoP-Nonce"
INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"
#: Seconds a proof is accepted after its ``iat`` (the server's ``leeway`` is added on both sides).
DEFAULT_IAT_WINDOW = 60
#: JWK members that only a private (or symmetric) key has (RFC 7517/7518/8037).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

#: Every asymmetric algorithm this module can check: the key type and curve its ``jwk`` must have.
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
    "Ed25519": ("OKP", "Ed25519"),
    "Ed448": ("OKP", "Ed448"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
_EDDSA_CURVES = ("Ed25519", "Ed448")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


class ProofError(Exception):
    """A refused proof: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that passed every check of the module docstring."""

    header: dict[str, Any]
    claims: dict[str, Any]
    #: RFC 7638 SHA-256 thumbprint of the proof's ``jwk`` (the ``cnf.jkt`` of a token it binds).
    jkt: str
    #: The server's current nonce when the proof did not carry it (the answer should hand it out: §8.2).
    new_nonce: str | None = None


class Nonces:
    """The DPoP nonces of one server (token endpoint or API: nonces are per server, §9).

    One current value, handed out in ``DPoP-Nonce``; :meth:`rotate` makes a new one current and keeps
    accepting the previous one (so a 200 can carry the new nonce, §8.2) unless told to retire it (the
    next proof with it gets ``use_dpop_nonce`` and the new one).
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._lock = threading.Lock()
        self._current = self._new()
        self._previous: str | None = None

    def __repr__(self) -> str:
        return f"Nonces({self._label!r})"

    def _new(self) -> str:
        return f"{self._label}-{secrets.token_urlsafe(16)}"

    @property
    def current(self) -> str:
        with self._lock:
            return self._current

    def rotate(self, *, retire_previous: bool = False) -> str:
        with self._lock:
            self._previous = None if retire_previous else self._current
            self._current = self._new()
            return self._current

    def accepts(self, value: object) -> bool:
        with self._lock:
            return isinstance(value, str) and value in (self._current, self._previous)


class UsedProofs:
    """The ``jti`` of every proof accepted (or refused only for its nonce); a proof is good for one request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[str] = set()

    def consume(self, jti: str) -> bool:
        """Whether ``jti`` was new (it is used from now on)."""
        with self._lock:
            if jti in self._used:
                return False
            self._used.add(jti)
            return True


class _ProofRegistry(jws.JWSRegistry):
    """joserfc registry for one proof's algorithm, checked here (joserfc would warn on every EdDSA use)."""

    max_header_length = 16384  # an RSA jwk is longer than joserfc's default limit of 512 characters

    def get_alg(self, name: str) -> Any:
        if name not in self.algorithms or name not in _KEY_TYPES:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


# --------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2)."""
    return _b64url(hashlib.sha256(access_token.encode("ascii", errors="replace")).digest())


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a JWK, base64url (joserfc's computation)."""
    return jwk.import_key(dict(public_jwk)).thumbprint()


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def decode_unverified(value: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a compact JWS, unverified (for the records); None if it is not one."""
    parts = value.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _b64_json(parts[0]), _b64_json(parts[1])
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


def _normalize_percent(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(fix, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    output: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith("./") or rest.startswith("/./"):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if output:
                output.pop()
        elif rest == "/..":
            rest = "/"
            if output:
                output.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            start = 1 if rest.startswith("/") else 0
            end = rest.find("/", start)
            end = len(rest) if end == -1 else end
            output.append(rest[:end])
            rest = rest[end:]
    return "".join(output)


def normalize_uri(url: str) -> str:
    """``url`` without query and fragment, RFC 3986 §6.2.2 and §6.2.3 normalized (user info kept)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""  # lower-cased by urlsplit
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is not a number
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    userinfo, at, _hostport = parts.netloc.rpartition("@")
    if at:
        netloc = f"{_normalize_percent(userinfo)}@{netloc}"
    path = _remove_dot_segments(_normalize_percent(parts.path))
    if not path and scheme in _DEFAULT_PORTS:
        path = "/"
    return urlunsplit((scheme, netloc, path, "", ""))


def _invalid(description: str) -> ProofError:
    return ProofError(INVALID_DPOP_PROOF, description)


# --------------------------------------------------------------------------- the checks


def verify_proof(
    values: Sequence[str],
    *,
    method: str,
    url: str,
    algorithms: Collection[str],
    now: float,
    iat_window: float,
    leeway: float,
    used: UsedProofs,
    nonces: Nonces | None = None,
    access_token: str | None = None,
) -> VerifiedProof:
    """Check the ``DPoP`` header values of one request (see the module docstring); raise :class:`ProofError`.

    ``nonces``: the server requires its nonces (None: nonces are off). ``access_token``: the token the
    request presents (API): ``ath`` is then required and checked.
    """
    if not values:
        raise _invalid("The request carries no DPoP proof.")
    if len(values) > 1 or "," in values[0]:
        raise _invalid("More than one DPoP header.")
    value = values[0].strip()
    decoded = decode_unverified(value)
    if decoded is None:
        raise _invalid("The DPoP header is not a well-formed JWT.")
    header, claims = decoded
    if header.get("typ") != PROOF_TYPE:
        raise _invalid(f"The typ header must be {PROOF_TYPE}.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in _KEY_TYPES:
        allowed = " ".join(name for name in algorithms if name in _KEY_TYPES)
        raise _invalid(f"Unsupported DPoP alg {alg!s}: this server accepts {allowed}.")
    public = header.get("jwk")
    if not isinstance(public, dict):
        raise _invalid("The jwk header is missing or not a JSON object.")
    if PRIVATE_MEMBERS & public.keys():
        raise _invalid("The jwk header contains a private key.")
    kty, crv = _KEY_TYPES[alg]
    if public.get("kty") != kty or (crv is not None and public.get("crv") != crv):
        raise _invalid(f"The jwk header is not a key for {alg}.")
    if alg == "EdDSA" and public.get("crv") not in _EDDSA_CURVES:
        raise _invalid("The jwk header is not a key for EdDSA.")
    try:
        key = jwk.import_key(dict(public))
        jws.deserialize_compact(value, key, registry=_ProofRegistry(algorithms=[alg], strict_check_header=False))
    except JoseError as exc:
        reason = str(exc.description or exc.error).rstrip(".")
        raise _invalid(f"DPoP proof signature check failed: {reason}.") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise _invalid(f"DPoP proof signature check failed: {type(exc).__name__}.") from None

    for name in ("jti", "htm", "htu"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise _invalid(f"Missing or invalid claim {name}.")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        raise _invalid("Missing or invalid claim iat.")
    if claims["htm"] != method:
        raise _invalid(f"htm {claims['htm']} does not match the request method {method}.")
    try:
        htu_matches = normalize_uri(claims["htu"]) == normalize_uri(url)
    except ValueError:
        htu_matches = False
    if not htu_matches:
        raise _invalid(f"htu does not match the request URL {normalize_uri(url)}.")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise _invalid("Missing claim ath (the hash of the access token).")
        if not hmac.compare_digest(ath.encode("utf-8"), access_token_hash(access_token).encode("ascii")):
            raise _invalid("ath does not match the access token.")

    nonce = claims.get("nonce")
    nonce_accepted = nonces is not None and nonces.accepts(nonce)
    # With nonces on, the nonce says the proof is recent (RFC 9449 §11.1): an accepted one stands for iat,
    # a missing or stale one gets use_dpop_nonce below (so does a stale iat, as node-oidc-provider answers).
    if nonces is None and not now - iat_window - leeway <= iat <= now + leeway:
        when = "in the future" if iat > now else "too old"
        raise _invalid(f"The DPoP proof iat is {when} (window {int(iat_window)} s, leeway {int(leeway)} s).")
    if not used.consume(claims["jti"]):
        raise _invalid("DPoP proof jti already used.")
    if nonces is not None and not nonce_accepted:
        what = "requires a nonce in the DPoP proof" if nonce is None else "does not accept this nonce"
        raise ProofError(USE_DPOP_NONCE, f"The server {what}.")
    new_nonce = nonces.current if nonces is not None and nonce != nonces.current else None
    return VerifiedProof(header=header, claims=claims, jkt=key.thumbprint(), new_nonce=new_nonce)
