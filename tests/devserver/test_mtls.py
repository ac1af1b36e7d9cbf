"""devserver mutual TLS (RFC 8705): HTTPS with a test CA, client authentication, certificate-bound tokens.

The requests go over real TLS connections (``requests`` with ``cert=`` and ``verify=`` the server's CA),
so the client certificate reaches the server the way it would from the provider.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from devserver.server import LocalAuthorizationServer
from devserver.tls import self_signed_certificate, thumbprint
from tests.devserver.dpop_helpers import ProofKey, challenges
from tests.devserver.helpers import devserver_process, refused

BOUND_SECRET = "bound-secret-value"


class Identity:
    """A client certificate and its key, as files for ``requests``' ``cert=``."""

    def __init__(self, directory: Path, name: str, pems: tuple[str, str]) -> None:
        self.certificate_pem, key_pem = pems
        self.certfile = directory / f"{name}.crt"
        self.keyfile = directory / f"{name}.key"
        self.certfile.write_text(self.certificate_pem)
        self.keyfile.write_text(key_pem)
        self.certificate = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        self.x5t_s256 = thumbprint(self.certificate)

    @property
    def cert(self) -> tuple[str, str]:
        return str(self.certfile), str(self.keyfile)


@pytest.fixture(scope="module")
def mtls_setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalAuthorizationServer, dict[str, Identity]]]:
    """An HTTPS server, the client certificates of the tests and the clients they belong to."""
    directory = tmp_path_factory.mktemp("mtls")
    srv = LocalAuthorizationServer(tls=True)
    ids = {
        "pki": Identity(directory, "pki", srv.issue_client_certificate("mtls-pki", organization="Example")),
        "pki_other_cn": Identity(directory, "pki-other", srv.issue_client_certificate("someone-else")),
        "san": Identity(
            directory,
            "san",
            srv.issue_client_certificate(
                "san-client", key=rsa.generate_private_key(65537, 2048), dns_names=["client.example.org"]
            ),
        ),
        "self": Identity(directory, "self", self_signed_certificate("mtls-self")),
        "self_other": Identity(directory, "self-other", self_signed_certificate("mtls-self-other")),
        "self_pki_cn": Identity(directory, "self-pki-cn", self_signed_certificate("mtls-pki")),
        "unknown": Identity(directory, "unknown", self_signed_certificate("nobody")),
    }
    srv.register_client("mtls-pki", tls_client_auth_subject_dn="CN=mtls-pki,O=Example")
    srv.register_client("mtls-pki-reordered", tls_client_auth_subject_dn="O=Example,CN=mtls-pki")
    srv.register_client("mtls-san", tls_client_auth_san_dns="client.example.org")
    srv.register_client("mtls-self", self_signed_certificate_pem=ids["self"].certificate_pem)
    srv.register_client("mtls-self-other", self_signed_certificate_pem=ids["self_other"].certificate_pem)
    srv.register_client("mtls-self-pki-cn", self_signed_certificate_pem=ids["self_pki_cn"].certificate_pem)
    srv.register_client(
        "mtls-bound",
        tls_client_auth_subject_dn="CN=mtls-pki,O=Example",
        tls_client_certificate_bound_access_tokens=True,
    )
    # RFC 8705 §4: certificate-bound tokens without mutual-TLS client authentication.
    srv.register_client("secret-bound", client_secret=BOUND_SECRET, tls_client_certificate_bound_access_tokens=True)
    srv.register_client("plain", client_secret="plain-secret")
    with srv:
        yield srv, ids


@pytest.fixture(scope="module")
def identities(mtls_setup: tuple[LocalAuthorizationServer, dict[str, Identity]]) -> dict[str, Identity]:
    return mtls_setup[1]


@pytest.fixture
def tls_server(mtls_setup: tuple[LocalAuthorizationServer, dict[str, Identity]]) -> LocalAuthorizationServer:
    """The module's HTTPS server, reset before each test."""
    mtls_setup[0].reset()
    return mtls_setup[0]


def token_request(
    server: LocalAuthorizationServer,
    client_id: str,
    identity: Identity | None,
    *,
    url: str | None = None,
    dpop: str | None = None,
    **form: str,
) -> requests.Response:
    return requests.post(
        url or server.token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, **form},
        cert=identity.cert if identity else None,
        verify=server.ca_file,
        headers={"DPoP": dpop} if dpop else {},
        timeout=10,
    )


def whoami(
    server: LocalAuthorizationServer, token: str, identity: Identity | None, **headers: str
) -> requests.Response:
    return requests.get(
        server.api_url + "/whoami",
        headers={"Authorization": f"Bearer {token}", **headers},
        cert=identity.cert if identity else None,
        verify=server.ca_file,
        timeout=10,
    )


def wait_for_tls_errors(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    """The failed handshakes, once the server's request thread has recorded one (it may lag the client)."""
    deadline = time.monotonic() + 5
    while not server.tls_errors and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(server.tls_errors)


# --------------------------------------------------------------------------- HTTPS


def test_https_with_a_strictly_valid_certificate(tls_server: LocalAuthorizationServer) -> None:
    """Python 3.13's default context (VERIFY_X509_STRICT) accepts the server's certificate for 127.0.0.1."""
    assert tls_server.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=tls_server.ca_file)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with urllib.request.urlopen(tls_server.url + "/healthz", context=context, timeout=10) as answer:
        assert answer.status == 200
    metadata = requests.get(
        tls_server.url + "/.well-known/oauth-authorization-server", verify=tls_server.ca_file, timeout=10
    )
    body = metadata.json()
    assert body["issuer"] == tls_server.url
    assert body["token_endpoint"] == tls_server.token_url
    assert body["mtls_endpoint_aliases"] == {"token_endpoint": tls_server.mtls_token_url}
    assert body["tls_client_certificate_bound_access_tokens"] is True
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(body["token_endpoint_auth_methods_supported"])
    tls_server.mtls_endpoint_aliases = False
    body = requests.get(
        tls_server.url + "/.well-known/oauth-authorization-server", verify=tls_server.ca_file, timeout=10
    ).json()
    assert "mtls_endpoint_aliases" not in body
    # The CA is not trusted by default: a client must be given it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.url + "/healthz", verify=True, timeout=10)


def test_clients_without_a_certificate_still_connect(tls_server: LocalAuthorizationServer) -> None:
    response = token_request(tls_server, "plain", None, client_secret="plain-secret")
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    record = tls_server.token_requests[-1]
    assert (record["client_auth"], record["client_certificate"], record["cnf"]) == ("client_secret_post", None, None)
    assert whoami(tls_server, response.json()["access_token"], None).status_code == 200


def test_write_ca_file(tls_server: LocalAuthorizationServer, tmp_path: Path) -> None:
    path = tls_server.write_ca_file(tmp_path / "ca.pem")
    assert path.read_text() == tls_server.ca_pem == Path(tls_server.ca_file).read_text()
    assert requests.get(tls_server.url + "/healthz", verify=str(path), timeout=10).status_code == 200


# --------------------------------------------------------------------------- client authentication


@pytest.mark.parametrize(
    ("client_id", "identity", "method"),
    [
        ("mtls-pki", "pki", "tls_client_auth"),
        ("mtls-pki-reordered", "pki", "tls_client_auth"),
        ("mtls-san", "san", "tls_client_auth"),
        ("mtls-self", "self", "self_signed_tls_client_auth"),
    ],
)
def test_mutual_tls_client_authentication(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity], client_id: str, identity: str, method: str
) -> None:
    ident = identities[identity]
    response = token_request(tls_server, client_id, ident)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    record = tls_server.token_requests[-1]
    assert (record["client_auth"], record["client_id"], record["cnf"]) == (method, client_id, None)
    assert record["client_certificate"]["x5t#S256"] == ident.x5t_s256
    assert record["client_certificate"]["subject"] == ident.certificate.subject.rfc4514_string()
    # Not bound: the token works from any connection.
    assert whoami(tls_server, response.json()["access_token"], None).status_code == 200


@pytest.mark.parametrize(
    ("client_id", "identity", "extra", "description"),
    [
        ("mtls-pki", None, {}, "no client certificate"),
        ("mtls-pki", "pki_other_cn", {}, "subject does not match"),
        ("mtls-pki", "self_pki_cn", {}, "not issued by this server's ca"),  # right CN, but self-signed
        ("mtls-san", "pki", {}, "subject does not match"),
        ("mtls-self", None, {}, "no client certificate"),
        ("mtls-self", "self_other", {}, "not one the client registered"),
        ("mtls-self", "pki", {}, "not one the client registered"),
        ("mtls-pki", "pki", {"client_secret": "anything"}, "invalid client secret"),  # §2: no secret with mTLS
        ("nobody", "pki", {}, "cannot authenticate"),
    ],
)
def test_wrong_or_missing_certificate_is_invalid_client(
    tls_server: LocalAuthorizationServer,
    identities: dict[str, Identity],
    client_id: str,
    identity: str | None,
    extra: dict[str, str],
    description: str,
) -> None:
    issued_before = len(tls_server.issued_tokens())
    response = token_request(tls_server, client_id, identities[identity] if identity else None, **extra)
    refused(response, "invalid_client", description, 401)
    assert len(tls_server.issued_tokens()) == issued_before
    assert tls_server.token_requests[-1]["token_type"] is None


def test_an_untrusted_certificate_fails_the_handshake(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity]
) -> None:
    """A self-signed certificate nobody registered: Python's ssl cannot leave that to the application."""
    with pytest.raises(requests.exceptions.ConnectionError):
        token_request(tls_server, "mtls-self", identities["unknown"])
    errors = wait_for_tls_errors(tls_server)
    assert any("certificate" in error["error"].lower() for error in errors), errors
    assert tls_server.token_requests == []


def test_a_silent_client_does_not_stall_the_server(tls_server: LocalAuthorizationServer) -> None:
    """The handshake happens in each request's thread: a connection that says nothing blocks nobody."""
    port = int(tls_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        started = time.monotonic()
        assert requests.get(tls_server.url + "/healthz", verify=tls_server.ca_file, timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        assert tls_server.tls_errors == []
    assert wait_for_tls_errors(tls_server)  # it hung up without a handshake (recorded before the next test)


def test_the_mtls_alias_is_the_same_endpoint(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity]
) -> None:
    response = token_request(tls_server, "mtls-pki", identities["pki"], url=tls_server.mtls_token_url)
    assert response.status_code == 200, response.text
    assert [record["path"] for record in tls_server.token_requests] == ["/mtls/oauth2/token"]


# --------------------------------------------------------------------------- certificate-bound tokens


@pytest.mark.parametrize(
    ("client_id", "extra"), [("mtls-bound", {}), ("secret-bound", {"client_secret": BOUND_SECRET})]
)
def test_bound_token_works_only_with_the_same_certificate(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity], client_id: str, extra: dict[str, str]
) -> None:
    pki = identities["pki"]
    response = token_request(tls_server, client_id, pki, url=tls_server.mtls_token_url, **extra)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"  # RFC 8705: still a bearer-scheme token
    info = tls_server.token_info(body["access_token"])
    assert info is not None
    assert (info.x5t_s256, info.jkt, info.cnf) == (pki.x5t_s256, None, {"x5t#S256": pki.x5t_s256})
    assert tls_server.token_requests[-1]["cnf"] == {"x5t#S256": pki.x5t_s256}

    token = body["access_token"]
    assert whoami(tls_server, token, pki).status_code == 200
    for other, what in ((identities["pki_other_cn"], "another"), (identities["self"], "another"), (None, "no")):
        answer = whoami(tls_server, token, other)
        assert answer.status_code == 401, answer.text
        bearer = challenges(answer.headers["WWW-Authenticate"])["Bearer"]
        assert bearer["error"] == "invalid_token"
        assert f"presented {what} certificate" in bearer["error_description"]
    records = tls_server.api_requests
    assert [r["status"] for r in records] == [200, 401, 401, 401]
    assert records[0]["client_certificate"]["x5t#S256"] == pki.x5t_s256
    assert records[-1]["client_certificate"] is None


def test_bound_client_without_a_certificate(tls_server: LocalAuthorizationServer) -> None:
    response = token_request(tls_server, "secret-bound", None, client_secret=BOUND_SECRET)
    refused(response, "invalid_grant", "client certificate not provided")


def test_dpop_with_a_certificate_bound_client_is_refused(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity]
) -> None:
    key = ProofKey(ec.generate_private_key(ec.SECP256R1()), "ES256")
    response = token_request(tls_server, "mtls-bound", identities["pki"], dpop=key.proof("POST", tls_server.token_url))
    refused(response, "invalid_request", "multiple proof-of-possession mechanisms")


def test_dpop_with_mtls_client_authentication(
    tls_server: LocalAuthorizationServer, identities: dict[str, Identity]
) -> None:
    """mTLS client authentication and a DPoP-bound token go together (only two bindings do not)."""
    key = ProofKey(ec.generate_private_key(ec.SECP256R1()), "ES256")
    response = token_request(
        tls_server,
        "mtls-self",
        identities["self"],
        url=tls_server.mtls_token_url,
        dpop=key.proof("POST", tls_server.mtls_token_url),
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token = response.json()["access_token"]
    url = tls_server.api_url + "/whoami"
    answer = requests.get(
        url,
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, access_token=token)},
        verify=tls_server.ca_file,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    # htu names the https URL: the http form of the same address does not match.
    answer = requests.get(
        url,
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", url.replace("https", "http"), access_token=token),
        },
        verify=tls_server.ca_file,
        timeout=10,
    )
    assert challenges(answer.headers["WWW-Authenticate"])["DPoP"]["error"] == "invalid_dpop_proof"


def test_issue_client_certificate(tls_server: LocalAuthorizationServer, identities: dict[str, Identity]) -> None:
    certificate = identities["san"].certificate
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "san-client"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["client.example.org"]
    assert tls_server.authority.issued(certificate)
    assert not tls_server.authority.issued(identities["self"].certificate)
    with pytest.raises(ValueError, match="exactly one"):
        tls_server.register_client("two", tls_client_auth_subject_dn="CN=a", tls_client_auth_san_dns="a.example")


# --------------------------------------------------------------------------- python -m devserver


def test_cli_tls_and_dpop_nonce(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    args = ["--client-id", "cli", "--client-secret", "cli-secret", "--tls", "--ca-file", str(ca_file), "--dpop-nonce"]
    with devserver_process(tmp_path, *args) as devserver:
        assert devserver.url.startswith("https://127.0.0.1:")
        key = ProofKey(ec.generate_private_key(ec.SECP256R1()), "ES256")

        def post(**claims: Any) -> requests.Response:
            return requests.post(
                devserver.token_url,
                data={"grant_type": "client_credentials"},
                auth=("cli", "cli-secret"),
                headers={"DPoP": key.proof("POST", devserver.token_url, **claims)},
                verify=str(ca_file),
                timeout=10,
            )

        first = post()
        refused(first, "use_dpop_nonce", "")
        retry = post(nonce=first.headers["DPoP-Nonce"])
        assert retry.status_code == 200, retry.text
        assert retry.json()["token_type"] == "DPoP"
        # A reset over HTTP keeps the command line's --dpop-nonce.
        requests.post(devserver.url + "/_devserver/reset", verify=str(ca_file), timeout=10)
        refused(post(), "use_dpop_nonce", "")
    assert devserver.process.returncode == 0, devserver.stderr
