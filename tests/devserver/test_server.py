"""devserver.server: clock, knobs, reset, client registration (see helpers for how requests are made)."""

from __future__ import annotations

import email.utils
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests

from devserver.keystores import Keystore, have_keytool, make_keystore
from devserver.server import LocalAuthorizationServer, load_client_key_material
from tests.devserver.helpers import SigningKey, api, assertion, grant, refused, token_for


def test_clock_offset_shifts_date_and_validation(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.clock_offset = -3600
    response = grant(server, assertion(server, keys["rsa"], iss="client-rsa"))
    refused(response, "invalid_grant", "future")
    server_date = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
    assert abs(server_date - (time.time() - 3600)) < 5
    ok = grant(server, assertion(server, keys["rsa"], iss="client-rsa", now=server_date))
    assert ok.status_code == 200, ok.text


def test_omit_expires_in_answers_like_salesforce(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.omit_expires_in = True
    body = grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json()
    assert "expires_in" not in body
    assert body["instance_url"] == server.url
    server.token_lifetime = 120
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json().get("expires_in") is None
    server.omit_expires_in = False
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).json()["expires_in"] == 120


def test_errors_are_rfc6749_json_with_a_date(server: LocalAuthorizationServer) -> None:
    response = requests.post(server.token_url, data={"grant_type": "password"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["Content-Type"] == "application/json"
    for resp in (response, requests.get(server.url + "/nowhere", timeout=10)):
        date = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
        assert abs(date - time.time()) < 5
        assert resp.raw.headers.getlist("Date") == [resp.headers["Date"]]  # exactly one Date


def test_reset_keeps_clients_and_clears_the_rest(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    server.revoke_all_tokens()
    server.clock_offset = 50
    server.omit_expires_in = True
    server.fail_next("whoami", 500)
    server.reset()
    assert server.token_requests == []
    assert server.api_requests == []
    assert (server.clock_offset, server.omit_expires_in, server.token_lifetime) == (0, False, 3600)
    assert api(server, "/whoami", access_token).status_code == 200  # revocation and failure forgotten
    assert "client-rsa" in server.clients


def test_register_client_needs_some_credential() -> None:
    with pytest.raises(ValueError, match="certificate"):
        LocalAuthorizationServer().register_client("nothing")


# --------------------------------------------------------------------------- keytool store


@pytest.fixture(scope="session")
def p12_store(tmp_path_factory: pytest.TempPathFactory) -> Keystore:
    if not have_keytool():
        pytest.fail("keytool (Java) is required: run scripts/install-system-deps (Debian: default-jre-headless)")
    return make_keystore(tmp_path_factory.mktemp("server-p12"), "client", store_type="pkcs12", alias="Client")


def test_key_from_a_keytool_keystore(server: LocalAuthorizationServer, p12_store: Keystore) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    private_key, _cert, _ = pkcs12.load_key_and_certificates(p12_store.path.read_bytes(), b"changeit")
    server.register_client(
        "from-p12", **load_client_key_material(keystore=str(p12_store.path), keystore_password="changeit")
    )
    now = int(time.time())
    claims = {
        "iss": "from-p12",
        "sub": "from-p12",
        "aud": server.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    token = jwt.encode(claims, private_key, algorithm="RS256")  # type: ignore[arg-type]
    assert grant(server, token).status_code == 200


def test_load_client_key_material(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    store = keys["p256"].store
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(store.certificate_pem)
    key_file = tmp_path / "pub.pem"
    key_file.write_text(store.public_key_pem())
    assert load_client_key_material(certificate=str(store.path)) == {"certificate_pem": store.certificate_pem}
    assert load_client_key_material(certificate=str(cert_file)) == {"certificate_pem": store.certificate_pem}
    assert load_client_key_material(certificate=str(key_file)) == {"public_key_pem": store.public_key_pem()}
