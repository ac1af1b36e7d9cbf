"""The keyless settings as parsed: each setting that does not apply is refused by name, with what to do.

Parse only (``tests.connection.test_settings.parse``), except the per-call parameters, which are
refused by the credentials before any token request.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jwt_provider.connection.kinds import ClientAuthMethod, GrantType
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from devserver.server import LocalAuthorizationServer
from tests.assertions.helpers import AUTH_URL, source_of
from tests.connection.test_settings import parse

FILE_SOURCE = {"auth_url": AUTH_URL, "assertion_source": "file", "assertion_file": "/var/run/secrets/tokens/airflow"}


def error_of(extra: dict[str, Any], **fields: Any) -> JwtBearerConfigError:
    with pytest.raises(JwtBearerConfigError) as caught:
        parse(extra, **fields)
    return caught.value


def test_a_keyless_connection_has_no_signer() -> None:
    settings = parse(FILE_SOURCE)

    assert settings.signer is None
    assert settings.keyless
    assert settings.source.source == "file"
    assert settings.source.describe() == "assertion_source file: the JWT in '/var/run/secrets/tokens/airflow'"
    assert settings.grant_type is GrantType.JWT_BEARER


def test_a_setting_of_another_source_is_refused_by_name() -> None:
    error = error_of({"auth_url": AUTH_URL, "assertion_source": "github_actions", "assertion_file": "/token"})

    assert error.field == "assertion_file"
    assert str(error) == (
        "Connection 'my_conn': assertion_file does not apply to assertion_source 'github_actions' (only 'file' reads "
        "it); remove assertion_file or set assertion_source to 'file'."
    )


def test_a_source_setting_with_the_default_sign_source_is_refused() -> None:
    error = error_of({"auth_url": AUTH_URL, "key_file": "/keys/k.pem", "assertion_audience": "https://aud"})

    assert error.field == "assertion_audience"
    assert "does not apply to assertion_source 'sign' (only 'file' or 'github_actions' or 'aws_sts'" in str(error)


def test_a_setting_of_another_actor_source_is_refused_by_name() -> None:
    extra = {
        **FILE_SOURCE,
        "grant": "token_exchange",
        "actor_token_source": "github_actions",
        "actor_token_file": "/actor",
    }

    error = error_of(extra)

    assert error.field == "actor_token_file"
    assert str(error) == (
        "Connection 'my_conn': actor_token_file does not apply to actor_token_source 'github_actions' (only 'file' "
        "reads it); remove actor_token_file or set actor_token_source to 'file'."
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("exchange_audience", "https://sts.example.com"),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
        ("actor_token_source", "file"),
        ("actor_token_file", "/actor"),
    ],
)
def test_exchange_settings_are_refused_with_the_jwt_bearer_grant(key: str, value: str) -> None:
    error = error_of({**FILE_SOURCE, key: value})

    assert error.field == key
    assert str(error) == (
        f"Connection 'my_conn': {key} applies to grant token_exchange only (this connection's grant is jwt_bearer); "
        "remove it or set grant to token_exchange."
    )


def test_an_actor_token_setting_without_its_source_is_refused() -> None:
    error = error_of({**FILE_SOURCE, "grant": "token_exchange", "actor_token_file": "/actor"})

    assert error.field == "actor_token_file"
    assert str(error) == (
        "Connection 'my_conn': actor_token_file is set but actor_token_source is not; set the source of the actor "
        "token."
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("key_file", "/keys/k.p12"),
        ("keystore_password", "store-pass"),
        ("key_alias", "signing"),
        ("algorithm", "RS256"),
        ("subject", "alice"),
        ("issuer", "client-1"),
        ("audience", "https://aud"),
        ("claims", {"tenant": "t"}),
    ],
)
def test_key_and_claim_settings_are_refused_when_nothing_is_signed(key: str, value: object) -> None:
    error = error_of({**FILE_SOURCE, key: value})

    assert error.field == key
    assert str(error) == (
        f"Connection 'my_conn': {key} does not apply: assertion_source 'file' takes the JWT the platform gives the "
        "workload (its claims are the platform's), and nothing is signed with a key of this connection; remove "
        f"{key}, or set assertion_source to sign."
    )


def test_a_key_is_refused_with_client_credentials_where_the_platform_jwt_is_the_client_assertion() -> None:
    error = error_of({**FILE_SOURCE, "grant": "client_credentials", "key_file": "/keys/k.p12"})

    assert error.field == "key_file"
    assert "does not apply: assertion_source 'file' takes the JWT the platform gives" in str(error)


def test_client_credentials_with_a_platform_jwt_authenticates_with_it() -> None:
    assert parse({**FILE_SOURCE, "grant": "client_credentials"}).client_auth is ClientAuthMethod.PRIVATE_KEY_JWT

    error = error_of({**FILE_SOURCE, "grant": "client_credentials", "client_auth": "client_secret_post"}, password="pw")
    assert error.field == "client_auth"
    assert "sends the platform's JWT as the client assertion (RFC 7523 §2.2)" in str(error)


def test_a_key_is_read_when_an_actor_token_is_signed() -> None:
    settings = parse({**FILE_SOURCE, "grant": "token_exchange", "actor_token_source": "sign", "key_file": "/k.p12"})

    assert settings.signer is not None
    assert settings.source.source == "file"
    assert settings.token_exchange is not None
    assert settings.token_exchange.actor is not None
    assert settings.token_exchange.actor.source == "sign"


def test_a_key_is_read_when_the_client_assertion_is_signed() -> None:
    settings = parse({**FILE_SOURCE, "client_auth": "private_key_jwt", "key_file": "/keys/k.p12"})

    assert settings.signer is not None
    assert settings.client_auth is ClientAuthMethod.PRIVATE_KEY_JWT

    error = error_of({**FILE_SOURCE, "client_auth": "private_key_jwt"})
    assert error.field == "key_file"  # the client assertion needs the key, and none is given


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ({"assertion_source": "file"}, "assertion_file", "is required with source 'file'"),
        ({"assertion_source": "gcp_metadata"}, "assertion_audience", "is required with source 'gcp_metadata'"),
        ({"assertion_source": "aws_sts"}, "assertion_audience", "is required with source 'aws_sts'"),
        ({"assertion_source": "callable"}, "assertion_callable", "is required with source 'callable'"),
        ({"assertion_source": "kubelet"}, "assertion_source", "is 'kubelet'; use one of: sign, file, github_actions"),
        (
            {"assertion_source": "aws_sts", "assertion_audience": "a", "assertion_signing_algorithm": "ES256"},
            "assertion_signing_algorithm",
            "is 'ES256'; use one of: RS256, ES384",
        ),
    ],
)
def test_a_missing_or_wrong_source_setting_is_named(extra: dict[str, str], field: str, problem: str) -> None:
    error = error_of({"auth_url": AUTH_URL, **extra})

    assert error.field == field
    assert str(error).startswith(f"Connection 'my_conn': {field} {problem}")


def test_the_aws_connection_defaults_to_aws_default() -> None:
    settings = parse({"auth_url": AUTH_URL, "assertion_source": "aws_sts", "assertion_audience": "a"})

    assert settings.source.aws_conn_id == "aws_default"  # type: ignore[attr-defined]
    assert settings.source.signing_algorithm == "RS256"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "params",
    [TokenParameters.of(subject="x"), TokenParameters.of(claims={"tenant": "t"})],
    ids=["subject", "claims"],
)
def test_per_call_subject_or_claims_are_refused_before_any_request(
    auth_server: LocalAuthorizationServer, params: TokenParameters
) -> None:
    settings = parse({**FILE_SOURCE, "auth_url": auth_server.token_url})
    credentials = JwtBearerCredentials.from_settings(settings, cache=TokenCache())

    with pytest.raises(JwtBearerConfigError) as caught:
        credentials.get_token(params)

    assert caught.value.field == "subject"
    assert str(caught.value).startswith(
        "Connection 'my_conn': a per-call subject or claims cannot change the JWT of assertion_source file: the JWT "
        "in '/var/run/secrets/tokens/airflow': the platform decides what it claims."
    )
    assert auth_server.token_requests == []


def test_the_source_itself_refuses_per_call_parameters() -> None:
    source = source_of(FILE_SOURCE)

    with pytest.raises(JwtBearerConfigError) as caught:
        source.assertion(TokenParameters.of(subject="someone-else"))

    assert caught.value.field == "subject"
    assert "assertion_source 'file': the platform decides what it claims" in str(caught.value)
