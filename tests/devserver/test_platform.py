"""devserver.platform: the fake workload platform, checked over real HTTP and real files.

Tokens are verified here independently of the platform's own code: PyJWT's ``PyJWKClient`` follows the
discovery document to the JWKS over HTTP, as an authorization server that trusts the issuer would. The
STS tests go through a real boto3 client, so the request and answer shapes are botocore's, not ours.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import jwt
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from devserver.platform import GCP_IDENTITY_PATH, LocalPlatform, ProjectedToken

AUDIENCE = "https://auth.example.com/oauth2/token"


@pytest.fixture(scope="module")
def shared_platform() -> Iterator[LocalPlatform]:
    with LocalPlatform() as local:
        yield local


@pytest.fixture
def platform(shared_platform: LocalPlatform) -> LocalPlatform:
    """The module's platform, its records, minted tokens and injected errors forgotten."""
    shared_platform.reset()
    return shared_platform


@pytest.fixture
def own_platform() -> Iterator[LocalPlatform]:
    """A platform of its own, for the tests that rotate its keys or stop it."""
    with LocalPlatform() as local:
        yield local


def verify(platform: LocalPlatform, token: str, audience: str = AUDIENCE, **options: Any) -> dict[str, Any]:
    """Verify like a relying party: discovery, then jwks_uri, then the signature and the claims."""
    discovery = requests.get(platform.discovery_url, timeout=5).json()
    client = jwt.PyJWKClient(discovery["jwks_uri"], cache_jwk_set=False)
    leeway = float(options.pop("leeway", 0))  # a decode argument, not one of PyJWT's options
    checks: Any = {"require": ["exp", "iat", "iss", "sub", "aud"], **options}
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=discovery["issuer"],
        options=checks,
        leeway=leeway,
    )
    return claims


def verify_locally(jwks: dict[str, Any], token: str) -> dict[str, Any]:
    """Signature check against a JWKS already fetched (for the tight loops)."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[key.algorithm_name], options={"verify_aud": False})
    return claims


def sts_client(platform: LocalPlatform, region: str = "us-east-1") -> Any:
    return boto3.client(
        "sts",
        endpoint_url=platform.url,
        region_name=region,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_loopback_only_and_idempotent_stop() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalPlatform(host="0.0.0.0")
    local = LocalPlatform()
    with pytest.raises(RuntimeError, match="not started"):
        _ = local.url
    assert local.start() is local
    assert local.url == f"http://127.0.0.1:{local.port}"
    assert local.metadata_host == f"127.0.0.1:{local.port}"
    assert local.port != 0
    assert requests.get(local.discovery_url, timeout=5).status_code == 200
    local.stop()
    local.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{local.port}/.well-known/openid-configuration", timeout=2)


# --------------------------------------------------------------------------- OIDC issuer


def test_discovery_and_jwks_verify_a_minted_token(platform: LocalPlatform) -> None:
    discovery = requests.get(platform.discovery_url, timeout=5)
    assert discovery.status_code == 200
    assert discovery.json() == {
        "issuer": platform.url,
        "jwks_uri": platform.url + "/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "ES384"],
    }
    jwks = requests.get(discovery.json()["jwks_uri"], timeout=5)
    assert jwks.headers["Content-Type"] == "application/jwk-set+json"
    keys = jwks.json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [
        ("RSA", "RS256", "sig"),
        ("EC", "ES256", "sig"),
        ("EC", "ES384", "sig"),
    ]
    assert all("d" not in k for k in keys)  # public keys only
    assert len({k["kid"] for k in keys}) == 3
    assert requests.get(platform.url + "/.well-known/jwks.json", timeout=5).json() == jwks.json()
    assert platform.jwks_fetches == 2

    before = int(time.time())
    token = platform.mint("alice", AUDIENCE, lifetime=120, claims={"team": "data"})
    claims = verify(platform, token)
    assert platform.jwks_fetches == 3
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": keys[0]["kid"], "typ": "JWT"}
    assert claims["iss"] == platform.url
    assert claims["sub"] == "alice"
    assert claims["aud"] == [AUDIENCE]
    assert claims["team"] == "data"
    assert before - 1 <= claims["iat"] == claims["nbf"] <= time.time() + 1
    assert claims["exp"] - claims["iat"] == 120
    with pytest.raises(jwt.InvalidAudienceError):
        verify(platform, token, audience="https://someone-else.example.com")


def test_mint_records_without_the_token_and_claims_can_be_dropped(platform: LocalPlatform) -> None:
    token = platform.mint("bob", ["a", "b"], lifetime=10, claims={"exp": None}, issued_at=1_000_000)
    claims = verify_locally(platform.jwks(), token)
    assert "exp" not in claims
    assert claims["iat"] == 1_000_000
    assert claims["aud"] == ["a", "b"]
    es256 = platform.mint("carol", "x", algorithm="ES256", aud_as_string=True)
    assert jwt.get_unverified_header(es256)["alg"] == "ES256"
    assert verify_locally(platform.jwks(), es256)["aud"] == "x"
    first, second = platform.minted
    assert (first.sub, first.aud, first.exp, first.iat, first.via) == ("bob", ("a", "b"), None, 1_000_000, "mint")
    assert first.jti == claims["jti"]
    assert (second.sub, second.aud, second.alg) == ("carol", ("x",), "ES256")
    assert token not in repr(platform.minted)
    assert es256 not in repr(platform.minted)
    platform.reset()
    assert platform.minted == []
    assert platform.jwks_fetches == 0


def test_signing_key_rotation_keeps_the_previous_key_published(own_platform: LocalPlatform) -> None:
    platform = own_platform
    old_kid = platform.signing_kid()
    old_token = platform.mint("alice", AUDIENCE)
    new_kid = platform.rotate_signing_key()
    new_token = platform.mint("alice", AUDIENCE)
    assert new_kid != old_kid
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify(platform, old_token)["sub"] == verify(platform, new_token)["sub"] == "alice"
    kids = [k["kid"] for k in platform.jwks()["keys"]]
    assert kids[0] == new_kid
    assert old_kid in kids
    assert len(kids) == 4

    platform.rotate_signing_key()  # a second rotation drops the first key
    assert old_kid not in [k["kid"] for k in platform.jwks()["keys"]]
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        verify(platform, old_token)
    assert verify(platform, new_token)["sub"] == "alice"
    platform.retire_previous_keys()
    with pytest.raises(jwt.PyJWKClientError):
        verify(platform, new_token)


def test_kubernetes_service_account_token(platform: LocalPlatform) -> None:
    token = platform.mint_kubernetes(AUDIENCE, namespace="etl", service_account="airflow-worker", pod="worker-7")
    claims = verify(platform, token)
    assert claims["sub"] == "system:serviceaccount:etl:airflow-worker"
    assert claims["aud"] == [AUDIENCE]
    assert claims["exp"] - claims["iat"] == 3600
    k8s = claims["kubernetes.io"]
    assert k8s["namespace"] == "etl"
    assert k8s["serviceaccount"]["name"] == "airflow-worker"
    assert k8s["pod"]["name"] == "worker-7"
    again = verify(
        platform, platform.mint_kubernetes(AUDIENCE, namespace="etl", service_account="airflow-worker", pod="worker-7")
    )
    assert again["kubernetes.io"] == k8s  # same pod, same uids
    assert again["jti"] != claims["jti"]
    assert platform.minted[-1].via == "kubernetes"


# --------------------------------------------------------------------------- projected files


def test_projected_file_rotation_kubelet_layout(platform: LocalPlatform, tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "token"
    projection = platform.project_service_account(path, AUDIENCE, namespace="etl", lifetime=600)
    first = path.read_text()
    assert first == projection.token
    assert path.is_symlink()
    assert os.readlink(path) == "..data/token"
    assert (path.parent / "..data").is_symlink()
    assert Path(os.readlink(path.parent / "..data")).name.startswith("..")
    claims = verify(platform, first)
    assert claims["sub"] == "system:serviceaccount:etl:airflow"
    assert claims["exp"] - claims["iat"] == 600
    assert projection.rotations == 0

    second = projection.rotate()
    assert path.read_text() == second != first
    assert projection.rotations == 1
    assert verify(platform, second)["jti"] != claims["jti"]
    for _ in range(3):
        projection.rotate()
    timestamped = [p for p in path.parent.iterdir() if p.name.startswith("..") and p.name not in ("..data",)]
    assert len(timestamped) == 2  # the current directory and the previous one; older ones removed
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("..")) == ["token"]


def test_projected_file_kubelet_exact_removes_the_previous_directory(platform: LocalPlatform, tmp_path: Path) -> None:
    projection = platform.project(tmp_path / "token", "s", AUDIENCE, keep_previous_data=False)
    projection.rotate()
    current = os.readlink(tmp_path / "..data")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current, "..data", "token"])
    assert (tmp_path / "token").read_text() == projection.token


def test_projected_file_write_and_expire_now(platform: LocalPlatform, tmp_path: Path) -> None:
    projection = platform.project(tmp_path / "token", "system:serviceaccount:a:b", AUDIENCE, layout="file")
    assert not (tmp_path / "token").is_symlink()
    expired = projection.expire_now()
    assert (tmp_path / "token").read_text() == expired
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(platform, expired)
    claims = verify(platform, expired, verify_exp=False)
    assert claims["exp"] < time.time() - 900
    assert claims["sub"] == "system:serviceaccount:a:b"
    projection.write("not-a-jwt")
    assert (tmp_path / "token").read_text() == "not-a-jwt"
    assert projection.rotations == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]  # no temporary file left behind


def test_one_kubelet_projection_per_directory(platform: LocalPlatform, tmp_path: Path) -> None:
    platform.project(tmp_path / "token", "a", AUDIENCE)
    with pytest.raises(ValueError, match="already holds"):
        platform.project(tmp_path / "other", "b", AUDIENCE)
    platform.project(tmp_path / "other", "b", AUDIENCE, layout="file")


@pytest.mark.parametrize("layout", ["kubelet", "file"])
def test_projected_file_is_never_seen_half_written(platform: LocalPlatform, tmp_path: Path, layout: Any) -> None:
    path = tmp_path / "token"
    # A long token makes a torn read likelier if the write were not atomic.
    projection = platform.project(path, "writer", AUDIENCE, claims={"padding": "x" * 20_000}, layout=layout)
    jwks = platform.jwks()
    done = threading.Event()
    seen: set[str] = set()
    failures: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                content = path.read_text()
            except FileNotFoundError as exc:
                # The kubelet layout deletes an old token directory after the swap: a reader that resolved the
                # link before two back-to-back rotations can meet no file (readers retry, as the file source
                # does); the layout without links never lacks the file. Never a torn read, either way.
                if layout != "kubelet":
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            except OSError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            reads += 1
            if content not in seen:
                try:
                    verify_locally(jwks, content)
                except jwt.PyJWTError as exc:
                    failures.append(f"{type(exc).__name__} after {len(content)} characters")
                    continue
                seen.add(content)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    written = {projection.token}
    for _ in range(200):
        written.add(projection.rotate())
    done.set()
    thread.join(timeout=10)
    assert failures == []
    assert projection.rotations == 200
    assert reads >= 50
    assert len(seen) >= 2
    assert seen <= written


def test_auto_rotation_at_80_percent_and_stop(own_platform: LocalPlatform, tmp_path: Path) -> None:
    platform = own_platform
    path = tmp_path / "token"
    projection: ProjectedToken = platform.project_service_account(path, AUDIENCE, lifetime=1, auto_rotate=True)
    assert projection.refresh_interval == pytest.approx(0.8)
    assert projection.auto_rotating
    first = path.read_text()
    deadline = time.monotonic() + 5
    while projection.rotations < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert projection.rotations >= 2
    assert path.read_text() != first
    assert verify(platform, path.read_text(), leeway=2)["sub"] == "system:serviceaccount:default:airflow"
    platform.stop()  # stops the projections too
    assert not projection.auto_rotating
    count = projection.rotations
    time.sleep(0.9)  # longer than the 0.8 s interval
    assert projection.rotations == count


def test_auto_rotation_waits_80_percent_after_a_manual_rotation(platform: LocalPlatform, tmp_path: Path) -> None:
    projection = platform.project(tmp_path / "token", "s", AUDIENCE, lifetime=2)
    projection.start_auto_rotation()
    time.sleep(0.5)
    manual = time.monotonic()
    projection.rotate()  # restarts the 1.6 s countdown
    assert projection.rotations == 1
    deadline = time.monotonic() + 5
    while projection.rotations < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert projection.rotations == 2
    assert time.monotonic() - manual >= 1.6  # not 1.1 s after the manual rotation, when the first countdown ended
    projection.stop()
    projection.stop()
    assert not projection.auto_rotating


# --------------------------------------------------------------------------- GitHub Actions


def test_github_token_service(platform: LocalPlatform) -> None:
    env = platform.github_environment()
    assert set(env) == {"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"}
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
    assert url.startswith(platform.url)
    assert "?api-version=2.0" in url
    headers = {"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}

    response = requests.get(url + "&audience=" + quote(AUDIENCE, safe=""), headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["value"]
    claims = verify(platform, response.json()["value"])
    assert claims["aud"] == AUDIENCE  # a string, as GitHub writes it
    assert claims["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert claims["repository"] == "octo-org/octo-repo"
    assert claims["repository_owner"] == "octo-org"
    assert claims["ref"] == "refs/heads/main"
    assert claims["workflow"] == "deploy"
    assert claims["job_workflow_ref"] == "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"
    assert claims["runner_environment"] == "github-hosted"
    assert claims["exp"] - claims["iat"] == 300

    default = requests.get(url, headers=headers, timeout=5)
    assert verify(platform, default.json()["value"], audience="https://github.com/octo-org")["aud"] == (
        "https://github.com/octo-org"
    )
    assert [r.get("audience") for r in platform.records if r["service"] == "github"] == [
        AUDIENCE,
        "https://github.com/octo-org",
    ]


def test_github_token_service_refuses_wrong_bearer_and_a_replaced_query(platform: LocalPlatform) -> None:
    url = platform.github_token_url
    for headers in ({}, {"Authorization": "bearer wrong"}, {"Authorization": f"Basic {platform.github_request_token}"}):
        response = requests.get(url + "&audience=x", headers=headers, timeout=5)
        assert response.status_code == 403
        assert "value" not in response.json()
        assert "Bad credentials" in response.json()["message"]
    # A client that adds "?audience=" to a URL that already has a query string.
    headers = {"Authorization": f"Bearer {platform.github_request_token}"}
    response = requests.get(url + "?audience=x", headers=headers, timeout=5)
    assert response.status_code == 400
    assert "api-version" in response.json()["message"]
    assert [r["status"] for r in platform.records] == [403, 403, 403, 400]
    assert platform.minted == []


# --------------------------------------------------------------------------- GCP metadata server


def test_gcp_metadata_identity(platform: LocalPlatform) -> None:
    url = f"http://{platform.metadata_host}{GCP_IDENTITY_PATH}"
    flavor = {"Metadata-Flavor": "Google"}

    refused = requests.get(url, params={"audience": AUDIENCE}, timeout=5)
    assert refused.status_code == 403
    assert refused.headers["Metadata-Flavor"] == "Google"
    assert "Metadata-Flavor" in refused.text
    proxied = requests.get(url, params={"audience": AUDIENCE}, headers={**flavor, "X-Forwarded-For": "1.2.3.4"})
    assert proxied.status_code == 403
    assert requests.get(url, headers=flavor, timeout=5).status_code == 400
    assert requests.get(url, params={"audience": ""}, headers=flavor, timeout=5).status_code == 400
    assert requests.get(url, params={"audience": "a", "format": "xml"}, headers=flavor, timeout=5).status_code == 400

    standard = requests.get(url, params={"audience": AUDIENCE}, headers=flavor, timeout=5)
    assert standard.status_code == 200
    assert standard.headers["Content-Type"] == "text/html"
    assert standard.headers["Metadata-Flavor"] == "Google"
    claims = verify(platform, standard.text)
    assert claims["aud"] == AUDIENCE
    assert claims["azp"] == claims["sub"]
    assert claims["sub"].isdigit()
    assert "email" not in claims
    assert "google" not in claims
    assert claims["exp"] - claims["iat"] == 3600

    full = requests.get(url, params={"audience": AUDIENCE, "format": "full"}, headers=flavor, timeout=5)
    claims = verify(platform, full.text)
    assert claims["email"] == "airflow@demo-project.iam.gserviceaccount.com"
    assert claims["email_verified"] is True
    assert claims["google"]["compute_engine"]["project_id"] == "demo-project"
    assert [r["status"] for r in platform.records if r["service"] == "gcp"] == [403, 403, 400, 400, 400, 200, 200]


# --------------------------------------------------------------------------- AWS STS


@pytest.mark.parametrize(("algorithm", "kty"), [("RS256", "RSA"), ("ES384", "EC")])
def test_sts_get_web_identity_token_through_boto3(platform: LocalPlatform, algorithm: str, kty: str) -> None:
    answer = sts_client(platform, region="eu-west-3").get_web_identity_token(
        Audience=[AUDIENCE], SigningAlgorithm=algorithm, DurationSeconds=900, Tags=[{"Key": "team", "Value": "data"}]
    )
    token = answer["WebIdentityToken"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == algorithm
    assert next(k for k in platform.jwks()["keys"] if k["kid"] == header["kid"])["kty"] == kty
    claims = verify(platform, token)
    assert claims["sub"] == "arn:aws:iam::123456789012:role/airflow"
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 900
    assert answer["Expiration"].timestamp() == claims["exp"]
    assert claims["https://sts.amazonaws.com/"] == {
        "aws_account": "123456789012",
        "source_region": "eu-west-3",
        "principal_id": "arn:aws:iam::123456789012:role/airflow",
        "request_tags": {"team": "data"},
    }
    assert platform.minted[-1].via == "aws"


def test_sts_defaults_and_several_audiences(platform: LocalPlatform) -> None:
    answer = sts_client(platform).get_web_identity_token(Audience=["a", "b"], SigningAlgorithm="RS256")
    claims = verify(platform, answer["WebIdentityToken"], audience="b")
    assert claims["aud"] == ["a", "b"]
    assert claims["exp"] - claims["iat"] == 300
    assert "request_tags" not in claims["https://sts.amazonaws.com/"]


@pytest.mark.parametrize(
    ("code", "status", "text"),
    [
        ("OutboundWebIdentityFederationDisabledException", 403, "not enabled"),
        ("AccessDenied", 403, "arn:aws:iam::123456789012:role/airflow is not authorized"),
        ("JWTPayloadSizeExceededException", 400, "payload size"),
    ],
)
def test_sts_injected_error_is_a_client_error(platform: LocalPlatform, code: str, status: int, text: str) -> None:
    client = sts_client(platform)
    platform.fail_next_sts(code)
    with pytest.raises(ClientError) as caught:
        client.get_web_identity_token(Audience=[AUDIENCE], SigningAlgorithm="RS256")
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["Error"]["Type"] == "Sender"
    assert text in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.value.response["ResponseMetadata"]["RequestId"]
    assert client.get_web_identity_token(Audience=[AUDIENCE], SigningAlgorithm="RS256")["WebIdentityToken"]
    assert [r["status"] for r in platform.records] == [status, 200]


def test_sts_validation_errors(platform: LocalPlatform) -> None:
    client = sts_client(platform)
    with pytest.raises(ClientError) as caught:
        client.get_web_identity_token(Audience=[AUDIENCE], SigningAlgorithm="RS256", DurationSeconds=3601)
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "less than or equal to 3600" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        client.get_web_identity_token(Audience=[AUDIENCE], SigningAlgorithm="ES256")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "RS256, ES384" in caught.value.response["Error"]["Message"]
    assert platform.minted == []


def test_sts_injected_throttling_is_retried_by_botocore(platform: LocalPlatform) -> None:
    platform.fail_next_sts("Throttling", "Rate exceeded")
    client = boto3.client(
        "sts",
        endpoint_url=platform.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    answer = client.get_web_identity_token(Audience=[AUDIENCE], SigningAlgorithm="RS256")
    assert verify(platform, answer["WebIdentityToken"])["aud"] == AUDIENCE
    assert [r["status"] for r in platform.records if r["service"] == "aws"] == [400, 200]


def test_sts_refuses_unsigned_requests_and_other_actions(platform: LocalPlatform) -> None:
    form = {
        "Action": "GetWebIdentityToken",
        "Version": "2011-06-15",
        "Audience.member.1": "a",
        "SigningAlgorithm": "RS256",
    }
    unsigned = requests.post(platform.url + "/", data=form, timeout=5)
    assert unsigned.status_code == 403
    assert unsigned.headers["Content-Type"].startswith("text/xml")
    assert "<Code>MissingAuthenticationToken</Code>" in unsigned.text
    assert unsigned.text.startswith('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/sts/aws4_request, Signature=0"}
    other = requests.post(platform.url + "/", data={**form, "Action": "AssumeRole"}, headers=signed, timeout=5)
    assert other.status_code == 400
    assert "<Code>InvalidAction</Code>" in other.text
    ok = requests.post(platform.url + "/", data=form, headers=signed, timeout=5)
    assert ok.status_code == 200
    assert ok.text.startswith('<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    assert "<GetWebIdentityTokenResult><WebIdentityToken>" in ok.text
    assert "<ResponseMetadata><RequestId>" in ok.text


# --------------------------------------------------------------------------- secrets stay out of logs


def test_no_token_in_logs_or_records(platform: LocalPlatform, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="devserver")
    env = platform.github_environment()
    headers = {"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
    tokens = [
        requests.get(env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=a", headers=headers, timeout=5).json()["value"]
    ]
    gcp = f"http://{platform.metadata_host}{GCP_IDENTITY_PATH}"
    tokens.append(requests.get(gcp, params={"audience": "a"}, headers={"Metadata-Flavor": "Google"}, timeout=5).text)
    tokens.append(
        sts_client(platform).get_web_identity_token(Audience=["a"], SigningAlgorithm="RS256")["WebIdentityToken"]
    )
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("devserver")]
    assert any("/_github/token" in message for message in ours)  # the request lines are logged
    everything = "\n".join(ours) + repr(platform.records) + repr(platform.minted)
    for secret in [*tokens, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]]:
        assert secret not in everything
