"""Secrets reach Airflow's masker; none appears in reprs, errors or the API's request headers."""

from __future__ import annotations

from airflow.sdk.log import redact

from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from tests.conftest import CLIENT_ID, CLIENT_SECRET, STORE_PASSWORD, connection_extra, register


def test_everything_secret_is_masked_in_logs(auth_server, keystores, set_connection) -> None:
    store = keystores["pem_pkcs1_encrypted"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    pem_text = store.path.read_text()
    extra = connection_extra(store, auth_server)
    extra.pop("key_file")
    extra["private_key"] = pem_text
    extra["keystore_password"] = STORE_PASSWORD
    set_connection("masked", login=CLIENT_ID, password=CLIENT_SECRET, host=auth_server.api_url, extra=extra)
    hook = JwtBearerHook("masked")
    token = hook.get_token()
    assertion = hook.mint_assertion()
    key_line = next(line for line in pem_text.splitlines() if len(line) > 40 and not line.startswith("-"))
    for secret in (token.access_token, assertion, CLIENT_SECRET, STORE_PASSWORD, key_line):
        assert secret not in redact(f"log line with {secret} inside"), secret[:8]
    for text in (repr(hook.settings), repr(hook.credentials), repr(token), repr(hook.signer)):
        for secret in (token.access_token, CLIENT_SECRET, STORE_PASSWORD, key_line):
            assert secret not in text


def test_error_texts_hold_no_secret(auth_server, keystores, set_connection) -> None:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    set_connection(
        "bad",
        login=CLIENT_ID,
        password="the-wrong-client-secret",
        extra=connection_extra(store, auth_server),
    )
    hook = JwtBearerHook("bad")
    try:
        hook.get_token()
    except TokenEndpointError as error:
        text = f"{error} {error.error_description} {error.hint}"
    else:  # pragma: no cover - the server must refuse
        raise AssertionError("the wrong secret was accepted")
    for secret in ("the-wrong-client-secret", STORE_PASSWORD):
        assert secret not in text
    assert "eyJ" not in text  # no JWT (assertion) in the message
