"""Vendor presets against the local server configured the way each vendor checks assertions.

The vendors' clouds cannot run here; the local Authlib server is set up with each vendor's
documented rules (audience, required claims, client authentication) and verifies for real.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.connection.presets import PRESETS
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, CLIENT_SECRET, connection_extra, register

ConnFactory = Callable[..., str]


def last_success(server: LocalAuthorizationServer) -> dict[str, Any]:
    return [r for r in server.token_requests if r.get("success")][-1]


def test_box(auth_server, keystores, set_connection: ConnFactory) -> None:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET, required_claims={"box_sub_type": ("enterprise", "user")})
    extra = connection_extra(store, auth_server, preset="box", subject="12345", claims={"box_sub_type": "enterprise"})
    set_connection("box", login=CLIENT_ID, password=CLIENT_SECRET, host=auth_server.api_url, extra=extra)
    hook = JwtBearerHook("box")
    assert hook.settings.client_auth == "client_secret_post"
    token = hook.get_token()
    record = last_success(auth_server)
    assert record["client_auth"] == "client_secret_post"
    assert record["assertion_claims"]["box_sub_type"] == "enterprise"
    assert record["assertion_claims"]["aud"] == auth_server.token_url
    assert record["assertion_claims"]["exp"] - record["assertion_claims"]["iat"] <= 60
    assert 16 <= len(record["assertion_claims"]["jti"]) <= 128  # box.jti: met by every assertion
    assert auth_server.token_info(token.access_token).sub == "12345"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "password", "field", "message"),
    [
        ({"subject": "1"}, CLIENT_SECRET, "claims.box_sub_type", "is required: add it to the claims object"),
        (
            {"subject": "1", "claims": {"box_sub_type": "admin"}},
            CLIENT_SECRET,
            "claims.box_sub_type",
            "enterprise, user",
        ),
        ({"subject": None, "claims": {"box_sub_type": "user"}}, CLIENT_SECRET, "subject", "app user id"),
        (
            {"subject": "1", "claims": {"box_sub_type": "user"}, "lifetime": 90},
            CLIENT_SECRET,
            "lifetime",
            "at most 60 s",
        ),
        (
            {"subject": "1", "claims": {"box_sub_type": "user"}, "client_auth": "none"},
            None,
            "password",
            "client secret",
        ),
    ],
)
def test_box_rules_are_checked_before_any_request(
    auth_server, keystores, set_connection, extra: dict[str, Any], password: str | None, field: str, message: str
) -> None:
    store = keystores["default"]
    set_connection(
        "box", login=CLIENT_ID, password=password, extra=connection_extra(store, auth_server, preset="box", **extra)
    )
    with pytest.raises(JwtBearerConfigError, match=message) as info:
        JwtBearerHook("box").get_token()
    assert info.value.field == field
    assert "developer.box.com" in str(info.value)
    assert auth_server.token_requests == []


def test_salesforce_audience_is_the_login_host_and_instance_url_is_used(auth_server, keystores, set_connection):
    store = keystores["default"]
    register(auth_server, store, extra_audiences=[auth_server.url])
    auth_server.omit_expires_in = True
    extra = connection_extra(store, auth_server, preset="salesforce", subject="integration@example.com", lifetime=180)
    set_connection("sf", login=CLIENT_ID, extra=extra)  # no host: the token's instance_url is the API base
    hook = JwtBearerHook("sf")
    token = hook.get_token()
    assert token.expires_at is None
    claims = last_success(auth_server)["assertion_claims"]
    assert claims["aud"] == auth_server.url
    assert claims["sub"] == "integration@example.com"
    assert hook.api_base_url() == auth_server.url
    assert hook.run("/api/whoami").json()["sub"] == "integration@example.com"


def test_salesforce_lifetime_cap(auth_server, keystores, set_connection) -> None:
    extra = connection_extra(keystores["default"], auth_server, preset="salesforce", lifetime=600)
    set_connection("sf", login=CLIENT_ID, extra=extra)
    with pytest.raises(JwtBearerConfigError, match="is 600 s but the vendor accepts at most 180 s"):
        JwtBearerHook("sf").settings  # noqa: B018


def test_google_service_account(auth_server, set_connection, tmp_path: Path) -> None:
    path, store = ks.make_google_service_account_json(tmp_path, "sa", token_uri=auth_server.token_url)
    email = "svc@project.iam.gserviceaccount.com"
    auth_server.register_client(
        email, certificate_pem=store.certificate_pem, subject_optional=True
    )  # as Google: no sub
    scope = "https://www.googleapis.com/auth/cloud-platform"
    set_connection("gcp", extra={"preset": "google", "key_file": str(path), "scope": scope})
    hook = JwtBearerHook("gcp")
    token = hook.get_token()
    record = last_success(auth_server)
    assert record["assertion_claims"]["iss"] == email
    assert record["assertion_claims"]["scope"] == scope
    assert "sub" not in record["assertion_claims"]
    assert record["assertion_header"]["kid"] == store.alias
    assert "scope" not in record["form_fields"]
    assert token.scope == scope
    # domain-wide delegation: sub names the user to impersonate
    hook.get_token(subject="admin@example.com")
    assert last_success(auth_server)["assertion_claims"]["sub"] == "admin@example.com"


def test_google_inline_json_key(auth_server, set_connection, tmp_path: Path) -> None:
    path, store = ks.make_google_service_account_json(tmp_path, "sa2", token_uri=auth_server.token_url)
    auth_server.register_client(
        "svc@project.iam.gserviceaccount.com", certificate_pem=store.certificate_pem, subject_optional=True
    )
    set_connection("gcp2", extra={"preset": "google", "private_key": path.read_text(), "scope": "s1 s2"})
    assert JwtBearerHook("gcp2").get_token().scope == "s1 s2"


def test_docusign_audience_is_the_host_without_scheme(auth_server, keystores, set_connection) -> None:
    store = keystores["default"]
    host = auth_server.url.removeprefix("http://")
    register(auth_server, store, extra_audiences=[host], max_assertion_lifetime=3600)
    extra = connection_extra(
        store, auth_server, preset="docusign", subject="4b3c-user-guid", scope="signature impersonation", lifetime=3600
    )
    set_connection("ds", login=CLIENT_ID, extra=extra)
    JwtBearerHook("ds").get_token()
    claims = last_success(auth_server)["assertion_claims"]
    assert claims["aud"] == host
    assert claims["scope"] == "signature impersonation"


def test_docusign_requires_scope(auth_server, keystores, set_connection) -> None:
    extra = connection_extra(keystores["default"], auth_server, preset="docusign", subject="u")
    set_connection("ds", login=CLIENT_ID, extra=extra)
    with pytest.raises(JwtBearerConfigError, match='scope is required: set it to "signature impersonation"'):
        JwtBearerHook("ds").get_token()


def test_servicenow_audience_is_the_client_id_and_a_missing_kid_is_a_warning(
    auth_server, keystores, set_connection, caplog: pytest.LogCaptureFixture
) -> None:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET, extra_audiences=[CLIENT_ID])
    extra = connection_extra(store, auth_server, preset="servicenow", subject="svc.user@example.com", key_id="snkey")
    set_connection("sn", login=CLIENT_ID, password=CLIENT_SECRET, extra=extra)
    JwtBearerHook("sn").get_token()
    record = last_success(auth_server)
    assert record["assertion_claims"]["aud"] == CLIENT_ID
    assert record["assertion_header"]["kid"] == "snkey"
    assert record["client_auth"] == "client_secret_post"
    extra.pop("key_id")  # no ServiceNow page says the kid is mandatory: the token comes, with a warning
    set_connection("sn", login=CLIENT_ID, password=CLIENT_SECRET, extra=extra)
    JwtBearerHook("sn").get_token(force_refresh=True)
    assert "kid" not in last_success(auth_server)["assertion_header"]
    assert "Connection 'sn': key_id is required: set it to the Kid of the JWT verifier map" in caplog.text
    assert "no ServiceNow page states this; a warning, not a refusal" in caplog.text


def test_servicenow_token_url_from_the_instance_host(set_connection) -> None:
    set_connection(
        "sn2",
        login="c",
        host="https://dev1234.service-now.com",
        extra={"preset": "servicenow", "key_file": "/k.p12", "subject": "u", "key_id": "k"},
    )
    assert JwtBearerHook("sn2").settings.auth_url == "https://dev1234.service-now.com/oauth_token.do"


def test_entra_client_credentials_with_certificate(auth_server, keystores, set_connection) -> None:
    store = keystores["default"]
    register(auth_server, store)
    extra = connection_extra(store, auth_server, preset="entra", scope="https://graph.microsoft.com/.default")
    extra.pop("subject")
    set_connection("entra", login=CLIENT_ID, extra=extra)
    token = JwtBearerHook("entra").get_token()
    record = last_success(auth_server)
    assert record["grant_type"] == "client_credentials"
    assert record["client_auth"] == "private_key_jwt"
    header, claims = record["client_assertion_header"], record["client_assertion_claims"]
    assert header["alg"] == "PS256"  # what Microsoft's current page asks for
    assert header["x5t#S256"] == store.certificate_thumbprint("sha256")
    assert header["x5t"] == store.certificate_thumbprint("sha1")
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == auth_server.token_url
    assert "client_id" in record["form_fields"]  # "client_id: Required"
    assert token.scope == "https://graph.microsoft.com/.default"
    # RS256, what the earlier page asked for, still works when the connection says so
    set_connection("entra", login=CLIENT_ID, extra={**extra, "algorithm": "RS256"})
    JwtBearerHook("entra").get_token(force_refresh=True)
    assert last_success(auth_server)["client_assertion_header"]["alg"] == "RS256"


def test_entra_on_behalf_of(auth_server, keystores, set_connection) -> None:
    store = keystores["default"]
    register(auth_server, store)
    extra = connection_extra(store, auth_server, preset="entra", scope="https://graph.microsoft.com/.default")
    extra.pop("subject")
    set_connection("entra", login=CLIENT_ID, host=auth_server.api_url, extra=extra)
    hook = JwtBearerHook("entra")
    user_token = auth_server.issue_user_token("user-7", audience=CLIENT_ID)
    token = hook.get_token(assertion=user_token)
    record = last_success(auth_server)
    assert record["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert "requested_token_use" in record["form_fields"]
    assert record["client_auth"] == "private_key_jwt"
    assert auth_server.token_info(token.access_token).sub == "user-7"  # type: ignore[union-attr]
    # another user's token gives another access token (the cache key holds the assertion's digest)
    other = hook.get_token(assertion=auth_server.issue_user_token("user-8", audience=CLIENT_ID))
    assert auth_server.token_info(other.access_token).sub == "user-8"  # type: ignore[union-attr]


def test_entra_requires_scope(auth_server, keystores, set_connection) -> None:
    set_connection("entra", login=CLIENT_ID, extra=connection_extra(keystores["default"], auth_server, preset="entra"))
    with pytest.raises(JwtBearerConfigError, match="scope is required: set it to"):
        JwtBearerHook("entra").get_token()


def test_a_key_the_vendor_does_not_accept_is_refused_before_any_request(auth_server, keystores, set_connection) -> None:
    """Box signs RS256/384/512 only: an EC key (ES256 by its curve) is refused when credentials are built."""
    store = keystores["ec256"]
    extra = connection_extra(store, auth_server, preset="box", subject="1", claims={"box_sub_type": "user"})
    set_connection("box_ec", login=CLIENT_ID, password=CLIENT_SECRET, extra={**extra, "key_id": "k"})
    with pytest.raises(JwtBearerConfigError, match="the key is EC-secp256r1, which signs ES256") as info:
        JwtBearerHook("box_ec").get_token()
    assert info.value.field == "algorithm"
    assert "developer.box.com" in str(info.value)
    assert auth_server.token_requests == []


def test_every_preset_links_its_vendor_page() -> None:
    for preset in PRESETS.values():
        assert preset.doc_url.startswith("https://"), preset.name
