"""Helpers of the assertion-source tests: a keyless connection's credentials and source, a JWT's claims."""

from __future__ import annotations

import socket
from typing import Any

import jwt
import pytest

from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from airflow_jwt_provider.exceptions import AssertionSourceError
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from tests.connection.test_settings import parse

#: The token URL of the connections that are only parsed and built (never asked for a token).
AUTH_URL = "https://login.example.com/oauth2/token"
#: What the authorization server trusts the platform's JWTs for.
AUDIENCE = "https://login.example.com/federated"


def credentials_of(extra: dict[str, Any], **fields: Any) -> JwtBearerCredentials:
    """Credentials of a ``jwt_bearer`` connection (``auth_url`` :data:`AUTH_URL` unless given), own token cache."""
    settings = parse({"auth_url": AUTH_URL, **extra}, **fields)
    return JwtBearerCredentials.from_settings(settings, cache=TokenCache())


def source_of(extra: dict[str, Any], **fields: Any) -> PlatformSource:
    """The assertion source the connection builds (a platform source: these tests are keyless)."""
    credentials = credentials_of(extra, **fields)
    assert credentials.signer is None, "a keyless connection must not load a key"
    source = credentials.source
    assert isinstance(source, PlatformSource)
    return source


def source_error(source: PlatformSource) -> AssertionSourceError:
    """The error ``source.assertion()`` raises (the test fails if it returns a JWT)."""
    with pytest.raises(AssertionSourceError) as caught:
        source.assertion(DEFAULT_TOKEN)
    return caught.value


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed: connecting is refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
