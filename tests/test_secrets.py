"""Secrets reach Airflow's masker; none appears in reprs, errors or the API's request headers."""

from __future__ import annotations

from airflow.sdk.log import redact

from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from tests.conftest import CLIENT_ID, CLIENT_SECRET, STORE_PASSWORD, connection_extra, register


def test_stable_secrets_are_masked_and_per_call_ones_redacted_without_growing_the_masker(
    auth_server, keystores, set_connection
) -> None:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_jwt_provider.common.redaction import redact_text

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
    key_line = next(line for line in pem_text.splitlines() if len(line) > 40 and not line.startswith("-"))
    # stable secrets: Airflow's masker knows them
    for secret in (CLIENT_SECRET, STORE_PASSWORD, key_line):
        assert secret not in redact(f"log line with {secret} inside"), secret[:4]
    # per-call credentials: never registered (the masker's pattern set stays as it is)...
    patterns_before = len(_secrets_masker().patterns)
    assertions = [hook.mint_assertion() for _ in range(20)]
    tokens = [hook.get_token(subject=f"user-{i}") for i in range(20)]
    assert len(_secrets_masker().patterns) == patterns_before
    # ...but blanked by the provider's redaction: by shape (JWTs) and as live tokens
    for secret in [token.access_token, *assertions, *(t.access_token for t in tokens)]:
        assert secret not in redact_text(f"log line with {secret} inside"), secret[:4]
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
