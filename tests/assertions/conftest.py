"""Fixtures of the assertion-source tests: no platform variable from the machine; a server without keystores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devserver.server import LocalAuthorizationServer

#: What the platforms set in a workload's environment (and what the sources read).
PLATFORM_VARIABLES = (
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GCE_METADATA_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
)


@pytest.fixture(autouse=True)
def no_platform_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test sets the platform's variables itself, or runs without them (as on a machine outside any platform)."""
    for name in PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # boto3 must never ask 169.254.169.254 for instance credentials from a test run.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def keyless_auth_server() -> Iterator[LocalAuthorizationServer]:
    """The local authorization server without the keystores ``tests/conftest.py`` makes for it (a JVM each, ~20 s):
    keyless connections sign nothing, and the server trusts the platform by federation rules only."""
    server = LocalAuthorizationServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def auth_server(keyless_auth_server: LocalAuthorizationServer) -> Iterator[LocalAuthorizationServer]:
    """``tests/conftest.py``'s ``auth_server`` (fresh records and knobs, an empty token cache, no trust left
    behind), on :func:`keyless_auth_server`."""
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE

    keyless_auth_server.reset()
    TOKEN_CACHE.invalidate()
    yield keyless_auth_server
    keyless_auth_server.reset()
    keyless_auth_server.federation.clear()
    keyless_auth_server.impersonation.clear()
    TOKEN_CACHE.invalidate()
