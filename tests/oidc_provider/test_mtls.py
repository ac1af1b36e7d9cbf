"""Mutual TLS (RFC 8705) through the provider, judged by node-oidc-provider behind a TLS proxy written here.

:class:`~tests.oidc_provider.tls_proxy.MtlsProxy` terminates TLS (a test CA's server certificate, client
certificates requested and verified) and hands node the client certificate in ``x-client-cert``, as a real
deployment's proxy does. The provider connects with ``client_auth`` ``self_signed_tls_client_auth`` or
``tls_client_auth`` (which imply ``mtls``) and ``verify`` the CA file; node authenticates the client by the
certificate and binds the token to it: its introspection's ``cnf.x5t#S256`` must be the SHA-256 of the certificate's
DER this module computes. The proxy's ``/api/`` is a certificate-bound resource (§3): the provider's API calls must
come over TLS with the same certificate; the token with no certificate or another one is refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jwt
import pytest
import requests
from airflow.sdk import Connection
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.cache import TokenCache
from devserver.tls import CertificateAuthority, self_signed_certificate
from tests.oidc_provider.conftest import Keys, server_config
from tests.oidc_provider.harness import HarnessError, OidcProviderServer
from tests.oidc_provider.tls_proxy import MtlsProxy, x5t_s256

pytestmark = pytest.mark.slow

SELF_SIGNED_CLIENT = "mtls-self-signed-client"
PKI_CLIENT = "mtls-pki-client"
PKI_SUBJECT = "CN=airflow-mtls-pki"


@dataclass(frozen=True)
class Credential:
    """A client's certificate and key, in one PEM file (key, then certificate) as the connection's key_file."""

    path: Path
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Pki:
    authority: CertificateAuthority
    ca_file: Path
    self_signed: Credential  # registered as the self_signed_tls_client_auth client's x5c
    issued: Credential  # issued by the CA for PKI_SUBJECT (tls_client_auth)
    stranger: Credential  # issued by the CA too, registered nowhere


def _credential(directory: Path, name: str, pems: tuple[str, str]) -> Credential:
    certificate_pem, key_pem = pems
    path = directory / f"{name}.pem"
    path.write_text(key_pem + certificate_pem)
    path.chmod(0o600)
    return Credential(path, x509.load_pem_x509_certificate(certificate_pem.encode()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("oidc-mtls-pki")
    authority = CertificateAuthority("oidc-provider mTLS test CA")
    ca_file = directory / "ca.pem"
    ca_file.write_text(authority.pem)
    return Pki(
        authority=authority,
        ca_file=ca_file,
        self_signed=_credential(directory, "self-signed", self_signed_certificate("airflow-mtls-self-signed")),
        issued=_credential(directory, "issued", authority.issue_client_certificate("airflow-mtls-pki")),
        stranger=_credential(directory, "stranger", authority.issue_client_certificate("someone-else")),
    )


@pytest.fixture(scope="module")
def proxy(pki: Pki) -> Iterator[MtlsProxy]:
    trusted = [pki.self_signed.certificate.public_bytes(serialization.Encoding.PEM).decode()]
    server = MtlsProxy(pki.authority, trusted).start()
    try:
        yield server
    finally:
        server.stop()


def _mtls_client(client_id: str, method: str, **metadata: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": method,
        "tls_client_certificate_bound_access_tokens": True,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        **metadata,
    }


@pytest.fixture(scope="module")
def mtls_server(
    node_modules: Path, keys: Keys, pki: Pki, proxy: MtlsProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    public_key = pki.self_signed.certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    jwk["x5c"] = [base64.b64encode(pki.self_signed.der).decode("ascii")]
    config = server_config(keys)
    config["clients"] += [
        _mtls_client(SELF_SIGNED_CLIENT, "self_signed_tls_client_auth", jwks={"keys": [jwk]}),
        _mtls_client(PKI_CLIENT, "tls_client_auth", tls_client_auth_subject_dn=PKI_SUBJECT),
    ]
    config["features"] = {"mTLS": {"enabled": True, "certificateHeader": "x-client-cert"}}
    server = OidcProviderServer(config, tmp_path_factory.mktemp("oidc-mtls"))
    try:
        server.start()
    except HarnessError as exc:
        pytest.fail(f"the node-oidc-provider test server did not start: {exc}")
    proxy.upstream = server.issuer
    try:
        yield server
    finally:
        server.stop()


def _forms(session: requests.Session) -> list[dict[str, list[str]]]:
    forms: list[dict[str, list[str]]] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        forms.append(parse_qs(body.decode() if isinstance(body, bytes) else str(body or "")))

    session.hooks["response"].append(record)
    return forms


@pytest.mark.parametrize(
    ("client_id", "method", "credential"),
    [
        pytest.param(
            SELF_SIGNED_CLIENT, "self_signed_tls_client_auth", "self_signed", id="self_signed_tls_client_auth"
        ),
        pytest.param(PKI_CLIENT, "tls_client_auth", "issued", id="tls_client_auth"),
    ],
)
def test_certificate_bound_token_through_the_hook(
    mtls_server: OidcProviderServer, proxy: MtlsProxy, pki: Pki, client_id: str, method: str, credential: str
) -> None:
    mine: Credential = getattr(pki, credential)
    expected_x5t = x5t_s256(mine.der)  # computed here from the certificate's DER
    extra = {
        "grant": "client_credentials",
        "auth_url": f"{proxy.url}token",
        "client_auth": method,
        "key_file": str(mine.path),
        "verify": str(pki.ca_file),
    }
    conn = Connection(
        conn_id="oidc_mtls", conn_type="jwt_bearer", login=client_id, host=f"{proxy.url}api/", extra=json.dumps(extra)
    )
    hook = JwtBearerHook.from_connection(conn, token_cache=TokenCache())
    forms = _forms(hook.credentials.session)
    start = len(proxy.exchanges)

    token = hook.get_token()

    # node authenticated the client by its certificate and bound the token to it
    assert token.token_type == "Bearer"
    info = mtls_server.introspect(token.access_token)
    assert info.get("active") is True, mtls_server.explain(info)
    assert info["client_id"] == client_id, mtls_server.explain(info)
    assert info.get("cnf") == {"x5t#S256": expected_x5t}, mtls_server.explain(info)
    assert [(e.path, e.client_x5t, e.status) for e in proxy.exchanges[start:]] == [("/token", expected_x5t, 200)]
    assert forms[-1].get("client_id") == [client_id]  # RFC 8705 §2: client_id, and no secret or assertion
    assert not {"client_secret", "client_assertion", "client_assertion_type"} & set(forms[-1])

    # the API: over TLS with the same certificate (§3), the token as a bearer token
    for _ in range(2):
        assert hook.run("whoami").json() == {"client_id": client_id, "x5t#S256": expected_x5t}
    api = [e for e in proxy.exchanges[start:] if e.path.startswith("/api/")]
    assert [(e.client_x5t, e.status) for e in api] == [(expected_x5t, 200)] * 2

    # the token elsewhere: with no certificate, with another certificate: refused; with the owner's: served
    url = f"{proxy.url}api/whoami"
    headers = {"Authorization": f"Bearer {token.access_token}"}
    no_certificate = requests.get(url, headers=headers, verify=str(pki.ca_file), timeout=10)
    stranger = requests.get(url, headers=headers, verify=str(pki.ca_file), cert=str(pki.stranger.path), timeout=10)
    owner = requests.get(url, headers=headers, verify=str(pki.ca_file), cert=str(mine.path), timeout=10)
    assert [r.status_code for r in (no_certificate, stranger, owner)] == [401, 401, 200]
    assert [e.reason for e in proxy.exchanges[-3:]] == ["no client certificate", "certificate mismatch", None]


def test_node_authenticates_by_the_certificate_only(
    mtls_server: OidcProviderServer, proxy: MtlsProxy, pki: Pki
) -> None:
    """The same token request with no certificate, or another client's, or a forged x-client-cert header: refused."""
    url = f"{proxy.url}token"
    form = {"grant_type": "client_credentials", "client_id": SELF_SIGNED_CLIENT}
    registered = pki.self_signed.certificate.public_bytes(serialization.Encoding.PEM).decode()
    forged = {"x-client-cert": quote(registered, safe="")}  # the registered certificate, as a proxy would set it
    attempts = [
        requests.post(url, data=form, verify=str(pki.ca_file), timeout=10),
        requests.post(url, data=form, verify=str(pki.ca_file), cert=str(pki.issued.path), timeout=10),
        requests.post(url, data=form, headers=forged, verify=str(pki.ca_file), timeout=10),
        requests.post(url, data=form, verify=str(pki.ca_file), cert=str(pki.self_signed.path), timeout=10),
    ]
    assert [r.status_code for r in attempts] == [401, 401, 401, 200], [r.text for r in attempts]
    assert all(r.json()["error"] == "invalid_client" for r in attempts[:3])
    # node itself trusts the header: the proxy dropping a client's own is what makes the forgery fail
    direct = requests.post(mtls_server.token_url, data=form, headers=forged, timeout=10)
    assert direct.status_code == 200, direct.text


def test_without_mtls_the_provider_refuses_plain_http(mtls_server: OidcProviderServer, pki: Pki) -> None:
    """The provider sends a certificate over https only: client_auth tls_client_auth with an http auth_url is refused
    before anything is sent."""
    from airflow_jwt_provider.exceptions import JwtBearerConfigError

    extra = {
        "grant": "client_credentials",
        "auth_url": mtls_server.token_url,
        "client_auth": "tls_client_auth",
        "key_file": str(pki.issued.path),
    }
    conn = Connection(conn_id="oidc_mtls_http", conn_type="jwt_bearer", login=PKI_CLIENT, extra=json.dumps(extra))
    with pytest.raises(JwtBearerConfigError, match="needs an https token endpoint"):
        JwtBearerHook.from_connection(conn, token_cache=TokenCache()).get_token()


def test_an_unregistered_certificate_is_refused(mtls_server: OidcProviderServer, proxy: MtlsProxy, pki: Pki) -> None:
    """The connection's certificate is not the one the client registered: node's invalid_client, as the provider's
    TokenEndpointError."""
    extra = {
        "grant": "client_credentials",
        "auth_url": f"{proxy.url}token",
        "client_auth": "self_signed_tls_client_auth",
        "key_file": str(pki.stranger.path),
        "verify": str(pki.ca_file),
    }
    conn = Connection(
        conn_id="oidc_mtls_bad", conn_type="jwt_bearer", login=SELF_SIGNED_CLIENT, extra=json.dumps(extra)
    )
    with pytest.raises(TokenEndpointError) as caught:
        JwtBearerHook.from_connection(conn, token_cache=TokenCache()).get_token()
    assert caught.value.status == 401
    assert caught.value.error == "invalid_client", mtls_server.explain(caught.value)
    assert proxy.exchanges[-1].client_x5t == x5t_s256(pki.stranger.der)


def test_invalid_client_hint_for_a_certificate_client(
    mtls_server: OidcProviderServer, proxy: MtlsProxy, pki: Pki
) -> None:
    extra = {
        "grant": "client_credentials",
        "auth_url": f"{proxy.url}token",
        "client_auth": "tls_client_auth",
        "key_file": str(pki.stranger.path),
        "verify": str(pki.ca_file),
    }
    conn = Connection(conn_id="oidc_mtls_hint", conn_type="jwt_bearer", login=PKI_CLIENT, extra=json.dumps(extra))
    with pytest.raises(TokenEndpointError) as caught:
        JwtBearerHook.from_connection(conn, token_cache=TokenCache()).get_token()
    assert caught.value.error == "invalid_client", mtls_server.explain(caught.value)
    hint = caught.value.hint or ""
    assert "Password" not in hint
    assert "certificate" in hint
