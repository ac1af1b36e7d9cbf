"""Token client details that need no server: plain-http warning, Basic credentials encoding."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests

from airflow_jwt_provider.connection.kinds import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, GrantType
from airflow_jwt_provider.exceptions import JwtBearerConfigError, TokenEndpointError
from airflow_jwt_provider.http.wire import build_response
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.client_auth import (
    ClientAuthentication,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    SelfSignedTlsClientAuth,
    TlsClientAuth,
)
from airflow_jwt_provider.tokens.endpoint import TokenClient, TokenRequest


def test_plain_http_to_a_remote_host_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    TokenClient("http://login.example.com/token", ClientAuthentication())
    TokenClient("http://127.0.0.1:8080/token", ClientAuthentication())
    TokenClient("https://login.example.com/token", ClientAuthentication())
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "login.example.com" in warnings[0]


def test_basic_credentials_are_form_encoded_first() -> None:
    form: dict[str, str] = {}
    auth = ClientSecretBasic("id:with colon", "sec/ret").apply(form)
    assert form == {}
    assert auth is not None
    assert (auth.username, auth.password) == ("id%3Awith%20colon", "sec%2Fret")


def answer(status: int, body: object, content_type: str = "application/json") -> requests.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return build_response(
        status=status,
        reason="X",
        headers={"Content-Type": content_type},
        url="https://login.example.com/oauth2/token",
        method="POST",
        body=content,
        encoding="utf-8",
    )


CLIENT = TokenClient("https://login.example.com/oauth2/token", ClientAuthentication())


JWT_BEARER = TokenRequest(GrantType.JWT_BEARER)


def parse(response: requests.Response, request: TokenRequest = JWT_BEARER) -> AccessToken:
    return CLIENT._parse(response, sent={}, request=request)


@pytest.mark.parametrize("token_type", ["mac", "DPoP", "N_A", 42])
def test_a_token_type_other_than_bearer_is_refused_by_name(token_type: object) -> None:
    with pytest.raises(TokenEndpointError, match=f"issued a token of type '{token_type}'") as info:
        parse(answer(200, {"access_token": "t" * 20, "token_type": token_type, "expires_in": 60}))
    assert "RFC 6749 §7.1" in str(info.value)
    assert info.value.error == "unsupported_token_type"


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", None])
def test_bearer_in_any_case_or_omitted_is_accepted(token_type: str | None) -> None:
    body = {"access_token": "t" * 20, "expires_in": 60, **({"token_type": token_type} if token_type else {})}
    token = parse(answer(200, body))
    assert token.token_type == "Bearer"
    assert token.authorization_header == "Bearer " + "t" * 20


@pytest.mark.parametrize("expires_in", [1e400, "Infinity", "NaN", -5, 0, 10**12, "soon", [60], True])
def test_an_expires_in_out_of_range_is_set_aside_for_the_default_lifetime(
    expires_in: object, caplog: pytest.LogCaptureFixture
) -> None:
    client = TokenClient(
        "https://login.example.com/oauth2/token", ClientAuthentication(), default_token_lifetime=timedelta(seconds=42)
    )
    token = client._parse(
        answer(200, {"access_token": "t" * 20, "token_type": "bearer", "expires_in": expires_in}), {}, JWT_BEARER
    )
    assert token.expires_at is None
    assert token.lifetime == timedelta(seconds=42)
    assert token.valid
    assert "ignoring expires_in" in caplog.text


def test_a_plausible_expires_in_is_kept_and_a_scope_list_joined() -> None:
    token = parse(
        answer(200, {"access_token": "t" * 20, "token_type": "bearer", "expires_in": "3599", "scope": ["a", "b"]})
    )
    assert round(token.lifetime.total_seconds()) == 3599
    assert token.scope == "a b"


@pytest.mark.parametrize("status", [401, 404])
def test_a_plain_text_refusal_points_at_auth_url_first(status: int) -> None:
    with pytest.raises(TokenEndpointError) as info:
        parse(answer(status, b"Not Found", "text/plain"))
    message = str(info.value)
    assert f"answered HTTP {status} with text/plain, not a JSON token response: auth_url is probably wrong" in message
    assert message.index("auth_url is probably wrong") < message.index("proxy or load balancer")


def test_a_server_echo_of_the_secret_and_the_assertion_is_blanked() -> None:
    assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"
    body = {"error": "invalid_client", "error_description": f"bad secret s3cr3t-value and {assertion}\nforged: line"}
    with pytest.raises(TokenEndpointError) as info:
        CLIENT._parse(
            answer(401, body), sent={"client_secret": "s3cr3t-value", "assertion": assertion}, request=JWT_BEARER
        )
    text = f"{info.value} {info.value.error_description}"
    assert "s3cr3t-value" not in text
    assert assertion not in text
    assert "\n" not in text
    assert "bad secret *** and ***" in text


@pytest.mark.parametrize(
    ("auth", "names", "not_named"),
    [
        (ClientSecretPost("app", "s"), ["client secret (Password)"], ["certificate"]),
        (ClientSecretBasic("app", "s"), ["client secret (Password)"], ["certificate"]),
        (PrivateKeyJwt("app"), ["private_key_jwt", "key_file"], ["Password"]),
        (TlsClientAuth("app"), ["tls_client_auth", "certificate in key_file", "subject or SANs"], ["Password"]),
        (SelfSignedTlsClientAuth("app"), ["self_signed_tls_client_auth", "certificate itself"], ["Password"]),
        (ClientAuthentication(), ["client_auth 'none'"], ["Password", "certificate"]),
    ],
)
def test_invalid_client_hint_follows_how_the_client_authenticated(
    auth: ClientAuthentication, names: list[str], not_named: list[str]
) -> None:
    client = TokenClient("https://login.example.com/token", auth)
    with pytest.raises(TokenEndpointError) as info:
        client._parse(answer(401, {"error": "invalid_client"}), sent={}, request=JWT_BEARER)
    hint = info.value.hint or ""
    assert str(info.value).endswith(hint)
    for name in names:
        assert name in hint
    for name in not_named:
        assert name not in hint


def exchange(requested: str | None = ACCESS_TOKEN_TYPE) -> TokenRequest:
    return TokenRequest(GrantType.TOKEN_EXCHANGE, requested_token_type=requested, exchange=True)


def test_a_token_exchange_answer_without_issued_token_type_is_refused() -> None:
    """RFC 8693 §2.2.1: issued_token_type is REQUIRED in an exchange's answer."""
    body = {"access_token": "t" * 20, "token_type": "Bearer", "expires_in": 60}
    with pytest.raises(TokenEndpointError, match="without issued_token_type, which RFC 8693"):
        parse(answer(200, body), exchange())
    assert parse(answer(200, body)).issued_token_type is None  # not an exchange: not required


def test_a_token_exchange_answer_of_another_type_than_requested_is_refused() -> None:
    body = {"access_token": "t" * 20, "token_type": "N_A", "issued_token_type": ID_TOKEN_TYPE}
    with pytest.raises(TokenEndpointError, match="not the requested_token_type") as info:
        parse(answer(200, body), exchange())
    assert info.value.error == "unexpected_token_type"


def test_an_exchanged_token_that_is_not_an_access_token_is_kept_but_never_sent_to_an_api() -> None:
    """RFC 8693 §2.2.1: token_type N_A marks a token that is not an access token (e.g. an ID token)."""
    body = {"access_token": "t" * 20, "token_type": "N_A", "issued_token_type": ID_TOKEN_TYPE, "expires_in": 60}
    token = parse(answer(200, body), exchange(ID_TOKEN_TYPE))
    assert (token.token_type, token.issued_token_type, token.usable_for_api) == ("N_A", ID_TOKEN_TYPE, False)
    with pytest.raises(JwtBearerConfigError, match="not an access token") as info:
        token.authorization_header  # noqa: B018
    assert info.value.field == "requested_token_type"
    assert "t" * 20 not in str(info.value)


def test_an_exchanged_access_token_is_a_bearer_token() -> None:
    body = {"access_token": "t" * 20, "token_type": "Bearer", "issued_token_type": ACCESS_TOKEN_TYPE, "expires_in": 60}
    token = parse(answer(200, body), exchange())
    assert token.issued_token_type == ACCESS_TOKEN_TYPE
    assert token.authorization_header == "Bearer " + "t" * 20
