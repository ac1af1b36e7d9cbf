"""``assertion_source: gcp_metadata``: the service account's identity token from the (platform's) metadata server."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from devserver.platform import LocalPlatform
from tests.assertions.helpers import AUDIENCE, claims_of, closed_port, source_error, source_of


@pytest.fixture
def on_google_cloud(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> LocalPlatform:
    """``GCE_METADATA_HOST`` names the platform, as Google's client libraries accept."""
    monkeypatch.setenv("GCE_METADATA_HOST", platform.metadata_host)
    return platform


def gcp_source(audience: str = AUDIENCE) -> PlatformSource:
    return source_of({"assertion_source": "gcp_metadata", "assertion_audience": audience})


def gcp_fetches(platform: LocalPlatform) -> list[dict[str, object]]:
    return [record for record in platform.records if record["service"] == "gcp"]


def test_the_identity_token_is_for_the_audience(on_google_cloud: LocalPlatform) -> None:
    source = gcp_source()

    token = source.assertion(DEFAULT_TOKEN)

    claims = claims_of(token)
    assert claims["aud"] == AUDIENCE
    assert claims["iss"] == on_google_cloud.issuer
    assert claims["email"] == on_google_cloud.gcp_service_account  # format=full was asked for
    assert claims["google"]["compute_engine"]["project_id"] == "demo-project"
    assert gcp_fetches(on_google_cloud) == [
        {
            "method": "GET",
            "path": "/computeMetadata/v1/instance/service-accounts/default/identity",
            "status": 200,
            "service": "gcp",
            "audience": AUDIENCE,
        }
    ]
    assert source.describe() == f"the GCP metadata server's identity token for {AUDIENCE!r}"


def test_the_identity_token_is_reused(on_google_cloud: LocalPlatform) -> None:
    source = gcp_source()

    assert source.assertion(DEFAULT_TOKEN) == source.assertion(DEFAULT_TOKEN)
    source.identity()

    assert len(gcp_fetches(on_google_cloud)) == 1


def test_an_unreachable_metadata_host_names_the_host_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("GCE_METADATA_HOST", host)

    error = source_error(gcp_source())

    assert error.field == "assertion_source"
    assert str(error) == (
        f"the GCP metadata server ({host}) cannot be reached (ConnectionError): the task does not run on Google "
        "Cloud (Compute Engine, GKE with Workload Identity, Cloud Run), or GCE_METADATA_HOST is wrong"
    )


def test_a_host_that_is_no_metadata_server_is_named(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"{platform.metadata_host}/not-metadata"  # answers, but 404 for the identity path
    monkeypatch.setenv("GCE_METADATA_HOST", host)

    error = source_error(gcp_source())

    assert error.field == "assertion_source"
    assert str(error).startswith(f"the GCP metadata server ({host}) answered HTTP 404 for an identity token: ")


def test_the_audience_is_required() -> None:
    with pytest.raises(JwtBearerConfigError) as caught:
        source_of({"assertion_source": "gcp_metadata"})

    assert caught.value.field == "assertion_audience"
    assert "is required with source 'gcp_metadata'" in str(caught.value)
