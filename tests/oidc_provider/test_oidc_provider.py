"""The provider's grants against node-oidc-provider (OpenID Certified), an authorization server nobody here wrote.

Every token goes through the provider's own code (``JwtBearerHook`` or ``JwtBearerCredentials.from_settings`` of
an Airflow ``Connection``); every check is what the server decided: its introspection of the token (RFC 7662:
``active``, ``client_id``, ``sub``, ``act``, ``aud``), or the error it answered. What the provider put on the wire
is read from the requests session's response hook (:class:`Wire`).

* client_credentials with private_key_jwt (RFC 7523 §2.2): the client assertion's aud is the token endpoint, or
  the issuer with ``auth_issuer`` (draft-ietf-oauth-rfc7523bis), with and without ``typ: client-authentication+jwt``;
* the jwt-bearer grant (RFC 7523 §2.1) with the connection's key: ``sub`` defaults to the issuer; refusals;
* keyless (``assertion_source: file``): a platform's JWT as the jwt-bearer assertion, as the client assertion
  (federated client credentials), and as the subject token of a token exchange (RFC 8693) with and without an actor;
* the file rotated as the kubelet rotates projected tokens, and an expired JWT never sent.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from airflow.sdk import Connection
from cryptography.hazmat.primitives.asymmetric import ec

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.exceptions import AssertionSourceError, TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from tests.oidc_provider.conftest import (
    ACTOR_ACCOUNT,
    CLIENT_ID,
    EXCHANGE_AUDIENCE,
    JWT_BEARER,
    JWT_RESOURCE,
    PLATFORM_ISSUER,
    PLATFORM_KID,
    PUBLIC_CLIENT,
    SCOPE,
    SECRET,
    SECRET_CLIENT,
    SERVICE_ACCOUNT,
    TOKEN_EXCHANGE,
    WORKLOAD_CLIENT,
    Keys,
)
from tests.oidc_provider.harness import OidcProviderServer

pytestmark = pytest.mark.slow

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: The audience a token exchange names (not a resource server of the configuration: the token's aud).
API_AUDIENCE = "https://api.internal.example"


# --- helpers -------------------------------------------------------------------------------------------------------


@dataclass
class Wire:
    """The token requests the provider's session sent, as decoded forms, and the statuses that came back."""

    forms: list[dict[str, list[str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @classmethod
    def on(cls, session: requests.Session) -> Wire:
        wire = cls()
        session.hooks["response"].append(wire._record)
        return wire

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        text = body.decode() if isinstance(body, bytes) else body if isinstance(body, str) else ""
        self.forms.append(parse_qs(text, keep_blank_values=True))
        self.statuses.append(response.status_code)

    def last(self, name: str) -> str | None:
        """The last request's ``name`` field (``None`` when absent)."""
        values = self.forms[-1].get(name)
        assert values is None or len(values) == 1, (name, values)
        return values[0] if values else None

    def jwts(self) -> list[str]:
        """Every JWT sent (assertion, client assertion, subject and actor tokens)."""
        names = ("assertion", "client_assertion", "subject_token", "actor_token")
        return [v for form in self.forms for n in names for v in form.get(n, [])]


def claims_of(token: str | None) -> dict[str, Any]:
    assert token is not None
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def connection(extra: dict[str, Any], *, login: str | None = CLIENT_ID, password: str | None = None) -> Connection:
    return Connection(
        conn_id="oidc_provider", conn_type="jwt_bearer", login=login, password=password, extra=json.dumps(extra)
    )


def hook_for(extra: dict[str, Any], **login: str | None) -> tuple[JwtBearerHook, Wire]:
    """A hook on a connection built here, with a token cache of its own, and what its token requests carried."""
    hook = JwtBearerHook.from_connection(connection(extra, **login), token_cache=TokenCache())
    return hook, Wire.on(hook.credentials.session)


def credentials_for(extra: dict[str, Any], **login: str | None) -> tuple[JwtBearerCredentials, Wire]:
    """Credentials as ``JwtBearerCredentials.from_settings(parse_connection(conn))`` builds them."""
    credentials = JwtBearerCredentials.from_settings(parse_connection(connection(extra, **login)), cache=TokenCache())
    return credentials, Wire.on(credentials.session)


def platform_jwt(
    key: ec.EllipticCurvePrivateKey,
    audience: str,
    *,
    issuer: str = PLATFORM_ISSUER,
    subject: str = SERVICE_ACCOUNT,
    lifetime: int = 300,
) -> str:
    """A JWT as a Kubernetes API server projects it (``jti`` since Kubernetes 1.29), signed with the platform key."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": subject.rsplit(":", 1)[-1]}},
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": PLATFORM_KID})


class ProjectedToken:
    """A token file laid out as the kubelet's AtomicWriter writes projected volumes, and rotated the same way.

    ``token`` → ``..data/token``; ``..data`` → ``..<timestamp>``: a rotation writes a new timestamped folder and
    swaps ``..data`` with one rename, so a reader never sees a half-written token.
    """

    def __init__(self, directory: Path, name: str = "token") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.path = directory / name

    def write(self, token: str) -> None:
        version = self.directory / f"..{time.time_ns()}"
        version.mkdir()
        (version / self.name).write_text(token)
        data = self.directory / "..data"
        previous = data.resolve() if data.is_symlink() else None
        staged = self.directory / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, data)
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{self.name}")
        if previous is not None:
            (previous / self.name).unlink()
            previous.rmdir()


def introspected(server: OidcProviderServer, token: AccessToken) -> dict[str, Any]:
    info = server.introspect(token.access_token)
    assert info.get("active") is True, server.explain(f"the server says the token is not active: {info}")
    return info


# --- 1. client_credentials with private_key_jwt ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "aud", "typ"),
    [
        pytest.param({}, "token_endpoint", "JWT", id="aud-token-endpoint"),
        pytest.param({"auth_issuer": "{issuer}"}, "issuer", "JWT", id="aud-issuer"),
        pytest.param(
            {"auth_issuer": "{issuer}", "client_assertion_typ": True},
            "issuer",
            "client-authentication+jwt",
            id="aud-issuer-typ",
        ),
        pytest.param({"auth_issuer": "{issuer}", "client_assertion_audience": "both"}, "both", "JWT", id="aud-both"),
    ],
)
def test_client_credentials_with_private_key_jwt(
    oidc_server: OidcProviderServer, keys: Keys, settings: dict[str, Any], aud: str, typ: str
) -> None:
    extra = {
        "grant": "client_credentials",
        "client_auth": "private_key_jwt",
        "auth_url": oidc_server.token_url,
        "key_file": str(keys.client.path),
        "scope": SCOPE,
        **{k: v.format(issuer=oidc_server.issuer) if isinstance(v, str) else v for k, v in settings.items()},
    }
    hook, wire = hook_for(extra)

    token = hook.get_token()

    info = introspected(oidc_server, token)
    assert info["client_id"] == CLIENT_ID, oidc_server.explain(info)
    assert info["scope"] == SCOPE, oidc_server.explain(info)
    assert "sub" not in info  # a client credentials token names the client only
    assert token.token_type == "Bearer"
    assert token.scope == SCOPE
    # what the server accepted: no grant assertion, a client assertion iss = sub = client id, the expected aud
    assert wire.statuses == [200]
    assert wire.last("assertion") is None
    assert wire.last("client_id") == CLIENT_ID
    assert wire.last("client_assertion_type") == CLIENT_ASSERTION_TYPE
    client_assertion = wire.last("client_assertion")
    assert jwt.get_unverified_header(client_assertion or "")["typ"] == typ
    claims = claims_of(client_assertion)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    expected_aud = {
        "token_endpoint": oidc_server.token_url,
        "issuer": oidc_server.issuer,
        "both": [oidc_server.issuer, oidc_server.token_url],
    }[aud]
    assert claims["aud"] == expected_aud
    assert claims["jti"]
    assert claims["exp"] > time.time()


def test_client_assertion_for_another_issuer_is_refused(oidc_server: OidcProviderServer, keys: Keys) -> None:
    """The server checks the client assertion's aud: auth_issuer naming another server fails client authentication."""
    extra = {
        "grant": "client_credentials",
        "client_auth": "private_key_jwt",
        "auth_url": oidc_server.token_url,
        "auth_issuer": "https://another-authorization-server.example",
        "key_file": str(keys.client.path),
    }
    hook, wire = hook_for(extra)
    mark = oidc_server.log_mark()

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    assert caught.value.status == 401
    assert caught.value.error == "invalid_client", oidc_server.explain(caught.value)
    assert "audience (aud) must equal" in oidc_server.log_since(mark), oidc_server.explain(caught.value)
    assert claims_of(wire.last("client_assertion"))["aud"] == "https://another-authorization-server.example"


# --- 2. the jwt-bearer grant, signed with the connection's key -------------------------------------------------------


def _signing_extra(server: OidcProviderServer, keys: Keys, **more: Any) -> dict[str, Any]:
    """jwt-bearer (the default grant) with the connection's key; the client authenticates with the same key."""
    return {
        "auth_url": server.token_url,
        "auth_issuer": server.issuer,
        "client_auth": "private_key_jwt",
        "key_file": str(keys.client.path),
        **more,
    }


@pytest.mark.parametrize(
    ("subject_setting", "per_call", "expected_sub"),
    [
        pytest.param(None, None, CLIENT_ID, id="no-subject-sub-is-issuer"),
        pytest.param("alice", None, "alice", id="subject-setting"),
        pytest.param("alice", "bob", "bob", id="per-call-subject"),
    ],
)
def test_jwt_bearer_grant_with_the_connections_key(
    oidc_server: OidcProviderServer, keys: Keys, subject_setting: str | None, per_call: str | None, expected_sub: str
) -> None:
    extra = _signing_extra(oidc_server, keys)
    if subject_setting is not None:
        extra["subject"] = subject_setting
    hook, wire = hook_for(extra)

    token = hook.get_token(subject=per_call)

    info = introspected(oidc_server, token)
    assert info["sub"] == expected_sub, oidc_server.explain(info)
    assert info["client_id"] == CLIENT_ID, oidc_server.explain(info)
    assert wire.last("grant_type") == JWT_BEARER
    assertion = claims_of(wire.last("assertion"))
    assert assertion["iss"] == CLIENT_ID  # Login is the issuer; the server trusts it with the connection's key
    assert assertion["sub"] == expected_sub
    assert assertion["aud"] == oidc_server.token_url  # RFC 7523 §3: the token endpoint unless audience says else
    assert claims_of(wire.last("client_assertion"))["aud"] == oidc_server.issuer


@pytest.mark.parametrize(
    ("case", "status", "error", "description", "detail"),
    [
        ("issuer-not-trusted", 400, "invalid_grant", "assertion iss is not a trusted issuer", None),
        ("key-not-trusted", 400, "invalid_grant", "signature verification failed", None),
        ("client-key-not-registered", 401, "invalid_client", "client authentication failed", "signature verification"),
    ],
    ids=["issuer-not-trusted", "key-not-trusted", "client-key-not-registered"],
)
def test_jwt_bearer_refused(
    oidc_server: OidcProviderServer,
    keys: Keys,
    case: str,
    status: int,
    error: str,
    description: str,
    detail: str | None,
) -> None:
    """The server's refusal is a TokenEndpointError naming its error and description, and never a JWT sent."""
    if case == "issuer-not-trusted":  # the right key, but an issuer the server does not trust
        hook, wire = hook_for(_signing_extra(oidc_server, keys, issuer="https://untrusted.example"))
    elif case == "key-not-trusted":  # the trusted issuer, another key; a public client, so the grant decides
        extra = {"auth_url": oidc_server.token_url, "key_file": str(keys.untrusted.path)}
        hook, wire = hook_for({**extra, "auth_params": {"client_id": PUBLIC_CLIENT}})
    else:  # the client assertion is signed with a key the client did not register
        hook, wire = hook_for({**_signing_extra(oidc_server, keys), "key_file": str(keys.untrusted.path)})
    mark = oidc_server.log_mark()

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    exc = caught.value
    message = str(exc)
    assert exc.status == status, oidc_server.explain(message)
    assert exc.error == error, oidc_server.explain(message)
    assert exc.error_description is not None
    assert description in exc.error_description, oidc_server.explain(message)
    assert f"HTTP {status} {error}: {exc.error_description}" in message
    if detail is not None:  # what oidc-provider keeps from the client (its error_detail), logged with debug
        assert detail in oidc_server.log_since(mark), oidc_server.explain(message)
    assert wire.statuses == [status]  # refused once, not retried
    sent = wire.jwts()
    assert sent, "no JWT was sent"
    for token in sent:
        signature = token.rsplit(".", 1)[1]
        for text in (message, repr(exc), exc.error_description, *map(str, exc.args)):
            assert token not in text
            assert signature not in text


def test_public_client_without_client_id_is_refused_by_node_oidc_provider(
    oidc_server: OidcProviderServer, keys: Keys
) -> None:
    """client_auth none sends no client_id; node-oidc-provider identifies a client at its token endpoint.

    RFC 7523 §3.1 makes client authentication optional for the jwt-bearer grant and RFC 6749 §3.2.1 lets an
    unauthenticated client send client_id; node-oidc-provider requires the client to be identified, so the
    provider's ``none`` (which sends no client_id even with Login set) fails there. ``auth_params`` is the way out.
    """
    extra = {"auth_url": oidc_server.token_url, "key_file": str(keys.client.path), "client_auth": "none"}
    hook, wire = hook_for(extra)  # Login: the assertion's issuer, which the server trusts
    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()
    assert caught.value.error == "invalid_request", oidc_server.explain(caught.value)
    assert caught.value.error_description == "no client authentication mechanism provided"
    assert wire.last("client_id") is None
    assert claims_of(wire.last("assertion"))["iss"] == CLIENT_ID

    hook, wire = hook_for({**extra, "auth_params": {"client_id": PUBLIC_CLIENT}})
    token = hook.get_token()
    info = introspected(oidc_server, token)
    assert info["client_id"] == PUBLIC_CLIENT, oidc_server.explain(info)
    assert info["sub"] == CLIENT_ID, oidc_server.explain(info)


# --- 3. keyless: the platform's JWT from a file ----------------------------------------------------------------------


def test_keyless_jwt_bearer_from_file(oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path) -> None:
    token_file = ProjectedToken(tmp_path / "tokens")
    platform_token = platform_jwt(keys.platform, oidc_server.issuer)
    token_file.write(platform_token)
    extra = {
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "assertion_audience": oidc_server.issuer,
        "scope": SCOPE,
    }
    credentials, wire = credentials_for(extra, login=SECRET_CLIENT, password=SECRET)
    assert credentials.signer is None  # no key anywhere on the connection

    token = credentials.get_token()

    info = introspected(oidc_server, token)
    assert info["sub"] == SERVICE_ACCOUNT, oidc_server.explain(info)
    assert info["client_id"] == SECRET_CLIENT, oidc_server.explain(info)
    assert info["scope"] == SCOPE, oidc_server.explain(info)
    assert wire.last("grant_type") == JWT_BEARER
    assert wire.last("assertion") == platform_token  # the file's JWT, as the platform wrote it
    assert wire.last("client_assertion") is None


def test_keyless_client_credentials_platform_jwt_is_the_client_assertion(
    oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path
) -> None:
    """node-oidc-provider (OpenID Connect Core §9) wants iss = sub = client_id in a client assertion, and its jti
    used once: the platform must issue the JWT for the client id, and a JWT is good for one token request."""
    token_file = ProjectedToken(tmp_path / "tokens")
    first = platform_jwt(keys.platform, oidc_server.issuer, issuer=WORKLOAD_CLIENT, subject=WORKLOAD_CLIENT)
    token_file.write(first)
    extra = {
        "grant": "client_credentials",
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
    }
    hook, wire = hook_for(extra, login=WORKLOAD_CLIENT)
    assert hook.signer is None

    token = hook.get_token()

    info = introspected(oidc_server, token)
    assert info["client_id"] == WORKLOAD_CLIENT, oidc_server.explain(info)
    assert wire.last("client_assertion") == first
    assert wire.last("client_assertion_type") == CLIENT_ASSERTION_TYPE
    assert wire.last("client_id") == WORKLOAD_CLIENT
    assert wire.last("assertion") is None

    # The file has not changed: the same JWT again, whose jti the server has seen.
    mark = oidc_server.log_mark()
    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token(force_refresh=True)
    assert caught.value.error == "invalid_client", oidc_server.explain(caught.value)
    assert wire.last("client_assertion") == first
    assert "client assertion tokens must only be used once" in oidc_server.log_since(mark), oidc_server.explain(
        caught.value
    )

    second = platform_jwt(keys.platform, oidc_server.issuer, issuer=WORKLOAD_CLIENT, subject=WORKLOAD_CLIENT)
    token_file.write(second)  # rotated
    renewed = hook.get_token(force_refresh=True)
    assert wire.last("client_assertion") == second
    assert introspected(oidc_server, renewed)["client_id"] == WORKLOAD_CLIENT


def test_keyless_client_credentials_kubernetes_shaped_jwt_is_refused(
    oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path
) -> None:
    """A service-account token names the service account, not the client: node-oidc-provider refuses it as a client
    assertion (sub must be the client_id, RFC 7523 §3 item 2.B), whatever key signed it."""
    token_file = ProjectedToken(tmp_path / "tokens")
    token_file.write(platform_jwt(keys.platform, oidc_server.issuer))
    extra = {
        "grant": "client_credentials",
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
    }
    hook, wire = hook_for(extra, login=WORKLOAD_CLIENT)

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    assert caught.value.status == 400
    assert caught.value.error == "invalid_request", oidc_server.explain(caught.value)
    assert caught.value.error_description == "client_id mismatch"
    assert claims_of(wire.last("client_assertion"))["sub"] == SERVICE_ACCOUNT


@pytest.mark.parametrize("actor", ["none", "sign", "file"])
def test_keyless_token_exchange(oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path, actor: str) -> None:
    token_file = ProjectedToken(tmp_path / "tokens")
    subject_token = platform_jwt(keys.platform, EXCHANGE_AUDIENCE)
    token_file.write(subject_token)
    extra: dict[str, Any] = {
        "grant": "token_exchange",
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "assertion_audience": EXCHANGE_AUDIENCE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "exchange_audience": API_AUDIENCE,
    }
    login: dict[str, str | None] = {"login": SECRET_CLIENT, "password": SECRET}
    expected_act: dict[str, str] | None = None
    actor_token: str | None = None
    if actor == "sign":  # the actor token signed with the connection's key, which also authenticates the client
        extra.update(actor_token_source="sign", key_file=str(keys.client.path), client_auth="private_key_jwt")
        login = {"login": CLIENT_ID}
        expected_act = {"sub": CLIENT_ID, "iss": CLIENT_ID}
    elif actor == "file":  # a second platform token, of another service account
        actor_file = ProjectedToken(tmp_path / "actor")
        actor_token = platform_jwt(keys.platform, EXCHANGE_AUDIENCE, subject=ACTOR_ACCOUNT)
        actor_file.write(actor_token)
        extra.update(
            actor_token_source="file", actor_token_file=str(actor_file.path), actor_token_audience=EXCHANGE_AUDIENCE
        )
        expected_act = {"sub": ACTOR_ACCOUNT, "iss": PLATFORM_ISSUER}
    hook, wire = hook_for(extra, **login)

    token = hook.get_token()

    assert token.issued_token_type == ACCESS_TOKEN_TYPE
    assert token.token_type == "Bearer"
    info = introspected(oidc_server, token)
    assert info["sub"] == SERVICE_ACCOUNT, oidc_server.explain(info)
    assert info["client_id"] == login["login"], oidc_server.explain(info)
    assert info.get("aud") == API_AUDIENCE, oidc_server.explain(info)
    assert info.get("act") == expected_act, oidc_server.explain(info)
    assert wire.last("grant_type") == TOKEN_EXCHANGE
    assert wire.last("subject_token") == subject_token
    assert wire.last("subject_token_type") == JWT_TOKEN_TYPE
    assert wire.last("requested_token_type") == ACCESS_TOKEN_TYPE
    assert wire.last("audience") == API_AUDIENCE
    if actor == "none":
        assert wire.last("actor_token") is None
        assert wire.last("actor_token_type") is None
    else:
        assert wire.last("actor_token_type") == JWT_TOKEN_TYPE
        if actor_token is not None:
            assert wire.last("actor_token") == actor_token
        else:
            minted = claims_of(wire.last("actor_token"))
            assert minted["iss"] == minted["sub"] == CLIENT_ID


def test_keyless_token_exchange_for_a_resource(oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path) -> None:
    """exchange_resource (RFC 8707) names a resource server whose tokens are JWTs: verified with the server's keys."""
    token_file = ProjectedToken(tmp_path / "tokens")
    actor_file = ProjectedToken(tmp_path / "actor")
    token_file.write(platform_jwt(keys.platform, EXCHANGE_AUDIENCE))
    actor_file.write(platform_jwt(keys.platform, EXCHANGE_AUDIENCE, subject=ACTOR_ACCOUNT))
    extra = {
        "grant": "token_exchange",
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "actor_token_source": "file",
        "actor_token_file": str(actor_file.path),
        "exchange_resource": JWT_RESOURCE,
        "scope": SCOPE,
    }
    hook, wire = hook_for(extra, login=SECRET_CLIENT, password=SECRET)

    token = hook.get_token()

    assert wire.last("resource") == JWT_RESOURCE
    assert token.issued_token_type == ACCESS_TOKEN_TYPE
    assert token.scope == SCOPE
    keys_published = requests.get(f"{oidc_server.issuer}/jwks", timeout=10).json()
    signing_key = jwt.PyJWKSet.from_dict(keys_published)[jwt.get_unverified_header(token.access_token)["kid"]]
    claims = jwt.decode(
        token.access_token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        audience=JWT_RESOURCE,
        issuer=oidc_server.issuer,
    )
    assert claims["sub"] == SERVICE_ACCOUNT
    assert claims["client_id"] == SECRET_CLIENT
    assert claims["scope"] == SCOPE
    assert claims["act"] == {"sub": ACTOR_ACCOUNT, "iss": PLATFORM_ISSUER}


def test_token_exchange_subject_token_for_another_audience_is_refused(
    oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path
) -> None:
    """The server checks the subject token's aud: a platform token asked for another audience is refused."""
    token_file = ProjectedToken(tmp_path / "tokens")
    token_file.write(platform_jwt(keys.platform, "https://vault.example"))
    extra = {
        "grant": "token_exchange",
        "auth_url": oidc_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
    }
    hook, _ = hook_for(extra, login=SECRET_CLIENT, password=SECRET)

    with pytest.raises(TokenEndpointError) as caught:
        hook.get_token()

    assert caught.value.error == "invalid_request", oidc_server.explain(caught.value)
    assert "aud" in (caught.value.error_description or ""), oidc_server.explain(caught.value)


# --- 4. rotation of the file -----------------------------------------------------------------------------------------


def _file_extra(server: OidcProviderServer, path: Path) -> dict[str, Any]:
    return {
        "auth_url": server.token_url,
        "assertion_source": "file",
        "assertion_file": str(path),
        "assertion_audience": server.issuer,
    }


class InPlaceFile:
    """A token file rewritten in place (same inode), as a simpler helper than the kubelet might."""

    def __init__(self, directory: Path, name: str = "token") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name

    def write(self, token: str) -> None:
        before = self.path.stat().st_mtime_ns if self.path.exists() else None
        self.path.write_text(token)
        if before is not None and self.path.stat().st_mtime_ns <= before:
            # Real rotations are minutes apart; a file system with coarse timestamps could give both writes of
            # this test the same modification time.
            os.utime(self.path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.mark.parametrize("writer", [ProjectedToken, InPlaceFile], ids=["kubelet-atomic-swap", "rewritten-in-place"])
def test_rotated_file_is_read_when_a_new_token_is_needed(
    oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path, writer: type[ProjectedToken | InPlaceFile]
) -> None:
    token_file = writer(tmp_path / "tokens")
    first = platform_jwt(keys.platform, oidc_server.issuer)
    token_file.write(first)
    hook, wire = hook_for(_file_extra(oidc_server, token_file.path), login=SECRET_CLIENT, password=SECRET)

    token = hook.get_token()
    assert wire.last("assertion") == first
    assert hook.get_token() is token  # cached
    assert len(wire.forms) == 1

    second = platform_jwt(keys.platform, oidc_server.issuer, lifetime=600)  # same identity, new jti and exp
    assert len(second) == len(first)  # a rotation the file's size does not reveal
    token_file.write(second)
    assert hook.get_token() is token  # the same identity: the cached token is still good
    assert len(wire.forms) == 1

    renewed = hook.get_token(force_refresh=True)

    assert len(wire.forms) == 2
    assert wire.last("assertion") == second  # the rotated JWT; the first one's jti would be refused as a replay
    assert renewed.access_token != token.access_token
    info = introspected(oidc_server, renewed)
    assert info["sub"] == SERVICE_ACCOUNT, oidc_server.explain(info)
    assert info["client_id"] == SECRET_CLIENT, oidc_server.explain(info)


@pytest.mark.parametrize("expiring", ["assertion", "actor_token"])
def test_expired_jwt_in_a_file_is_never_sent(
    oidc_server: OidcProviderServer, keys: Keys, tmp_path: Path, expiring: str
) -> None:
    subject_file = ProjectedToken(tmp_path / "tokens")
    if expiring == "assertion":  # the jwt-bearer grant's assertion
        audience, account = oidc_server.issuer, SERVICE_ACCOUNT
        extra = _file_extra(oidc_server, subject_file.path)
        expiring_file = subject_file
    else:  # the actor token of a token exchange
        audience, account = EXCHANGE_AUDIENCE, ACTOR_ACCOUNT
        expiring_file = ProjectedToken(tmp_path / "actor")
        expiring_file.write(platform_jwt(keys.platform, audience, subject=account))
        extra = {
            "grant": "token_exchange",
            "auth_url": oidc_server.token_url,
            "assertion_source": "file",
            "assertion_file": str(subject_file.path),
            "actor_token_source": "file",
            "actor_token_file": str(expiring_file.path),
        }
    subject_file.write(platform_jwt(keys.platform, audience))
    hook, wire = hook_for(extra, login=SECRET_CLIENT, password=SECRET)
    introspected(oidc_server, hook.get_token())
    assert wire.statuses == [200]

    # the platform failed to renew the file
    expiring_file.write(platform_jwt(keys.platform, audience, subject=account, lifetime=-60))
    with pytest.raises(AssertionSourceError) as caught:
        hook.get_token(force_refresh=True)

    assert str(expiring_file.path) in str(caught.value)
    assert "expired" in str(caught.value)
    assert caught.value.field == f"{expiring}_file"
    assert wire.statuses == [200]  # nothing more reached the server

    # A connection first used with an expired file sends nothing either.
    fresh, fresh_wire = hook_for(extra, login=SECRET_CLIENT, password=SECRET)
    with pytest.raises(AssertionSourceError, match="expired"):
        fresh.get_token()
    assert fresh_wire.forms == []
