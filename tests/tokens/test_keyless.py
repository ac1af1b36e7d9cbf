"""Keyless connections end to end in one process: a platform's JWT, the grants, the caches, the API.

The platform (``devserver.platform``) mints Kubernetes-shaped tokens and rotates their files; the
authorization server (``devserver``) trusts it by OIDC discovery and checks every JWT itself
(signature, ``iss``, ``sub``, ``aud``, ``exp``), so what passes here passes a server's checks, not ours.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk import Connection

from airflow_jwt_provider.cli.diagnosis import Status, diagnose
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.exceptions import AssertionSourceError, JwtBearerConfigError, TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.cache import TokenCache
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from devserver import keystores as ks
from devserver.platform import LocalPlatform
from devserver.server import LocalAuthorizationServer
from tests.conftest import register

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
APP = "airflow-app"
SERVICE_ACCOUNT = "system:serviceaccount:data:airflow"


def credentials(
    extra: dict[str, Any], *, login: str | None = None, password: str | None = None, host: str | None = None
) -> JwtBearerCredentials:
    conn = Connection(
        conn_id="keyless", conn_type="jwt_bearer", login=login, password=password, host=host, extra=json.dumps(extra)
    )
    return JwtBearerCredentials.from_settings(parse_connection(conn), cache=TokenCache())


@pytest.fixture
def token_file(platform: LocalPlatform, auth_server: LocalAuthorizationServer, tmp_path: Path) -> Any:
    """A projected service-account token for the authorization server's audience, as a pod mounts it."""
    projected = platform.project_service_account(
        tmp_path / "token" / "token", auth_server.issuer, namespace="data", service_account="airflow"
    )
    yield projected
    projected.stop()


def grant_records(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r["success"]]


def test_the_projected_token_is_the_jwt_bearer_assertion_and_a_rotation_costs_no_token(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, subject="system:serviceaccount:data:*", client_id=APP)
    creds = credentials(
        {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path)}
    )
    assert creds.signer is None

    token = creds.get_token()
    info = auth_server.token_info(token.access_token)
    assert info is not None
    assert (info.sub, info.client_id) == (SERVICE_ACCOUNT, APP)
    first = grant_records(auth_server)[-1]
    assert first["federated"] is True
    assert first["assertion_claims"]["iss"] == platform.url

    token_file.rotate()  # the kubelet renews the file: same identity, so the cached token still serves
    assert creds.get_token() is token
    assert len(grant_records(auth_server)) == 1

    fresh = creds.get_token(force_refresh=True)  # a new token is fetched with the new file
    assert fresh.access_token != token.access_token
    second = grant_records(auth_server)[-1]
    assert second["assertion_claims"]["jti"] != first["assertion_claims"]["jti"]
    assert second["assertion_claims"]["jti"] == json.loads(_payload(token_file.token))["jti"]


def test_an_expired_file_is_never_sent(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, client_id=APP)
    creds = credentials(
        {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path)}
    )
    expired = token_file.expire_now()
    with pytest.raises(AssertionSourceError, match="expired") as info:
        creds.get_token()
    assert info.value.field == "assertion_file"
    assert str(token_file.path) in str(info.value)
    assert "expired" in str(info.value)
    assert expired not in str(info.value)
    assert auth_server.token_requests == []  # refused before any request


def test_entra_workload_identity_sends_the_webhook_file_as_the_client_assertion(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra's federated credential: client_credentials, client_id, the platform's JWT as client_assertion."""
    projected = platform.project_service_account(
        tmp_path / "azure" / "azure-identity-token",
        "api://AzureADTokenExchange",
        namespace="data",
        service_account="airflow",
    )
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(projected.path))
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(
        platform.url, subject=SERVICE_ACCOUNT, client_id=APP, audiences=("api://AzureADTokenExchange",)
    )
    creds = credentials(
        {"preset": "entra_workload_identity", "auth_url": auth_server.token_url, "scope": "api://data/.default"},
        login=APP,
    )
    token = creds.get_token()
    record = grant_records(auth_server)[-1]
    assert record["grant_type"] == "client_credentials"
    assert record["client_id"] == APP
    assert record["client_assertion_claims"]["sub"] == SERVICE_ACCOUNT
    assert record["client_assertion_verified"]
    assert record["federated"]
    info = auth_server.token_info(token.access_token)
    assert info is not None
    assert info.client_id == APP
    projected.stop()


def test_token_exchange_without_an_actor(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    auth_server.register_client(APP, client_secret="app-secret")
    auth_server.trust_issuer(platform.url, client_id=APP)
    creds = credentials(
        {
            "auth_url": auth_server.token_url,
            "grant": "token_exchange",
            "assertion_source": "file",
            "assertion_file": str(token_file.path),
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "exchange_audience": "https://api.example.com",
        },
        login=APP,
        password="app-secret",
    )
    token = creds.get_token()
    assert token.issued_token_type == ACCESS_TOKEN_TYPE
    info = auth_server.token_info(token.access_token)
    assert info is not None
    assert (info.sub, info.client_id, info.act, info.audiences) == (
        SERVICE_ACCOUNT,
        APP,
        None,
        ("https://api.example.com",),
    )


def test_token_exchange_with_the_connections_key_as_actor(
    platform: LocalPlatform,
    auth_server: LocalAuthorizationServer,
    token_file: Any,
    keystores: dict[str, ks.Keystore],
) -> None:
    """RFC 8693 delegation: the workload (actor, signed with the key) acts for the platform's subject."""
    store = keystores["default"]
    register(auth_server, store, APP)
    auth_server.trust_issuer(platform.url, client_id=APP)
    extra = {
        "auth_url": auth_server.token_url,
        "grant": "token_exchange",
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "actor_token_source": "sign",
        "key_file": str(store.path),
        "keystore_password": store.store_password,
        "client_auth": "private_key_jwt",
    }
    creds = credentials(extra, login=APP)
    token = creds.get_token()
    info = auth_server.token_info(token.access_token)
    assert info is not None
    assert info.sub == SERVICE_ACCOUNT
    assert info.act == {"sub": APP, "iss": APP}
    record = grant_records(auth_server)[-1]
    assert record["actor_verified"] is True
    assert record["client_auth"] == "private_key_jwt"


def test_google_workload_identity_exchange_then_impersonation(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    """The preset's request, against the local server's STS and generateAccessToken shapes."""
    provider = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/airflow/providers/k8s"
    account = "etl@demo.iam.gserviceaccount.com"
    auth_server.trust_issuer(platform.url, exchange_audience=provider)
    auth_server.allow_impersonation(account, "system:serviceaccount:data:*")
    creds = credentials(
        {
            # preset google_workload_identity's settings, with the local server's URLs
            "grant": "token_exchange",
            "client_auth": "none",
            "auth_url": auth_server.token_url,
            "assertion_source": "file",
            "assertion_file": str(token_file.path),
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "exchange_audience": provider,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "service_account_impersonation_url": f"{auth_server.url}/v1/projects/-/serviceAccounts/{account}"
            ":generateAccessToken",
        },
        host=auth_server.api_url,
    )
    token = creds.get_token()
    info = auth_server.token_info(token.access_token)
    assert info is not None
    assert (info.sub, info.grant_type, info.act) == (account, "generateAccessToken", {"sub": SERVICE_ACCOUNT})
    assert token.scope == "https://www.googleapis.com/auth/cloud-platform"
    assert token.expires_at is not None
    exchange = grant_records(auth_server)[-1]
    assert exchange["form_fields"] == sorted(
        ["grant_type", "subject_token", "subject_token_type", "requested_token_type", "audience", "scope"]
    )
    assert exchange["client_id"] is None  # Google's STS: no client authentication


def test_an_exchanged_id_token_is_kept_but_never_sent_to_the_api(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    auth_server.register_client(APP, client_secret="app-secret")
    auth_server.trust_issuer(platform.url, client_id=APP)
    conn = Connection(
        conn_id="keyless_id_token",
        conn_type="jwt_bearer",
        login=APP,
        password="app-secret",
        host=auth_server.api_url,
        extra=json.dumps(
            {
                "auth_url": auth_server.token_url,
                "grant": "token_exchange",
                "assertion_source": "file",
                "assertion_file": str(token_file.path),
                "requested_token_type": ID_TOKEN_TYPE,
            }
        ),
    )
    hook = JwtBearerHook.from_connection(conn)
    token = hook.get_token()
    assert (token.token_type, token.issued_token_type) == ("N_A", ID_TOKEN_TYPE)
    with pytest.raises(JwtBearerConfigError, match="not an access token") as info:
        hook.run("/whoami")
    assert info.value.field == "requested_token_type"
    assert [r for r in auth_server.api_requests] == []


def test_the_shared_cache_of_a_keyless_connection_needs_a_sealing_secret(
    platform: LocalPlatform,
    auth_server: LocalAuthorizationServer,
    token_file: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The platform's JWT rotates and is no secret of the deployment's: the token cache secret seals instead."""
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, client_id=APP)
    extra = {
        "auth_url": auth_server.token_url,
        "assertion_source": "file",
        "assertion_file": str(token_file.path),
        "token_cache": "file",
        "token_cache_dir": str(tmp_path / "cache"),
    }
    with pytest.raises(JwtBearerConfigError, match="token_cache_secret") as info:
        credentials(extra)
    assert info.value.field == "token_cache"

    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_SECRET", "a-random-deployment-secret-0123456789")
    first = credentials(extra)
    token = first.get_token()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir() if p.is_file())
    assert stored
    assert token.access_token.encode() not in stored  # sealed at rest
    second = credentials(extra)  # another process of the machine: served from the shared store
    assert second.get_token().access_token == token.access_token
    assert len(grant_records(auth_server)) == 1

    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_SECRET", "another-secret-0123456789abcdef")
    third = credentials(extra)  # a process without the same secret cannot open the entry: it fetches its own
    assert third.get_token().access_token != token.access_token


def test_check_shows_the_platform_jwt_decoded_and_skips_the_key(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, client_id=APP)
    conn = Connection(
        conn_id="keyless_check",
        conn_type="jwt_bearer",
        extra=json.dumps(
            {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path)}
        ),
    )
    steps = {step.name: step for step in diagnose(conn)}
    assert steps["settings"].status is Status.OK
    assert "no key: the JWT comes from assertion_source file" in steps["settings"].lines[0]
    assert steps["key"].status is Status.SKIP
    assert steps["certificate"].status is Status.SKIP
    assertion = "\n".join(steps["assertion"].lines)
    assert f"from assertion_file '{token_file.path}'" in assertion
    assert SERVICE_ACCOUNT in assertion
    assert token_file.token not in assertion
    assert token_file.token.rsplit(".", 1)[1] not in assertion  # never the signature
    assert steps["token"].status is Status.OK


def test_a_refusal_of_the_platform_jwt_points_at_the_federation_and_never_shows_it(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any, caplog: pytest.LogCaptureFixture
) -> None:
    auth_server.register_client(APP, federated=True)  # but the server does not trust the platform
    creds = credentials(
        {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path)}
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TokenEndpointError) as info:
        creds.get_token()
    message = str(info.value)
    assert "invalid_grant" in message
    assert "check that the server trusts its issuer and subject" in message
    assert token_file.token not in message
    assert token_file.token not in caplog.text


def _payload(compact: str) -> str:
    import base64

    part = compact.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_requests_is_not_sent_the_platform_jwt_to_the_api(
    platform: LocalPlatform, auth_server: LocalAuthorizationServer, token_file: Any
) -> None:
    """The API gets the access token only: the platform's JWT stays between the worker and the token endpoint."""
    auth_server.register_client(APP, federated=True)
    auth_server.trust_issuer(platform.url, client_id=APP)
    conn = Connection(
        conn_id="keyless_api",
        conn_type="jwt_bearer",
        host=auth_server.api_url,
        extra=json.dumps(
            {"auth_url": auth_server.token_url, "assertion_source": "file", "assertion_file": str(token_file.path)}
        ),
    )
    hook = JwtBearerHook.from_connection(conn)
    sent: list[requests.PreparedRequest] = []
    session = hook.get_conn()
    session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    assert hook.run("/whoami").json()["sub"] == SERVICE_ACCOUNT
    headers = " ".join(f"{k}: {v}" for request in sent for k, v in request.headers.items())
    assert token_file.token not in headers
