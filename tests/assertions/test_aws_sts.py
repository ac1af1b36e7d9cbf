"""``assertion_source: aws_sts``: ``GetWebIdentityToken`` through the amazon provider's AwsBaseHook and a real boto3.

The Airflow ``aws`` connection points its ``endpoint_url`` at the platform, which speaks STS's query
protocol; the hook reads the connection's keys and region as it would in production.
"""

from __future__ import annotations

import json

import pytest

from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from devserver.platform import STS_ERROR_STATUS, LocalPlatform
from tests.assertions.helpers import AUDIENCE, claims_of, closed_port, header_of, source_error, source_of

AWS_CONN_ID = "aws_platform"
REGION = "eu-west-3"


def define_aws_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, endpoint_url: str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIAIOSFODNN7EXAMPLE",
                "password": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "extra": {"region_name": REGION, "endpoint_url": endpoint_url},
            }
        ),
    )


@pytest.fixture
def sts(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> LocalPlatform:
    """An ``aws`` connection :data:`AWS_CONN_ID` whose STS is the platform."""
    define_aws_connection(monkeypatch, AWS_CONN_ID, platform.url)
    return platform


def sts_source(*, lifetime: int | None = None, **extra: str) -> PlatformSource:
    settings: dict[str, object] = {
        "assertion_source": "aws_sts",
        "assertion_audience": AUDIENCE,
        "assertion_aws_conn_id": AWS_CONN_ID,
        **extra,
    }
    if lifetime is not None:
        settings["lifetime"] = lifetime
    return source_of(settings)


def sts_calls(platform: LocalPlatform) -> list[dict[str, object]]:
    return [record for record in platform.records if record["service"] == "aws"]


@pytest.mark.parametrize(("algorithm", "expected"), [(None, "RS256"), ("RS256", "RS256"), ("ES384", "ES384")])
def test_sts_signs_the_token_with_the_algorithm_asked_for(
    sts: LocalPlatform, algorithm: str | None, expected: str
) -> None:
    source = sts_source(assertion_signing_algorithm=algorithm) if algorithm else sts_source()

    token = source.assertion(DEFAULT_TOKEN)

    header = header_of(token)
    assert header["alg"] == expected
    assert header["kid"] == sts.signing_kid(expected)  # type: ignore[arg-type]
    claims = claims_of(token)
    assert claims["iss"] == sts.issuer
    assert claims["sub"] == sts.aws_role_arn
    assert claims["aud"] == AUDIENCE
    assert claims["https://sts.amazonaws.com/"]["source_region"] == REGION  # the connection's region signed the call
    assert sts_calls(sts) == [{"method": "POST", "path": "/", "status": 200, "service": "aws", "audience": AUDIENCE}]
    assert sts.minted[-1].alg == expected


@pytest.mark.parametrize(("lifetime", "duration"), [(None, 60), (30, 60), (900, 900), (3600, 3600), (7200, 3600)])
def test_the_lifetime_is_the_duration_asked_for_clamped_to_what_sts_accepts(
    sts: LocalPlatform, lifetime: int | None, duration: int
) -> None:
    token = sts_source(lifetime=lifetime).assertion(DEFAULT_TOKEN)

    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == duration


def test_a_token_of_a_minute_is_reused_for_half_of_it(sts: LocalPlatform) -> None:
    """The default lifetime (60 s) asks STS for a minute's token: reused, not asked for again at every call."""
    source = sts_source()

    assert source.assertion(DEFAULT_TOKEN) == source.assertion(DEFAULT_TOKEN)

    assert len(sts_calls(sts)) == 1


def test_a_token_of_fifteen_minutes_is_reused(sts: LocalPlatform) -> None:
    source = sts_source(lifetime=900)

    assert source.assertion(DEFAULT_TOKEN) == source.assertion(DEFAULT_TOKEN)
    source.identity()

    assert len(sts_calls(sts)) == 1


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (
            "OutboundWebIdentityFederationDisabledException",
            "outbound web identity federation is not enabled for the account (IAM → Account settings)",
        ),
        ("AccessDenied", "the identity of the aws connection may not call sts:GetWebIdentityToken"),
        ("SessionDurationEscalationException", "lifetime is longer than the session may grant; lower it"),
        ("InvalidClientTokenId", "see the AWS error code"),
    ],
)
def test_a_refusal_by_sts_gives_the_advice_for_its_code(sts: LocalPlatform, code: str, advice: str) -> None:
    sts.fail_next_sts(code)

    error = source_error(sts_source())

    assert error.field == "assertion_aws_conn_id"
    assert str(error) == f"AWS STS refused GetWebIdentityToken ({code}) for aws connection {AWS_CONN_ID!r}: {advice}"
    assert [call["status"] for call in sts_calls(sts)] == [STS_ERROR_STATUS[code]]  # one call: no retry
    assert sts.minted == []


def test_after_a_refusal_the_next_call_asks_again(sts: LocalPlatform) -> None:
    sts.fail_next_sts("AccessDenied")
    source = sts_source()
    source_error(source)

    token = source.assertion(DEFAULT_TOKEN)

    assert claims_of(token)["aud"] == AUDIENCE
    assert [call["status"] for call in sts_calls(sts)] == [403, 200]


def test_an_unreachable_endpoint_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    define_aws_connection(monkeypatch, AWS_CONN_ID, f"http://127.0.0.1:{closed_port()}")

    error = source_error(sts_source())

    assert error.field == "assertion_aws_conn_id"
    assert str(error) == (
        f"AWS STS cannot be reached for GetWebIdentityToken (EndpointConnectionError) with aws connection "
        f"{AWS_CONN_ID!r}: check its region and endpoint (not the global STS endpoint)"
    )


def test_a_missing_aws_connection_is_not_reported_as_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")

    error = source_error(sts_source(assertion_aws_conn_id="aws_not_defined"))

    assert error.field == "assertion_aws_conn_id"
    assert "credentials" in str(error)
    assert "cannot be reached" not in str(error)
