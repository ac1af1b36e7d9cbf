"""``assertion_source: github_actions``: the job's OIDC token, asked of the platform's GitHub token service."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from devserver.platform import LocalPlatform
from tests.assertions.helpers import AUDIENCE, claims_of, closed_port, source_error, source_of

GITHUB_SUB = "repo:octo-org/octo-repo:ref:refs/heads/main"


@pytest.fixture
def github_job(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> LocalPlatform:
    """The task runs in a GitHub Actions job with ``permissions: id-token: write``."""
    for name, value in platform.github_environment().items():
        monkeypatch.setenv(name, value)
    return platform


def github_source(**extra: str) -> PlatformSource:
    return source_of({"assertion_source": "github_actions", **extra})


def github_fetches(platform: LocalPlatform) -> list[dict[str, object]]:
    return [record for record in platform.records if record["service"] == "github"]


def test_the_token_is_asked_for_the_audience(github_job: LocalPlatform) -> None:
    source = github_source(assertion_audience=AUDIENCE)

    token = source.assertion(DEFAULT_TOKEN)

    claims = claims_of(token)
    assert claims["aud"] == AUDIENCE
    assert claims["iss"] == github_job.issuer
    assert claims["sub"] == GITHUB_SUB
    assert claims["repository"] == "octo-org/octo-repo"
    assert github_fetches(github_job) == [
        {"method": "GET", "path": "/_github/token", "status": 200, "service": "github", "audience": AUDIENCE}
    ]
    assert source.identity() == f'github_actions:["{github_job.issuer}","{GITHUB_SUB}",["{AUDIENCE}"]]'


def test_an_audience_with_reserved_characters_arrives_intact(github_job: LocalPlatform) -> None:
    audience = "api://AzureADTokenExchange?x=1&y=2"

    token = github_source(assertion_audience=audience).assertion(DEFAULT_TOKEN)

    assert claims_of(token)["aud"] == audience


def test_without_an_audience_github_chooses_its_default(github_job: LocalPlatform) -> None:
    token = github_source().assertion(DEFAULT_TOKEN)

    assert claims_of(token)["aud"] == "https://github.com/octo-org"


def test_the_token_is_reused_until_it_nears_expiry(github_job: LocalPlatform) -> None:
    source = github_source(assertion_audience=AUDIENCE)

    first = source.assertion(DEFAULT_TOKEN)
    second = source.assertion(DEFAULT_TOKEN)
    source.identity()

    assert second == first
    assert len(github_fetches(github_job)) == 1
    assert [minted.via for minted in github_job.minted] == ["github"]


def test_a_token_near_its_expiry_is_asked_for_again(github_job: LocalPlatform) -> None:
    github_job.clock_offset = -250  # a five-minute token issued 250 s ago: 50 s left, inside the 60 s margin
    source = github_source(assertion_audience=AUDIENCE)

    first = source.assertion(DEFAULT_TOKEN)
    second = source.assertion(DEFAULT_TOKEN)

    assert second != first
    assert len(github_fetches(github_job)) == 2


@pytest.mark.parametrize("missing", ["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
def test_outside_a_job_with_id_token_permission_the_error_says_what_is_missing(
    github_job: LocalPlatform, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)

    error = source_error(github_source(assertion_audience=AUDIENCE))

    assert error.field == "assertion_source"
    assert str(error) == (
        "assertion_source github_actions: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set "
        "in this process: the task must run inside a GitHub Actions job whose workflow grants "
        "`permissions: id-token: write`"
    )
    assert github_fetches(github_job) == []


def test_a_wrong_request_token_is_refused(github_job: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-request-token-0123456789"
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", wrong)

    error = source_error(github_source(assertion_audience=AUDIENCE))

    assert str(error) == (
        "GitHub's OIDC token service answered HTTP 403: check the workflow's `permissions: id-token: write` and "
        "the audience"
    )
    assert error.field == "assertion_source"  # a refused request token: the audience is not at fault
    assert wrong not in str(error)
    assert [record["status"] for record in github_fetches(github_job)] == [403]
    assert github_job.minted == []


def test_an_unreachable_token_service_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"http://127.0.0.1:{closed_port()}/token?api-version=2.0")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-0123456789")

    error = source_error(github_source(assertion_audience=AUDIENCE))

    assert error.field == "assertion_source"
    assert str(error) == "GitHub's OIDC token service cannot be reached (ConnectionError)"
