"""DPoP (RFC 9449) through the provider, judged by node-oidc-provider and by RFC 9449 code written here.

Tokens come from the provider's ``JwtBearerHook``; what binds them is decided by node-oidc-provider (its token
response and RFC 7662 introspection: ``token_type DPoP``, ``cnf.jkt``) and checked against the RFC 7638 thumbprint
this module computes itself (:func:`~tests.oidc_provider.dpop_resource.jwk_thumbprint`, not the provider's). Every
proof the provider sent is verified here with PyJWT from its header's key. API calls go to
:class:`~tests.oidc_provider.dpop_resource.DPoPResource`, a protected resource written here that verifies node's
JWT access tokens and each proof, and asks for its own nonce.

* a generated ES256 key with client_credentials and the jwt-bearer grant, without and with node's nonces
  (``use_dpop_nonce``: one retry, a new proof and a new client assertion: node accepts a client assertion once);
* EdDSA; the connection's RSA signer as the DPoP key (refused by node's default algorithms, accepted once allowed);
* a platform JWT as the client assertion (keyless) meets node's nonce: the retry cannot have a new assertion;
* the protected resource: the nonce retry, a proof per call, and a stolen token refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from airflow.sdk import Connection
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, OKPKey

from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.dpop import NONCES
from tests.oidc_provider.conftest import (
    CLIENT_ID,
    JWT_BEARER,
    PLATFORM_KID,
    SCOPE,
    TOKEN_EXCHANGE,
    WORKLOAD_CLIENT,
    Keys,
    public_jwk,
    server_config,
)
from tests.oidc_provider.dpop_resource import (
    DPoPResource,
    access_token_hash,
    jwk_thumbprint,
    make_proof,
    public_jwk_of,
    unverified_parts,
)
from tests.oidc_provider.harness import HarnessError, OidcProviderServer

pytestmark = pytest.mark.slow

CLIENT_CREDENTIALS = "client_credentials"
#: A JWT as it appears in a text (header and claims are base64url JSON objects).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")


# --- fixtures --------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_nonces() -> Iterator[None]:
    """The provider remembers each server's nonce for the process: every test starts without any."""
    NONCES.clear()
    yield
    NONCES.clear()


@pytest.fixture(scope="module")
def resource() -> Iterator[DPoPResource]:
    server = DPoPResource()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _config(keys: Keys, resource: DPoPResource, **changes: Any) -> dict[str, Any]:
    """The harness configuration of conftest, plus the protected resource as an RFC 8707 resource server (JWTs)."""
    config = server_config(keys)
    config["resourceServers"][resource.url] = {"scope": SCOPE, "accessTokenFormat": "jwt", "accessTokenTTL": 300}
    config.update(changes)
    return config


def _serve(config: dict[str, Any], workdir: Path) -> Iterator[OidcProviderServer]:
    server = OidcProviderServer(config, workdir)
    try:
        server.start()
    except HarnessError as exc:
        pytest.fail(f"the node-oidc-provider test server did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain_server(
    node_modules: Path, keys: Keys, resource: DPoPResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    """DPoP on (the harness default), no nonces, node's default proof algorithms (ES256, EdDSA)."""
    yield from _serve(_config(keys, resource), tmp_path_factory.mktemp("oidc-dpop-plain"))


@pytest.fixture(scope="module")
def nonce_server(
    node_modules: Path, keys: Keys, resource: DPoPResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    """Every DPoP proof must carry a nonce of the server (RFC 9449 §8)."""
    features = {"dPoP": {"enabled": True, "nonceSecret": "random", "requireNonce": True}}
    yield from _serve(_config(keys, resource, features=features), tmp_path_factory.mktemp("oidc-dpop-nonce"))


@pytest.fixture(scope="module")
def bearer_server(
    node_modules: Path, keys: Keys, resource: DPoPResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    """DPoP off: node ignores the DPoP header and issues bearer tokens (a server without RFC 9449)."""
    features = {"dPoP": {"enabled": False}}
    yield from _serve(_config(keys, resource, features=features), tmp_path_factory.mktemp("oidc-dpop-off"))


@pytest.fixture(scope="module")
def rs256_server(
    node_modules: Path, keys: Keys, resource: DPoPResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    """RS256 and PS256 proofs allowed (``enabledJWA.dPoPSigningAlgValues``)."""
    jwa = {"dPoPSigningAlgValues": ["ES256", "EdDSA", "RS256", "PS256"]}
    yield from _serve(_config(keys, resource, enabledJWA=jwa), tmp_path_factory.mktemp("oidc-dpop-rs256"))


# --- helpers ---------------------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One token request the provider's session sent, and the answer."""

    form: dict[str, list[str]]
    proof: str | None
    status: int
    body: dict[str, Any]
    nonce: str | None  # the answer's DPoP-Nonce

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        assert values is None or len(values) == 1, (name, values)
        return values[0] if values else None

    def jti(self, name: str) -> str:
        value = self.field(name)
        assert value is not None, f"no {name} sent"
        return str(unverified_parts(value)[1]["jti"])


@dataclass
class Wire:
    """The token requests on a requests session (a response hook), with their DPoP proofs."""

    exchanges: list[Exchange] = field(default_factory=list)

    @classmethod
    def on(cls, session: requests.Session) -> Wire:
        wire = cls()
        session.hooks["response"].append(wire._record)
        return wire

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request_body = response.request.body
        text = request_body.decode() if isinstance(request_body, bytes) else str(request_body or "")
        proof = response.request.headers.get("DPoP")
        try:
            body = response.json()
        except ValueError:
            body = {}
        self.exchanges.append(
            Exchange(
                form=parse_qs(text, keep_blank_values=True),
                proof=proof if isinstance(proof, str) else None,
                status=response.status_code,
                body=body if isinstance(body, dict) else {},
                nonce=response.headers.get("DPoP-Nonce"),
            )
        )

    @property
    def statuses(self) -> list[int]:
        return [e.status for e in self.exchanges]

    def jwts(self) -> list[str]:
        """Every JWT sent: grant and client assertions, and the DPoP proofs."""
        names = ("assertion", "client_assertion", "subject_token", "actor_token")
        found = [v for e in self.exchanges for n in names for v in e.form.get(n, [])]
        return found + [e.proof for e in self.exchanges if e.proof]


def hook_for(extra: dict[str, Any], *, login: str = CLIENT_ID, host: str | None = None) -> tuple[JwtBearerHook, Wire]:
    conn = Connection(conn_id="oidc_dpop", conn_type="jwt_bearer", login=login, host=host, extra=json.dumps(extra))
    hook = JwtBearerHook.from_connection(conn, token_cache=TokenCache())
    return hook, Wire.on(hook.credentials.session)


def grant_extra(server: OidcProviderServer, keys: Keys, grant: str, **more: Any) -> dict[str, Any]:
    """client_credentials, the jwt-bearer grant (``sub`` defaults to the issuer, trusted with the connection's key) or
    a token exchange of a subject token signed with that key; the client authenticates with private_key_jwt and the
    connection's key every time."""
    extra: dict[str, Any] = {
        "auth_url": server.token_url,
        "auth_issuer": server.issuer,
        "client_auth": "private_key_jwt",
        "key_file": str(keys.client.path),
        "dpop": True,
        **more,
    }
    if grant == CLIENT_CREDENTIALS:
        extra["grant"] = CLIENT_CREDENTIALS
    elif grant == TOKEN_EXCHANGE:  # the subject token signed with the connection's key (iss = sub = Login)
        extra["grant"] = "token_exchange"
    return extra


def verified_proof(proof: str | None, *, htu: str, htm: str = "POST") -> tuple[dict[str, Any], dict[str, Any]]:
    """A proof the provider sent, verified here (PyJWT, the key of its own header): its header and claims."""
    assert proof is not None, "no DPoP header sent"
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt"
    assert set(header) == {"typ", "alg", "jwk"}
    key = jwt.PyJWK(header["jwk"], algorithm=header["alg"])
    claims: dict[str, Any] = jwt.decode(proof, key.key, algorithms=[header["alg"]], options={"verify_iat": False})
    assert claims["htm"] == htm
    assert claims["htu"] == htu
    assert isinstance(claims["iat"], int)
    assert len(claims["jti"]) >= 16
    return header, claims


def introspected(server: OidcProviderServer, token: AccessToken) -> dict[str, Any]:
    info = server.introspect(token.access_token)
    assert info.get("active") is True, server.explain(f"the server says the token is not active: {info}")
    return info


def own_jkt(token: AccessToken) -> str:
    """The thumbprint of the key the token is bound to, computed here from its public JWK."""
    assert token.dpop_key is not None, "the token has no DPoP key"
    return jwk_thumbprint(dict(token.dpop_key.public_jwk))


# --- the thumbprint this module computes -----------------------------------------------------------------------------


def test_own_thumbprint_is_rfc7638() -> None:
    """RFC 7638 §3.1's example, and joserfc's thumbprints of EC and OKP keys: the reference the tests compare with."""
    example = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
        "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0z"
        "gdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFC"
        "ur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    ec_jwk = public_jwk_of(ec.generate_private_key(ec.SECP256R1()))
    assert jwk_thumbprint(ec_jwk) == ECKey.import_key(ec_jwk).thumbprint()
    okp_jwk = public_jwk_of(ed25519.Ed25519PrivateKey.generate())
    assert jwk_thumbprint(okp_jwk) == OKPKey.import_key(okp_jwk).thumbprint()


# --- 1-3. token requests: client_credentials and jwt-bearer, without and with nonces --------------------------------


@pytest.mark.parametrize("nonces", [False, True], ids=["no-nonce", "nonce"])
@pytest.mark.parametrize(
    "grant",
    [CLIENT_CREDENTIALS, JWT_BEARER, TOKEN_EXCHANGE],
    ids=["client_credentials", "jwt-bearer", "token-exchange"],
)
def test_dpop_token_bound_to_the_generated_key(
    request: pytest.FixtureRequest, keys: Keys, grant: str, nonces: bool
) -> None:
    server: OidcProviderServer = request.getfixturevalue("nonce_server" if nonces else "plain_server")
    hook, wire = hook_for(grant_extra(server, keys, grant, scope=SCOPE))
    mark = server.log_mark()

    token = hook.get_token()

    # what node issued and decided
    assert wire.exchanges[-1].body.get("token_type") == "DPoP", server.explain(wire.exchanges[-1].body)
    assert token.token_type == "DPoP"
    jkt = own_jkt(token)
    info = introspected(server, token)
    assert info.get("token_type") == "DPoP", server.explain(info)
    assert info.get("cnf") == {"jkt": jkt}, server.explain(info)
    assert info["client_id"] == CLIENT_ID, server.explain(info)
    if grant == CLIENT_CREDENTIALS:
        assert "sub" not in info
    else:
        assert info["sub"] == CLIENT_ID, server.explain(info)  # sub defaults to the issuer (Login)
        signed = wire.exchanges[-1].field("assertion" if grant == JWT_BEARER else "subject_token")
        assert unverified_parts(signed or "")[1]["sub"] == CLIENT_ID
    # what the provider sent: a proof per request, verified here, with the token's key
    proofs = [verified_proof(e.proof, htu=server.token_url) for e in wire.exchanges]
    assert token.dpop_key is not None
    assert all(header["alg"] == "ES256" and header["jwk"] == token.dpop_key.public_jwk for header, _ in proofs)
    assert all(jwk_thumbprint(header["jwk"]) == jkt for header, _ in proofs)
    assert all("ath" not in claims for _, claims in proofs)  # no access token at the token endpoint (§4.2)
    assert len({claims["jti"] for _, claims in proofs}) == len(proofs)
    assert all(e.field("grant_type") == grant for e in wire.exchanges)

    if not nonces:
        assert wire.statuses == [200]
        assert "nonce" not in proofs[0][1]
    else:  # RFC 9449 §8: 400 use_dpop_nonce with a DPoP-Nonce, then one retry with the nonce
        assert wire.statuses == [400, 200], server.explain(wire.exchanges)
        challenge, retry = wire.exchanges
        assert challenge.body.get("error") == "use_dpop_nonce"
        assert challenge.nonce
        assert "nonce" not in proofs[0][1]
        assert proofs[1][1]["nonce"] == challenge.nonce
        assert "use_dpop_nonce" in server.log_since(mark), server.explain("no use_dpop_nonce in node's log")
        # a new client assertion (node keeps the jti of the first: it authenticated the client before the nonce)
        assert challenge.jti("client_assertion") != retry.jti("client_assertion")
        if grant != CLIENT_CREDENTIALS:
            signed = "assertion" if grant == JWT_BEARER else "subject_token"
            assert challenge.jti(signed) != retry.jti(signed)

    # A renewal: the same key (the binding survives, D2), the nonce known now (no challenge).
    before = len(wire.exchanges)
    renewed = hook.get_token(force_refresh=True)
    assert renewed.access_token != token.access_token
    assert wire.statuses[before:] == [200], server.explain(wire.exchanges[before:])
    assert introspected(server, renewed).get("cnf") == {"jkt": jkt}
    _, claims = verified_proof(wire.exchanges[-1].proof, htu=server.token_url)
    if nonces:
        latest = [e.nonce for e in wire.exchanges[:before] if e.nonce][-1]
        assert claims["nonce"] == latest  # the last nonce node gave (a 200 may rotate it, §8.2)
    else:
        assert "nonce" not in claims


def test_node_refuses_the_first_client_assertion_again(nonce_server: OidcProviderServer, keys: Keys) -> None:
    """Why the nonce retry needs a new client assertion: node recorded the first one's jti when it answered
    use_dpop_nonce; sent again (with a valid proof carrying the nonce, made here) it is refused."""
    hook, wire = hook_for(grant_extra(nonce_server, keys, CLIENT_CREDENTIALS))
    token = hook.get_token()
    assert wire.statuses == [400, 200]
    challenge = wire.exchanges[0]
    assert token.dpop_key is not None
    assert token.dpop_key.private_key is not None
    nonce = [e.nonce for e in wire.exchanges if e.nonce][-1]
    proof = make_proof(token.dpop_key.private_key, "ES256", "POST", nonce_server.token_url, nonce=nonce)
    form = {name: values[0] for name, values in challenge.form.items()}
    mark = nonce_server.log_mark()

    replayed = requests.post(nonce_server.token_url, data=form, headers={"DPoP": proof}, timeout=10)

    assert replayed.status_code == 401, nonce_server.explain(replayed.text)
    assert replayed.json()["error"] == "invalid_client"
    assert "client assertion tokens must only be used once" in nonce_server.log_since(mark)


# --- a platform's JWT as the client assertion, and node's nonce ------------------------------------------------------


def test_keyless_client_assertion_cannot_be_renewed_for_the_nonce_retry(
    nonce_server: OidcProviderServer, keys: Keys, tmp_path: Path
) -> None:
    """With a platform's JWT from a file as the client assertion, the nonce retry sends the same JWT again, which node
    refuses (it recorded the jti when it authenticated the client, before asking for the nonce). The error must say
    that a server accepts a client assertion once; requests fail until the platform rotates the file, and then
    succeed with the nonce known."""
    from tests.oidc_provider.test_oidc_provider import ProjectedToken, platform_jwt

    token_file = ProjectedToken(tmp_path / "tokens")
    token_file.write(platform_jwt(keys.platform, nonce_server.issuer, issuer=WORKLOAD_CLIENT, subject=WORKLOAD_CLIENT))
    extra = {
        "grant": CLIENT_CREDENTIALS,
        "auth_url": nonce_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "dpop": True,
    }
    hook, wire = hook_for(extra, login=WORKLOAD_CLIENT)

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    assert wire.statuses == [400, 401], nonce_server.explain(wire.exchanges)
    first, second = wire.exchanges
    assert first.body.get("error") == "use_dpop_nonce"
    assert first.field("client_assertion") == second.field("client_assertion")  # the file's JWT, twice
    assert caught.value.error == "invalid_client"
    message = str(caught.value)
    assert "once" in message, message  # the federated hint: a server accepts each client assertion once
    assert not JWT_PATTERN.search(message), message

    # Until the platform rotates the file, every attempt sends that spent JWT (one request now: the nonce is known).
    with pytest.raises(TokenEndpointError) as again:
        hook.get_token(force_refresh=True)
    assert again.value.error == "invalid_client"
    assert wire.statuses[2:] == [401]
    assert wire.exchanges[2].field("client_assertion") == first.field("client_assertion")

    # the platform rotates the file; the nonce is known now: one request, no challenge
    token_file.write(platform_jwt(keys.platform, nonce_server.issuer, issuer=WORKLOAD_CLIENT, subject=WORKLOAD_CLIENT))
    token = hook.get_token(force_refresh=True)
    assert wire.statuses[3:] == [200]
    info = introspected(nonce_server, token)
    assert info.get("cnf") == {"jkt": own_jkt(token)}, nonce_server.explain(info)
    assert info["client_id"] == WORKLOAD_CLIENT
    assert jwt.get_unverified_header(wire.exchanges[-1].field("client_assertion") or "")["kid"] == PLATFORM_KID


# --- 4. algorithms: EdDSA; the connection's RSA signer ---------------------------------------------------------------


def test_eddsa_generated_key(plain_server: OidcProviderServer, keys: Keys) -> None:
    hook, wire = hook_for(grant_extra(plain_server, keys, CLIENT_CREDENTIALS, dpop_algorithm="EdDSA"))

    token = hook.get_token()

    header, _ = verified_proof(wire.exchanges[-1].proof, htu=plain_server.token_url)
    assert header["alg"] == "EdDSA"
    assert header["jwk"]["kty"] == "OKP"
    assert header["jwk"]["crv"] == "Ed25519"
    assert set(header["jwk"]) == {"kty", "crv", "x"}  # the public members only
    info = introspected(plain_server, token)
    assert info.get("token_type") == "DPoP", plain_server.explain(info)
    assert info.get("cnf") == {"jkt": jwk_thumbprint(header["jwk"])} == {"jkt": own_jkt(token)}


def test_bearer_answer_of_a_server_without_dpop(bearer_server: OidcProviderServer, keys: Keys) -> None:
    """A server without DPoP ignores the proof and issues a bearer token (RFC 9449 §5): refused unless
    dpop_allow_bearer, then used as a bearer token (node binds nothing)."""
    metadata = requests.get(f"{bearer_server.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert "dpop_signing_alg_values_supported" not in metadata
    hook, wire = hook_for(grant_extra(bearer_server, keys, CLIENT_CREDENTIALS))

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    assert wire.statuses == [200]
    assert wire.exchanges[0].proof is not None
    assert wire.exchanges[0].body.get("token_type") == "Bearer"
    assert caught.value.error == "unsupported_token_type"
    assert "dpop_allow_bearer" in str(caught.value)
    assert not JWT_PATTERN.search(str(caught.value))

    hook, wire = hook_for(grant_extra(bearer_server, keys, CLIENT_CREDENTIALS, dpop_allow_bearer=True))
    token = hook.get_token()
    assert token.token_type == "Bearer"
    assert token.dpop_key is None  # no proofs for a token bound to nothing
    info = introspected(bearer_server, token)
    assert info.get("token_type") == "Bearer", bearer_server.explain(info)
    assert "cnf" not in info


def test_rsa_signer_key_refused_by_default_then_accepted_when_allowed(
    plain_server: OidcProviderServer, rs256_server: OidcProviderServer, keys: Keys
) -> None:
    """node-oidc-provider 9 accepts ES256 and EdDSA proofs by default; an RS256 proof is refused with the misleading
    "invalid DPoP key binding". The provider's error names the server's error and carries no JWT."""
    metadata = requests.get(f"{plain_server.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert "RS256" not in metadata["dpop_signing_alg_values_supported"]
    hook, wire = hook_for(grant_extra(plain_server, keys, CLIENT_CREDENTIALS, dpop_key="signer"))
    mark = plain_server.log_mark()

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    exc = caught.value
    message = str(exc)
    assert wire.statuses == [400]  # not retried
    assert jwt.get_unverified_header(wire.exchanges[0].proof or "")["alg"] == "RS256"
    assert exc.status == 400
    assert exc.error == "invalid_dpop_proof", plain_server.explain(message)
    assert exc.error_description == "invalid DPoP key binding"
    assert "HTTP 400 invalid_dpop_proof: invalid DPoP key binding" in message
    assert "dpop_signing_alg_values_supported" in (exc.hint or "")  # the server's metadata says what it takes
    assert "invalid_dpop_proof" in plain_server.log_since(mark)
    for text in (message, repr(exc), *map(str, exc.args)):
        assert not JWT_PATTERN.search(text), text
        for sent in wire.jwts():
            assert sent.rsplit(".", 1)[1] not in text

    allowed = requests.get(f"{rs256_server.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert "RS256" in allowed["dpop_signing_alg_values_supported"]
    hook, wire = hook_for(grant_extra(rs256_server, keys, CLIENT_CREDENTIALS, dpop_key="signer"))
    token = hook.get_token()
    header, _ = verified_proof(wire.exchanges[-1].proof, htu=rs256_server.token_url)
    assert header["alg"] == "RS256"
    connection_key = public_jwk(keys.client)  # from the key file's certificate: the proof key is the connection's
    assert header["jwk"] == {member: connection_key[member] for member in ("e", "kty", "n")}
    info = introspected(rs256_server, token)
    assert info.get("token_type") == "DPoP", rs256_server.explain(info)
    assert info.get("cnf") == {"jkt": jwk_thumbprint(connection_key)}, rs256_server.explain(info)


# --- 5. a protected resource written here ----------------------------------------------------------------------------


def _resource_hook(server: OidcProviderServer, keys: Keys, resource: DPoPResource) -> tuple[JwtBearerHook, Wire]:
    resource.trust(server.issuer)
    extra = grant_extra(server, keys, CLIENT_CREDENTIALS, scope=SCOPE, auth_params={"resource": resource.url})
    return hook_for(extra, host=resource.url)


def _check_resource_calls(
    resource: DPoPResource, server: OidcProviderServer, wire: Wire, token: AccessToken, nonces: list[str]
) -> None:
    """Three GETs, a new resource nonce, POST: one nonce retry per nonce, a verified proof per request, one token."""
    calls = resource.calls
    expected = [(401, "use_dpop_nonce")] + [(200, None)] * 3 + [(401, "use_dpop_nonce"), (200, None)]
    assert [(c.status, c.reason) for c in calls] == expected, calls
    assert [c.method for c in calls] == ["GET"] * 4 + ["POST"] * 2
    assert all(c.url == f"{resource.url}items" for c in calls)
    assert all(c.proof_verified for c in calls)
    assert len({c.proof_claims["jti"] for c in calls}) == len(calls)  # a new proof per request, retries too
    assert "nonce" not in calls[0].proof_claims  # not the authorization server's nonce (§9)
    assert [c.proof_claims.get("nonce") for c in calls[1:]] == [nonces[0]] * 4 + [nonces[1]]
    assert calls[4].body == calls[5].body == b'{"name": "x"}'  # the body sent again with the retry
    assert all(c.proof_claims["ath"] == access_token_hash(token.access_token) for c in calls)
    claims = calls[-1].token_claims
    assert claims["aud"] == resource.url
    assert claims["cnf"] == {"jkt": own_jkt(token)}
    assert claims["scope"] == SCOPE
    # one token: node's nonce retry, then the token every call used
    assert wire.statuses == [400, 200], server.explain(wire.exchanges)
    assert wire.exchanges[-1].body.get("token_type") == "DPoP"
    assert verified_proof(wire.exchanges[-1].proof, htu=server.token_url)[1]["nonce"] not in nonces


def test_dpop_resource_calls_through_the_hook(
    nonce_server: OidcProviderServer, keys: Keys, resource: DPoPResource
) -> None:
    """Each call carries a new proof the resource verifies; each resource nonce costs one retry; the authorization
    server's nonce and the resource's are kept apart (§9: a nonce is for the server that gave it)."""
    hook, wire = _resource_hook(nonce_server, keys, resource)
    nonces = [resource.nonce]

    answers = [hook.run("items", method="GET").json() for _ in range(3)]
    nonces.append(resource.rotate_nonce())
    answers.append(hook.run("items", method="POST", json={"name": "x"}).json())

    assert answers == [{"sub": CLIENT_ID, "client_id": CLIENT_ID}] * 4  # RFC 9068: sub is the client here
    _check_resource_calls(resource, nonce_server, wire, hook.get_token(), nonces)


async def test_dpop_resource_calls_through_the_async_hook(
    nonce_server: OidcProviderServer, keys: Keys, resource: DPoPResource, set_connection: Callable[..., str]
) -> None:
    """The same with JwtBearerAsyncHook (aiohttp for the calls)."""
    resource.trust(nonce_server.issuer)
    extra = grant_extra(nonce_server, keys, CLIENT_CREDENTIALS, scope=SCOPE, auth_params={"resource": resource.url})
    conn_id = set_connection("oidc_dpop_async", host=resource.url, login=CLIENT_ID, extra=json.dumps(extra))
    nonces = [resource.nonce]
    async with JwtBearerAsyncHook(conn_id, token_cache=TokenCache()) as hook:
        wire = Wire.on((await hook.aget_credentials()).session)

        answers = [(await hook.arun("items")).json() for _ in range(3)]
        nonces.append(resource.rotate_nonce())
        answers.append((await hook.arun("items", method="POST", json={"name": "x"})).json())
        token = await hook.aget_token()

    assert answers == [{"sub": CLIENT_ID, "client_id": CLIENT_ID}] * 4
    _check_resource_calls(resource, nonce_server, wire, token, nonces)


def test_a_stolen_dpop_token_is_refused_by_the_resource(
    plain_server: OidcProviderServer, keys: Keys, resource: DPoPResource
) -> None:
    """The token without a proof, as a bearer token, with a thief's proof, with the owner's proof for another URL, or
    with a proof already used: 401. The same token with a correct proof made here: 200 (the checks are the reason)."""
    hook, _ = _resource_hook(plain_server, keys, resource)
    assert hook.run("items").status_code == 200
    token = hook.get_token()
    assert token.dpop_key is not None
    assert token.dpop_key.private_key is not None
    url = f"{resource.url}items"
    sent_by_provider = resource.calls[-1].proof
    assert sent_by_provider is not None
    owner, thief = token.dpop_key.private_key, ec.generate_private_key(ec.SECP256R1())
    dpop = f"DPoP {token.access_token}"

    def call(authorization: str, proof: str | None) -> requests.Response:
        headers = {"Authorization": authorization} | ({"DPoP": proof} if proof else {})
        return requests.get(url, headers=headers, timeout=10)

    def proof_by(key: Any, target: str = url) -> str:
        return make_proof(key, "ES256", "GET", target, access_token=token.access_token, nonce=resource.nonce)

    attempts = {
        "no proof": call(dpop, None),
        "as bearer": call(f"Bearer {token.access_token}", proof_by(owner)),
        "thief's key": call(dpop, proof_by(thief)),
        "another URL": call(dpop, proof_by(owner, f"{resource.url}admin")),
        "replayed proof": call(dpop, sent_by_provider),
        "correct": call(dpop, proof_by(owner)),
    }

    statuses = {name: response.status_code for name, response in attempts.items()}
    assert statuses == {name: 200 if name == "correct" else 401 for name in attempts}, resource.calls[-6:]
    reasons = [c.reason or "" for c in resource.calls[-6:]]
    assert reasons[0] == "no DPoP proof"
    assert reasons[1].startswith("not DPoP")
    assert reasons[2].startswith("jkt mismatch")
    assert reasons[3] == "htu mismatch"
    assert reasons[4] == "jti replayed"
    assert reasons[5] == ""
