"""Fixtures of the devserver tests: signing keys and one server with the clients they register."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devserver.keystores import make_pem_key
from devserver.server import LocalAuthorizationServer
from tests.devserver.helpers import BOX_SECRET, ENTRA_SECRET, KEY_SPECS, SigningKey


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigningKey]:
    directory = tmp_path_factory.mktemp("server-keys")
    return {name: SigningKey(make_pem_key(directory, name, **spec)) for name, spec in KEY_SPECS.items()}


@pytest.fixture(scope="session")
def server_session(keys: dict[str, SigningKey]) -> Iterator[LocalAuthorizationServer]:
    srv = LocalAuthorizationServer()
    for name, key in keys.items():
        srv.register_client(f"client-{name}", certificate_pem=key.store.certificate_pem)
    srv.register_client("client-pubkey", public_key_pem=keys["rsa"].store.public_key_pem())
    srv.register_client(
        "box",
        certificate_pem=keys["rsa"].store.certificate_pem,
        client_secret=BOX_SECRET,
        required_claims={"box_sub_type": ("enterprise", "user")},
    )
    srv.register_client("entra-app", certificate_pem=keys["p256"].store.certificate_pem, client_secret=ENTRA_SECRET)
    srv.register_client(
        "salesforce", certificate_pem=keys["rsa"].store.certificate_pem, extra_audiences=("https://login.example.com",)
    )
    with srv:
        yield srv


@pytest.fixture
def server(server_session: LocalAuthorizationServer) -> LocalAuthorizationServer:
    """The session's server, reset (records, knobs, injected failures) before each test."""
    server_session.reset()
    return server_session
