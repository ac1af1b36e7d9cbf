"""A platform's JWT is a credential: a whole token request with it, refused or not, never shows it in a log or error.

End to end against the local authorization server, which trusts the platform (or not) by federation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from devserver.platform import LocalPlatform
from devserver.server import LocalAuthorizationServer
from tests.assertions.helpers import claims_of, credentials_of

CLIENT = "client-1"  # the Login of the connections tests.connection.test_settings.parse builds
SERVICE_ACCOUNT_SUB = "system:serviceaccount:default:airflow"

#: A keyless connection to ``auth_server``: (its credentials, how its source is described, its platform JWT now).
KeylessConnection = tuple[JwtBearerCredentials, str, Callable[[], str]]


@pytest.fixture(params=["file", "github_actions"])
def keyless(
    request: pytest.FixtureRequest,
    auth_server: LocalAuthorizationServer,
    platform: LocalPlatform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> KeylessConnection:
    """A connection whose JWT is the platform's, for the server's token URL (the audience it accepts)."""
    audience = auth_server.token_url
    if request.param == "file":
        projection = platform.project_service_account(tmp_path / "tokens" / "token", audience)
        extra = {"assertion_source": "file", "assertion_file": str(projection.path)}
        credentials = credentials_of({"auth_url": audience, **extra})
        return credentials, f"assertion_file {str(projection.path)!r}", lambda: projection.token
    for name, value in platform.github_environment().items():
        monkeypatch.setenv(name, value)
    extra = {"assertion_source": "github_actions", "assertion_audience": audience}
    credentials = credentials_of({"auth_url": audience, **extra})
    # the JWT last fetched: reused by the source, so asking again makes no new one
    return credentials, "the GitHub Actions OIDC token", lambda: credentials.source.assertion(DEFAULT_TOKEN)


def test_an_untrusted_platform_jwt_is_refused_without_showing_it(
    keyless: KeylessConnection,
    auth_server: LocalAuthorizationServer,
    platform: LocalPlatform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    credentials, described, platform_jwt = keyless
    caplog.set_level(logging.DEBUG)

    with pytest.raises(TokenEndpointError) as caught:
        credentials.get_token()

    error = caught.value
    jwt = platform_jwt()
    # The JWT reached the server (so its absence below means something): the server saw the platform's claims.
    assert auth_server.token_requests[-1]["assertion_claims"]["iss"] == platform.issuer
    assert error.error == "invalid_grant"
    assert error.hint == (
        f"The assertion is the JWT of {described}: check that the server trusts its issuer and subject, and that it "
        "was made for the audience the server expects (airflow jwt-bearer check shows its iss, sub and aud)"
    )
    assert str(error).endswith(f". {error.hint}")
    signature = jwt.split(".")[2]
    for text in (str(error), repr(error), error.error_description or "", caplog.text):
        assert jwt not in text
        assert signature not in text
    assert platform.github_request_token not in caplog.text


def test_a_trusted_platform_jwt_gets_a_token_that_outlives_its_rotation(
    auth_server: LocalAuthorizationServer,
    platform: LocalPlatform,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The access token is cached by who the JWT names: a rotated JWT of the same identity reuses it."""
    caplog.set_level(logging.DEBUG)
    auth_server.register_client(CLIENT, federated=True)
    auth_server.trust_issuer(platform.issuer, subject=SERVICE_ACCOUNT_SUB, client_id=CLIENT)
    projection = platform.project_service_account(tmp_path / "tokens" / "token", auth_server.token_url)
    credentials = credentials_of(
        {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(projection.path)}
    )
    first_jwt = projection.token

    token = credentials.get_token()
    assert [r["success"] for r in auth_server.token_requests] == [True]
    assert auth_server.token_requests[-1]["assertion_claims"]["jti"] == claims_of(first_jwt)["jti"]

    second_jwt = projection.rotate()
    assert credentials.get_token() is token  # same identity: the cached token, no request
    assert len(auth_server.token_requests) == 1

    refreshed = credentials.get_token(force_refresh=True)
    assert refreshed.access_token != token.access_token
    assert auth_server.token_requests[-1]["assertion_claims"]["jti"] == claims_of(second_jwt)["jti"]
    for jwt in (first_jwt, second_jwt):
        assert jwt not in caplog.text
        assert jwt.split(".")[2] not in caplog.text
