"""Trust in JWTs another issuer signed: a workload platform's (Kubernetes, GitHub Actions, a cloud).

How authorization servers do it (Entra federated credentials, Google workload identity pools, Okta,
Keycloak): an administrator names the issuer; the server finds its keys by OIDC discovery
(``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), fetching them again when a JWT names a
``kid`` it has not seen (the platform rotated its key); and a *federation rule* says which of the
issuer's subjects may act as which client, for which audience. None of this is the provider's code:
the checks below are joserfc's (signature, ``iss``, ``aud``, ``exp``, ``nbf``) plus the rule.

A platform's JWT is presented again and again until it expires (every token request of a pod sends
its projected token), so its ``jti`` is not single-use here, as at Entra and Google.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from devserver.grants import _REGISTRY, ErrorFactory, _peek

#: A JWKS is fetched again for an unknown ``kid`` at most this often (a flood of bad kids costs one fetch).
REFETCH_INTERVAL = 1.0


@dataclass(frozen=True)
class FederationRule:
    """JWTs of ``issuer`` whose ``sub`` matches ``subject`` (a glob) and whose ``aud`` holds one of ``audiences``.

    :param client_id: the client such a JWT acts as (a client assertion names it in ``client_id``; the
        jwt-bearer grant and token exchange find it here); ``None``: no client (Google's STS, where
        ``exchange_audience`` names the pool provider instead).
    :param audiences: accepted ``aud`` values; empty: the server's own (its issuer or token URL).
    :param exchange_audience: token exchange only: the ``audience`` parameter that selects this rule.
    :param max_lifetime: the longest ``exp - iat`` accepted (Google: 48 hours; Kubernetes tokens live 1 hour).
    """

    issuer: str
    subject: str = "*"
    client_id: str | None = None
    audiences: tuple[str, ...] = ()
    exchange_audience: str | None = None
    max_lifetime: int = 48 * 3600

    def matches(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.issuer and fnmatch.fnmatchcase(str(claims.get("sub", "")), self.subject)


@dataclass
class _IssuerKeys:
    keys: jwk.KeySet | None = None
    fetched_at: float = 0.0
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TrustedIssuers:
    """The issuers this server trusts, their keys (by discovery) and the federation rules."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.rules: list[FederationRule] = []
        self._keys: dict[str, _IssuerKeys] = {}
        self._lock = threading.Lock()

    def add(self, rule: FederationRule) -> FederationRule:
        with self._lock:
            self.rules.append(rule)
            self._keys.setdefault(rule.issuer, _IssuerKeys())
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self._keys.clear()

    def trusts(self, issuer: object) -> bool:
        return isinstance(issuer, str) and issuer in self._keys

    def jwks_fetches(self, issuer: str) -> int:
        keys = self._keys.get(issuer)
        return keys.fetches if keys else 0

    def verify(
        self,
        token: str,
        *,
        audiences: Iterable[str],
        now: float,
        leeway: int,
        error: ErrorFactory,
        client_id: str | None = None,
        exchange_audience: str | None = None,
        require_rule: bool = True,
        target_error: ErrorFactory | None = None,
    ) -> tuple[dict[str, Any], FederationRule | None]:
        """The verified claims of ``token`` and the rule that admits them (signature, iss, aud, exp, sub, rule).

        ``target_error`` makes the error when rules admit the JWT but none for ``exchange_audience`` (RFC 8693
        ``invalid_target``).
        """
        header, claims = _peek(token, error)
        issuer = claims.get("iss")
        if not self.trusts(issuer):
            raise error(f"The issuer {issuer!r} is not trusted by this server.")
        assert isinstance(issuer, str)
        keys = self._key_set(issuer, header.get("kid"), error)
        try:
            verified = dict(jwt.decode(token, keys, registry=_REGISTRY).claims)
        except JoseError as exc:
            raise error(f"Signature check failed for a JWT of {issuer}: {exc.description or exc.error}") from None
        except ValueError as exc:
            raise error(f"Invalid JWT: {exc}") from None
        if not isinstance(verified.get("sub"), str) or not verified["sub"]:
            raise error("Missing claim: 'sub'")
        admitted = [
            r for r in self.rules if r.matches(verified) and (client_id is None or r.client_id in (None, client_id))
        ]
        if not admitted and require_rule:
            who = f" for client {client_id!r}" if client_id else ""
            raise error(f"No federated credential of this server admits sub {verified['sub']!r} of {issuer}{who}.")
        candidates = [
            r for r in admitted if exchange_audience is None or r.exchange_audience in (None, exchange_audience)
        ]
        if admitted and not candidates:
            raise (target_error or error)(f"No workload identity provider of this server is {exchange_audience}.")
        accepted = set(audiences)
        for rule in candidates:
            accepted.update(rule.audiences)
            if rule.exchange_audience and rule.exchange_audience.startswith("//"):
                # Google's default allowed audience: the provider's resource name as an https URL
                accepted.add("https:" + rule.exchange_audience)
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(now),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "values": sorted(accepted)},
            exp={"essential": True},
        )
        try:
            registry.validate(verified)
        except JoseError as exc:
            raise error(exc.description or exc.error) from None
        if not candidates:
            return verified, None
        rule = candidates[0]
        iat = verified.get("iat")
        if isinstance(iat, (int, float)) and verified["exp"] - iat > rule.max_lifetime:
            raise error(f"The JWT lives longer than {rule.max_lifetime} s (exp - iat).")
        return verified, rule

    def _key_set(self, issuer: str, kid: object, error: ErrorFactory) -> jwk.KeySet:
        state = self._keys[issuer]
        with state.lock:
            known = state.keys is not None and (
                kid is None or any(key.kid == kid for key in state.keys.keys)  # type: ignore[union-attr]
            )
            if not known and (state.fetches == 0 or time.monotonic() - state.fetched_at >= REFETCH_INTERVAL):
                state.fetched_at = time.monotonic()  # a failed fetch waits its interval too
                state.fetches += 1
                state.keys = self._fetch(issuer, error)
            if state.keys is None:
                raise error(f"The keys of {issuer} are not known.")
            return state.keys

    def _fetch(self, issuer: str, error: ErrorFactory) -> jwk.KeySet:
        try:
            discovery = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=self.timeout)
            discovery.raise_for_status()
            jwks_uri = discovery.json()["jwks_uri"]
            answer = requests.get(jwks_uri, timeout=self.timeout)
            answer.raise_for_status()
            return jwk.KeySet.import_key_set(answer.json())
        except (requests.RequestException, ValueError, KeyError, TypeError, JoseError) as exc:
            raise error(f"The keys of {issuer} cannot be fetched by discovery ({type(exc).__name__}).") from None
