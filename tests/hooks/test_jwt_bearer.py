"""JwtBearerHook end to end against the local Authlib authorization server (signatures checked there)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from airflow_jwt_provider.exceptions import ApiResponseError, JwtBearerConfigError, TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.access_token import AccessToken
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, CLIENT_SECRET, STORE_PASSWORD, connection_extra, register

ConnFactory = Callable[..., str]


def successful(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in server.token_requests if r.get("success")]


@pytest.fixture
def hook_for(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], set_connection: ConnFactory
) -> Callable[..., JwtBearerHook]:
    """A hook on a connection that signs with keystores[name] against the running server."""

    def make(name: str = "default", *, password: str | None = None, host: str | None = None, **extra: Any):
        store = keystores[name]
        register(auth_server, store, client_secret=password)
        conn_id = set_connection(
            "jwt_test",
            login=CLIENT_ID,
            password=password,
            host=host or auth_server.api_url,
            extra=connection_extra(store, auth_server, **extra),
        )
        return JwtBearerHook(conn_id)

    return make


@pytest.mark.parametrize(
    ("name", "alias", "algorithm"),
    [
        ("default", None, "RS256"),
        ("jks", None, "RS256"),
        ("jceks", None, "ES384"),
        ("pkcs12_multi", "SECONDARY", "RS256"),
        ("ec256", None, "ES256"),
        ("ec521", None, "ES512"),
        ("ed25519", None, "EdDSA"),
        ("pem_pkcs8", None, "RS256"),
        ("pem_pkcs1_encrypted", None, "RS256"),
        ("pem_ec_encrypted", None, "ES256"),
    ],
)
def test_token_end_to_end_with_each_keystore(
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    set_connection: ConnFactory,
    name: str,
    alias: str | None,
    algorithm: str,
) -> None:
    store = keystores[name]
    if alias:
        # register the certificate of the selected entry: load it from the keystore as the server would
        from airflow_jwt_provider.signing.key_files.loader import load_signing_key
        from airflow_jwt_provider.signing.key_files.source import KeyRequest, KeySource

        key = load_signing_key(
            KeyRequest(KeySource(path=str(store.path)), keystore_password=store.store_password, key_alias=alias)
        )
        from cryptography.hazmat.primitives import serialization

        assert key.certificate is not None
        auth_server.register_client(
            CLIENT_ID, certificate_pem=key.certificate.public_bytes(serialization.Encoding.PEM).decode()
        )
    else:
        register(auth_server, store)
    set_connection("jwt_test", login=CLIENT_ID, extra=connection_extra(store, auth_server, key_alias=alias))
    token = JwtBearerHook("jwt_test").get_token()

    assert isinstance(token, AccessToken)
    assert auth_server.token_info(token.access_token) is not None
    record = successful(auth_server)[-1]
    assert record["assertion_verified"] is True
    header, claims = record["assertion_header"], record["assertion_claims"]
    assert header["alg"] == algorithm
    assert header["typ"] == "JWT"
    assert claims["iss"] == CLIENT_ID
    assert claims["sub"] == "alice"
    assert claims["aud"] == auth_server.token_url
    assert claims["exp"] - claims["iat"] == 60
    assert len(claims["jti"]) == 36


def test_connection_as_uri(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], set_connection: ConnFactory
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    query = "&".join(
        f"{k}={quote(str(v), safe='')}"
        for k, v in connection_extra(store, auth_server, lifetime="45", claims='{"tenant": "acme"}').items()
    )
    # Like the http provider: a host that carries a scheme and a path is percent-encoded in a URI.
    host = quote(auth_server.api_url, safe="")
    set_connection("jwt_uri", uri=f"jwt-bearer://{CLIENT_ID}@{host}?{query}")
    hook = JwtBearerHook("jwt_uri")
    assert hook.settings.lifetime == 45
    assert hook.settings.claims == {"tenant": "acme"}
    hook.get_token()
    claims = successful(auth_server)[-1]["assertion_claims"]
    assert claims["tenant"] == "acme"
    assert claims["exp"] - claims["iat"] == 45
    assert hook.run("whoami").json()["sub"] == "alice"


def test_tokens_are_cached_per_subject_and_refreshable(hook_for: Callable[..., JwtBearerHook], auth_server) -> None:
    hook = hook_for()
    first = hook.get_token()
    assert hook.get_token() is first
    assert JwtBearerHook("jwt_test").get_token() is first  # the cache is per process, not per hook
    assert len(successful(auth_server)) == 1
    bob = hook.get_token(subject="bob")
    assert bob.access_token != first.access_token
    assert auth_server.token_info(bob.access_token).sub == "bob"  # type: ignore[union-attr]
    forced = hook.get_token(force_refresh=True)
    assert forced.access_token != first.access_token
    assert len(successful(auth_server)) == 3
    jtis = [r["assertion_claims"]["jti"] for r in successful(auth_server)]
    assert len(set(jtis)) == 3


def test_concurrent_callers_share_one_fetch(hook_for: Callable[..., JwtBearerHook], auth_server) -> None:
    hook = hook_for()
    hook.credentials  # noqa: B018 -- load the key first so the threads race on the token only
    barrier = threading.Barrier(8)
    tokens: list[AccessToken] = []

    def worker() -> None:
        barrier.wait()
        tokens.append(hook.get_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(t) for t in tokens}) == 1
    assert len(successful(auth_server)) == 1


def test_short_lived_tokens_are_reused_for_half_their_life(hook_for, auth_server) -> None:
    import time

    auth_server.token_lifetime = 2  # shorter than the 30 s margin: the margin is capped at half the life
    hook = hook_for()
    first = hook.get_token()
    assert first.valid
    assert first.refresh_at - first.issued_at == first.lifetime / 2
    assert hook.get_token() is first  # reused, no request
    time.sleep(1.05)
    second = hook.get_token()
    assert second.access_token != first.access_token
    auth_server.token_lifetime = 3600
    third = hook.get_token(force_refresh=True)
    assert hook.get_token() is third
    assert len(successful(auth_server)) == 3


def test_missing_expires_in_is_short_lived_but_usable(hook_for, auth_server) -> None:
    auth_server.omit_expires_in = True
    hook = hook_for()
    token = hook.get_token()
    assert token.expires_at is None
    assert token.valid
    assert hook.get_token() is token
    assert "expires_at=unknown" in repr(token)


def test_session_recovers_from_server_side_revocation(hook_for, auth_server) -> None:
    hook = hook_for()
    session = hook.get_conn()
    assert session.get("whoami").json()["sub"] == "alice"
    auth_server.revoke_all_tokens()
    response = session.get("whoami")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert session.auth.retries_on_401 == 1  # type: ignore[union-attr]
    assert len(successful(auth_server)) == 2


def test_second_401_is_returned_not_looped(hook_for, auth_server) -> None:
    hook = hook_for()
    session = hook.get_conn()
    session.get("whoami")
    auth_server.fail_next("whoami", 401, count=2)
    response = session.get("whoami")
    assert response.status_code == 401
    assert len(response.history) == 1
    auth_server.fail_next("whoami", 401, count=2)
    with pytest.raises(ApiResponseError, match=r"GET .*/api/whoami failed: HTTP 401") as info:
        hook.run("whoami")
    assert info.value.status == 401


def test_run_sends_query_json_and_per_call_subject(hook_for, auth_server) -> None:
    hook = hook_for()
    page = hook.run("items", params={"page": 2, "per_page": 5}).json()
    assert [item["id"] for item in page["items"]] == [6, 7, 8, 9, 10]
    posted = hook.run("results", method="POST", json={"n": 1}, subject="carol")
    assert posted.status_code == 201
    assert posted.json()["sub"] == "carol"
    assert auth_server.api_requests[-1]["subject"] == "carol"


def test_headers_sent_to_the_api_hold_no_secret(hook_for, auth_server) -> None:
    hook = hook_for(password=CLIENT_SECRET)
    echoed = hook.run("echo-headers").json()
    text = str(echoed)
    for secret in (CLIENT_SECRET, STORE_PASSWORD):
        assert secret not in text
    assert "keystore_password" not in text.lower()
    assert all(not k.lower().startswith(("auth_url", "key_", "keystore")) for k in echoed.get("headers", echoed))


def test_mint_assertion_is_new_each_time_with_overrides(hook_for, auth_server) -> None:
    import jwt

    hook = hook_for()
    one = jwt.decode(hook.mint_assertion(), options={"verify_signature": False})
    two = jwt.decode(
        hook.mint_assertion(subject="dave", claims={"role": "reader"}, audience=["a", "b"]),
        options={"verify_signature": False},
    )
    assert one["jti"] != two["jti"]
    assert two["sub"] == "dave"
    assert two["role"] == "reader"
    assert two["aud"] == ["a", "b"]
    with pytest.raises(JwtBearerConfigError, match=r"claims\.sub is a registered claim"):
        hook.mint_assertion(claims={"sub": "x"})


def test_test_connection_reports_lifetime_never_the_token(hook_for, auth_server) -> None:
    hook = hook_for()
    ok, message = hook.test_connection()
    assert ok, message
    assert "expires in 3600 s" in message
    token = hook.get_token()
    assert token.access_token not in message


def test_test_connection_reports_failure(hook_for, auth_server) -> None:
    hook = hook_for()
    auth_server.clients.clear()
    ok, message = hook.test_connection()
    assert not ok
    assert "invalid_grant" in message


def test_invalid_client_hint(hook_for, auth_server, set_connection, keystores) -> None:
    hook_for(password=CLIENT_SECRET)
    store = keystores["default"]
    set_connection(
        "jwt_bad_secret",
        login=CLIENT_ID,
        password="wrong-secret-value",
        extra=connection_extra(store, auth_server),
    )
    with pytest.raises(TokenEndpointError) as info:
        JwtBearerHook("jwt_bad_secret").get_token()
    error = info.value
    assert error.error == "invalid_client"
    assert error.status in (400, 401)
    assert "Check the client id (Login) and the client secret (Password)" in str(error)
    assert "wrong-secret-value" not in str(error)


def test_clock_skew_hint_measures_the_offset(hook_for, auth_server) -> None:
    hook = hook_for()
    auth_server.clock_offset = 900  # the server lives 15 minutes in our future
    with pytest.raises(TokenEndpointError) as info:
        hook.get_token()
    error = info.value
    assert error.error == "invalid_grant"
    assert "clock is 900 s behind the server's" in str(error) or "clock is 899 s behind" in str(error)


def test_html_proxy_page_is_reported(hook_for, auth_server) -> None:
    hook = hook_for()
    hook.credentials.client.backoff = 0.01
    auth_server.html_error_next = 3
    with pytest.raises(TokenEndpointError, match=r"answered HTTP 502 with text/html.*not a JSON token response"):
        hook.get_token()
    assert len(auth_server.token_requests) == 3


def test_retry_after_a_proxy_error_uses_a_fresh_assertion(hook_for, auth_server) -> None:
    hook = hook_for()
    hook.credentials.client.backoff = 0.01
    auth_server.html_error_next = 1
    hook.get_token()
    assert len(auth_server.token_requests) == 2
    assert len(successful(auth_server)) == 1


def test_replayed_assertion_is_refused_by_the_server(hook_for, auth_server) -> None:
    hook = hook_for()
    assertion = hook.mint_assertion()
    hook.get_token(assertion=assertion)
    with pytest.raises(TokenEndpointError, match="invalid_grant"):
        hook.get_token(assertion=assertion, force_refresh=True)


def test_expiring_certificate_is_warned_in_the_log(
    auth_server, set_connection, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ks.make_keystore(tmp_path, "soon", store_type="pkcs12", validity_days=5, store_password=STORE_PASSWORD)
    register(auth_server, store)
    set_connection("jwt_soon", login=CLIENT_ID, extra=connection_extra(store, auth_server))
    JwtBearerHook("jwt_soon").get_token()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    warning = next(w for w in warnings if "the certificate of key" in w)
    assert warning.startswith("Connection 'jwt_soon': the certificate of key 'signing' (CN=signing,")
    assert "in 4 day(s)" in warning or "in 5 day(s)" in warning


def test_relative_endpoint_without_host_is_a_config_error(hook_for, auth_server, set_connection, keystores) -> None:
    store = keystores["default"]
    register(auth_server, store)
    set_connection("jwt_nohost", login=CLIENT_ID, extra=connection_extra(store, auth_server))
    with pytest.raises(JwtBearerConfigError, match=r"host .* is empty and endpoint 'whoami' is relative"):
        JwtBearerHook("jwt_nohost").run("whoami")
    # without Host, the token goes only to the hosts trusted_hosts lists
    with pytest.raises(JwtBearerConfigError, match=r"refusing to send the access token to http://127\.0\.0\.1:"):
        JwtBearerHook("jwt_nohost").run(auth_server.api_url + "/whoami")
    assert not auth_server.api_requests
    port = auth_server.api_url.split(":")[2].split("/")[0]
    set_connection(
        "jwt_nohost", login=CLIENT_ID, extra=connection_extra(store, auth_server, trusted_hosts=f"127.0.0.1:{port}")
    )
    assert JwtBearerHook("jwt_nohost").run(auth_server.api_url + "/whoami").json()["sub"] == "alice"


def test_auth_type_is_refused() -> None:
    from requests.auth import HTTPBasicAuth

    with pytest.raises(JwtBearerConfigError, match="auth_type cannot be used"):
        JwtBearerHook("x", auth_type=HTTPBasicAuth)


def test_run_takes_http_hook_positional_order(hook_for, auth_server) -> None:
    hook = hook_for()
    response = hook.run(
        "results", '{"n": 2}', {"Content-Type": "application/json"}, {"check_response": True}, method="POST"
    )
    assert response.json()["received"] == {"n": 2}
    # a GET's dict data is the query string, as with HttpHook
    assert hook.run("items", {"per_page": 2}).json()["items"] == [
        {"id": 1, "name": "item-1"},
        {"id": 2, "name": "item-2"},
    ]
    with pytest.raises(TypeError):
        hook.run("results", None, None, None, "POST")  # everything after extra_options is keyword-only


def test_hook_built_like_http_operator_is_the_same_class(hook_for, auth_server) -> None:
    hook_for()
    hook = JwtBearerHook("jwt_test", method="POST", auth_type=None, tcp_keep_alive=True, tcp_keep_alive_idle=120)
    assert type(hook) is JwtBearerHook
    response = hook.run("results", '{"n": 3}', {"Content-Type": "application/json"}, {"check_response": True})
    assert response.json()["received"] == {"n": 3}


def test_tcp_keep_alive_reaches_the_sockets(hook_for) -> None:
    import socket

    hook_for()
    options = JwtBearerHook("jwt_test", tcp_keep_alive_idle=77).get_conn().get_adapter("https://x").poolmanager
    socket_options = options.connection_pool_kw["socket_options"]
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in socket_options
    assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77) in socket_options
    off = JwtBearerHook("jwt_test", tcp_keep_alive=False).get_conn().get_adapter("https://x").poolmanager
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) not in off.connection_pool_kw["socket_options"]


def test_claims_with_list_and_object_values_work_on_every_path(hook_for, auth_server) -> None:
    hook = hook_for()
    claims = {"roles": ["a", "b"], "ctx": {"tenant": "t1"}}
    assert hook.run("whoami", claims=claims).json()["sub"] == "alice"
    assert hook.run("whoami", claims={"ctx": {"tenant": "t1"}, "roles": ["a", "b"]}).status_code == 200
    assert hook.get_conn(claims=claims).get("whoami").status_code == 200
    assert hook.get_token(claims=claims).valid
    minted = [r for r in successful(auth_server) if r["assertion_claims"].get("roles") == ["a", "b"]]
    assert len(minted) == 1  # the same claims in another order are the same token, reused
    assert minted[0]["assertion_claims"]["ctx"] == {"tenant": "t1"}


def test_from_connection_does_not_look_the_connection_up_again(keystores, auth_server) -> None:
    from airflow.sdk import Connection

    store = keystores["default"]
    register(auth_server, store)
    conn = Connection(
        conn_id="not_defined_anywhere",
        conn_type="jwt_bearer",
        login=CLIENT_ID,
        extra=json.dumps(connection_extra(store, auth_server)),
    )
    hook = JwtBearerHook.from_connection(conn)
    assert hook.jwt_bearer_conn_id == "not_defined_anywhere"
    assert hook.get_token().valid


def test_http_operator_retry_args_are_honoured(hook_for, auth_server) -> None:
    import tenacity

    hook_for()
    hook = JwtBearerHook("jwt_test", method="GET", tcp_keep_alive=True)
    auth_server.fail_next("whoami", 503, count=2)
    retry_args = {
        "stop": tenacity.stop_after_attempt(3),
        "wait": tenacity.wait_none(),
        "retry": tenacity.retry_if_exception_type(ApiResponseError),
    }
    assert hook.run_with_advanced_retry(retry_args, "whoami").json()["sub"] == "alice"
    statuses = [r["status"] for r in auth_server.api_requests if r["path"] == "/api/whoami"]
    assert statuses == [503, 503, 200]
